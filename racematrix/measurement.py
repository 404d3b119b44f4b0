"""Measurements of a built environment, each returning its raw fields: the
race suite (its JUnit XML) and launch time (``launch_time``'s A/B). A new
metric is a class like these plus its field in ``schemas/raw.schema.json``."""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import launch_time, outcomes
from .envspec import EnvSpec
from .errors import BadInput
from .fileio import scratch_folder
from .procs import run_streaming
from .suites import PROJECT, Suite, mwe_suite

# Options that would take away the JUnit report every count is read from.
OWN_OPTIONS = re.compile(r"^(--junit-?xml\b|--junit-prefix\b|-p\s*no:junitxml$)")
WORKLOAD = Path(launch_time.__file__).resolve()


@dataclass
class Built:
    """An installed environment (``venv``: a nox Session or a venv)."""
    venv: Any
    spec: EnvSpec
    suite: Suite = field(default_factory=mwe_suite)
    environment: dict[str, Any] = field(default_factory=dict)
    scratch: Path | None = None
    # Added by measurements that ride along in the suite's pytest process.
    pytest_args: tuple[str, ...] = ()
    pytest_env: dict[str, str] = field(default_factory=dict)


class Measurement(Protocol):
    """Raw fields; one in the suite's pytest has ``suite_options(built)``."""
    def measure(self, built: Built) -> dict[str, Any]: ...


def run_all(measurements: Sequence[Measurement], built: Built
            ) -> dict[str, Any]:
    """The measurements' fields, in order, up to an ``env_error``."""
    for measurement in measurements:
        args, env = getattr(measurement, "suite_options",
                            lambda _: ((), {}))(built)
        built.pytest_args += args
        built.pytest_env.update(env)
    fields: dict[str, Any] = {}
    for measurement in measurements:
        fields.update(measurement.measure(built))
        if fields.get("env_error"):
            break
    return fields


@dataclass
class MweRun:
    """One pytest run; ``suite`` and ``runs`` are None without a report."""
    returncode: int
    tail: list[str]
    seconds: float
    suite: dict[str, str] | None
    runs: list[outcomes.RunRecord] | None

    def no_report_reason(self, pytest_args: Sequence[str] = ()) -> str:
        if self.returncode < 0:
            names = {-s.value: s.name for s in signal.Signals}
            return (f"pytest was killed by signal "
                    f"{names.get(self.returncode, -self.returncode)} before "
                    f"its report")
        return (f"pytest exited {self.returncode} without a report: "
                f"{first_error_line(self.tail)}" + (
                    f" (the options after `--`, {' '.join(pytest_args)}, "
                    f"may stop it)" if pytest_args else ""))


def usage_error(run: MweRun) -> str | None:
    """One line, in pytest's words, for arguments rejected or no test run."""
    if run.returncode == 4:  # pytest's usage error
        line = next((line.strip() for line in reversed(run.tail)
                     if re.search(r"\berror:", line)), None) or \
            first_error_line(run.tail)
        return (f"pytest rejected the arguments after `--`: "
                f"{line.removeprefix('ERROR: ')} (see `pytest --help` in "
                f"mwe/, or README.md: Options)")
    if run.returncode == 5:  # pytest's no tests collected
        selected = next((line.strip() for line in run.tail
                         if "deselected" in line or "collected" in line),
                        "no tests ran")
        return (f"pytest ran no test ({selected}): check -k/-m and the "
                f"test names after `--`")
    return None


def refuse_own_options(pytest_args: Sequence[str]) -> str | None:
    """One line for user options that would take the JUnit report away."""
    for arg, after in zip(pytest_args, [*pytest_args[1:], ""]):
        text = f"{arg} {after}" if arg == "-p" else arg
        if OWN_OPTIONS.match(text):
            return (f"`{text}` after `--` would move or turn off the JUnit "
                    f"report that every count is read from: leave it out "
                    f"(the runner writes its own)")
    return None


def first_error_line(lines: Sequence[str]) -> str:
    """The exception line of pytest's output, else its last line."""
    for pattern in (r"^E\s+[\w.]*(Error|Exception)\b",
                    r"^[\w.]*(Error|Exception)\b"):
        for line in lines:
            if re.match(pattern, line.strip()):
                return line.strip().removeprefix("E ").strip()[:300]
    return (lines[-1].strip() if lines else "no output")[:300]


class RaceSuite:
    """``count`` runs of each test, ``timeout`` s each."""

    def __init__(self, count: int, timeout: float,
                 pytest_args: Sequence[str] = (), echo: bool = True) -> None:
        self.count, self.timeout, self.echo = count, timeout, echo
        self.pytest_args = tuple(pytest_args)

    def run(self, built: Built) -> MweRun:
        # In a scratch folder: what the code writes (CuBIE's) goes with it.
        suite = built.suite
        with scratch_folder() as scratch:
            junit = Path(scratch) / "junit.xml"
            started = time.monotonic()
            returncode, tail = run_streaming(built.venv, [
                "python", "-m", "pytest", str(suite.path), "-p",
                "no:cacheprovider", "--count", str(self.count),
                f"--timeout={self.timeout}", f"--junitxml={junit}", "-q",
                "-rN", "--tb=line", *suite.pytest_args, *built.pytest_args,
                *self.pytest_args],
                {**built.pytest_env,
                 "NUMBA_ENABLE_CUDASIM": str(int(built.spec.sim))},
                self.echo, cwd=scratch)
            seconds = time.monotonic() - started
            return MweRun(returncode, tail, seconds, *outcomes.parse_junit(
                junit, suite.signature) or (None, None))

    def measure(self, built: Built) -> dict[str, Any]:
        load = os.getloadavg()[0]
        run = self.run(built)
        if usage := usage_error(run):
            raise BadInput(usage)
        fields: dict[str, Any] = {
            "pytest_seconds": round(run.seconds, 2),
            "load": [round(load, 2), round(os.getloadavg()[0], 2)],
            "pytest_output": "\n".join(run.tail)}
        if run.runs is None or run.suite is None:
            return {**fields, "env_error": run.no_report_reason(
                self.pytest_args), "env_error_detail": "\n".join(run.tail)}
        summary = outcomes.summarize(run.runs, self.count)
        packages, kinds = built.environment.get("packages", {}), built.suite.kinds
        return {**fields, "counts": summary.pop("counts"), "summary": summary,
                "settings": {key: value for key, value in run.suite.items()
                             if key not in packages},
                **({"kinds": outcomes.kind_counts(summary["tests"],
                                                  dict(kinds))}
                   if kinds else {})}


def run_launch_time(env: Any, sim: bool, options: tuple[str, ...] = (),
                    timeout: float | None = None) -> dict:
    """``launch_time``'s A/B alone in ``env``: its record, or an ``error``;
    past ``timeout``, ``run_streaming``'s ``subprocess.TimeoutExpired``."""
    returncode, tail = run_streaming(
        env, ["python", str(WORKLOAD), *options],
        {"NUMBA_ENABLE_CUDASIM": str(int(sim))}, False, timeout=timeout)
    if (record := parse_workload_output(tail)) is None:
        return empty_record(f"the launch-time workload exited {returncode} "
                            f"without a result: {first_error_line(tail)}")
    return record


def parse_workload_output(lines: list[str]) -> dict | None:
    """The ``launch_seconds`` record of the workload's last result line."""
    line = next((line for line in reversed(lines)
                 if line.startswith('{"launch_seconds":')), None)
    try:
        return json.loads(line)["launch_seconds"] if line else None
    except (ValueError, KeyError):
        return None


def empty_record(error: str) -> dict:
    return {"n": 0, "median": None, "p95": None, "max": None, "samples": [],
            "decision": "error", "workload": {}, "error": error}


class LaunchTime:
    """``launch_seconds``: the A/B, by its plugin after the suite's tests."""

    def __init__(self, launches: int, max_launches: int) -> None:
        self.options = ["--pairs", str(launches),
                        "--max-pairs", str(max(max_launches, launches))]

    def suite_options(self, built: Built
                      ) -> tuple[tuple[str, ...], dict[str, str]]:
        return ("-p", launch_time.__name__, "--launch-time-json",
                str(Path(str(built.scratch)) / "launch_seconds.json"),
                "--launch-time-options", shlex.join(self.options)), \
            {"PYTHONPATH": str(PROJECT)}

    def measure(self, built: Built) -> dict:
        try:
            record = json.loads((Path(str(built.scratch)) /
                                 "launch_seconds.json").read_text())[
                "launch_seconds"]
        except (OSError, ValueError, KeyError):
            record = empty_record("the suite's process wrote no launch-time "
                                  "record")
        return {"launch_seconds": record}
