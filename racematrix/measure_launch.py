"""Launch time as a measurement: ``launch_time``'s A/B (the installed swap
against the unlocked one) in the suite's own pytest process after its
tests (``launch_plugin``), so that they never change the suite's rates; or
alone in an environment (``run_launch_time``)."""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from . import launch_time
from .measurement import Built
from .procs import run_streaming
from .suites import PROJECT

WORKLOAD = Path(launch_time.__file__).resolve()
# Handed to the suite's pytest from outside: the MWE holds no harness.
PLUGIN = "racematrix.launch_time"
RESULT_PREFIX = '{"launch_seconds":'


def run_launch_time(env: Any, sim: bool, options: tuple[str, ...] = (),
                    echo: bool = False, timeout: float | None = None) -> dict:
    """``racematrix/launch_time.py`` in ``env`` (a nox Session or a
    ``venv.ProbeEnvironment``): its ``launch_seconds`` record, or one with
    ``n`` 0 and an ``error`` naming the last line it printed."""
    returncode, tail = run_streaming(
        env, ["python", str(WORKLOAD), *options],
        {"NUMBA_ENABLE_CUDASIM": str(int(sim))}, echo, timeout=timeout)
    record = parse_workload_output(tail)
    if record is None:
        last = next((line for line in reversed(tail) if line.strip()),
                    "no output")
        return empty_record(f"the launch-time workload exited {returncode} "
                            f"without a result: {last.strip()[:300]}")
    return record


def parse_workload_output(lines: list[str]) -> dict | None:
    """The ``launch_seconds`` record of the workload's last result line."""
    for line in reversed(lines):
        if line.startswith(RESULT_PREFIX):
            try:
                return json.loads(line)["launch_seconds"]
            except (ValueError, KeyError):
                return None
    return None


def empty_record(error: str) -> dict:
    return {"n": 0, "median": None, "p95": None, "max": None, "samples": [],
            "decision": "error", "workload": {}, "error": error}


class LaunchTime:
    """The ``launch_seconds`` record for the raw result: ``launch_time``'s
    pairs (at least ``launches``, at most ``max_launches`` while
    undecided) in the suite's own pytest process once its tests have run
    (its plugin). ``device_calls`` None: ``launch_time``'s own."""
    name = "launch_seconds"

    def __init__(self, launches: int = launch_time.PAIRS,
                 max_launches: int = launch_time.MAX_PAIRS,
                 device_calls: int | None = None) -> None:
        self.options = ["--pairs", str(launches),
                        "--max-pairs", str(max(max_launches, launches))]
        if device_calls:
            self.options += ["--device-calls", str(device_calls)]

    def _file(self, built: Built) -> Path:
        return Path(str(built.scratch)) / "launch_seconds.json"

    def suite_args(self, built: Built) -> tuple[str, ...]:
        return ("-p", PLUGIN, "--launch-time-json", str(self._file(built)),
                "--launch-time-options", shlex.join(self.options))

    def suite_env(self, built: Built) -> dict[str, str]:
        """What the suite's pytest process needs to import the plugin."""
        return {"PYTHONPATH": str(PROJECT)}

    def measure(self, built: Built) -> dict:
        try:
            record = json.loads(self._file(built).read_text())[
                "launch_seconds"]
        except (OSError, ValueError, KeyError):
            record = empty_record("the suite's process wrote no launch-time "
                                  "record")
        record["concurrency"] = built.running()
        return {"launch_seconds": record}
