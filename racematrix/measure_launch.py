"""Launch time as a measurement: ``launch_time``'s pairs (the installed
swap against the unlocked one) in the suite's own pytest process after its
tests (its pytest plugin), so that they never change the suite's rates; and
``LaunchServer``, plain launches served one at a time, for the fixes'
launches and the bisect on time, taken in turn across releases."""
from __future__ import annotations

import json
import queue
import shlex
import subprocess
import threading
from pathlib import Path
from typing import Any

from .procs import die_with_parent, run_streaming, stop_process_group, \
    venv_environ
from .suites import PROJECT

WORKLOAD = Path(__file__).resolve().parent / "launch_time.py"
# Handed to the suite's pytest from outside: the MWE holds no harness.
PLUGIN = "racematrix.launch_time"
RESULT_PREFIX = '{"launch_seconds":'
# A served launch is killed past this (the bisect on time, the fixes).
LIMIT = 20.0
# The served launches' workload (the bisect on time's and the fixes'): the
# lock's price shows as stalls, and a stall needs a long launch.
ROW_DEVICE_CALLS = 1000
ROW_LOCATION = "persistent"


def run_launch_time(env: Any, sim: bool, options: tuple[str, ...] = (),
                    echo: bool = False) -> dict:
    """``racematrix/launch_time.py`` (its pairs) in ``env`` (a nox Session
    or a ``venv.ProbeEnvironment``): its ``launch_seconds`` record, or one
    with ``n`` 0 and an ``error`` naming the last line it printed."""
    returncode, tail = run_streaming(
        env, ["python", str(WORKLOAD), *options],
        {"NUMBA_ENABLE_CUDASIM": str(int(sim))}, echo)
    record = parse_workload_output(tail)
    if record is None:
        last = next((line for line in reversed(tail) if line.strip()),
                    "no output")
        return empty_record(f"the launch-time workload exited {returncode} "
                            f"without a result: {last.strip()[:300]}")
    return record


# A server's start: numba imported and the kernel built.
SERVER_START = 120.0
# Past a launch's limit: the fork's kill, then the answer.
SERVER_GRACE = 10.0


class LaunchServer:
    """One environment's workload kept alive between launches
    (``launch_time.py --worker``): numba imported and the kernel built
    once, each launch run in a fork of it and killed there at its limit.
    Several releases' servers can then take launches in turn, one launch
    each, so that the machine's load over time falls on all of them alike.
    ``launch(limit)`` returns ("done" | "past" | "race", seconds) or
    ("error", why); a server that failed stays failed."""

    def __init__(self, env, sim, limit, workload_args=()):
        self.failed = None
        command = [str(Path(env.bin) / "python"), str(WORKLOAD), "--worker",
                   "--limit", str(limit), *workload_args]
        env.log(" ".join(command))
        self.process = subprocess.Popen(
            command, env=venv_environ(env.bin, {
                "NUMBA_ENABLE_CUDASIM": str(int(sim))}),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1,
            start_new_session=True, preexec_fn=die_with_parent)
        self.lines, self.tail = queue.Queue(), []
        threading.Thread(target=self._read, daemon=True).start()
        answer = self._answer(SERVER_START)
        if answer and answer[0] == "error":  # its own one-line reason
            self.failed = " ".join(answer[1:])
            self.close()
        elif answer != ["ready"]:
            self._fail("it did not start")

    def _read(self):
        for line in self.process.stdout:
            self.tail = (self.tail + [line.rstrip()])[-20:]
            words = line.split()
            if words and words[0] in ("ready", "done", "past", "race",
                                      "error"):
                self.lines.put(words)
        self.lines.put(None)

    def _answer(self, timeout):
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def _fail(self, why):
        last = next((line for line in reversed(self.tail) if line.strip()),
                    "no output")
        self.failed = f"the launch-time worker failed: {why} ({last[:300]})"
        self.close()

    def launch(self, limit):
        if self.failed:
            return "error", self.failed
        try:
            self.process.stdin.write(f"go {limit}\n")
            self.process.stdin.flush()
        except OSError:
            self._fail("it exited")
            return "error", self.failed
        answer = self._answer(limit + SERVER_GRACE)
        if not answer or answer[0] not in ("done", "past", "race"):
            if answer and answer[0] == "error":
                self.tail.append(" ".join(answer[1:]))
            self._fail("no answer in time" if answer is None
                       else "a launch failed")
            return "error", self.failed
        return answer[0], float(answer[1])

    def close(self):
        if self.process.poll() is None:
            stop_process_group(self.process)


def workload_options(workload):
    """``racematrix/launch_time.py``'s options for workload settings such as
    ``{"device_calls": 1000}``: ``["--device-calls", "1000"]``."""
    return [arg for name, value in workload.items()
            for arg in (f"--{name.replace('_', '-')}", str(value))]


def parse_workload_output(lines):
    """The ``launch_seconds`` record from the workload's output lines (the
    last such line), or None."""
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

    def __init__(self, launches: int = 3, max_launches: int = 6,
                 device_calls: int | None = None) -> None:
        self.launches = launches
        self.max_launches = max(max_launches, launches)
        self.device_calls = device_calls

    def options(self) -> list[str]:
        options = ["--pairs", str(self.launches),
                   "--max-pairs", str(self.max_launches)]
        if self.device_calls:
            options += ["--device-calls", str(self.device_calls)]
        return options

    def _file(self, built: Any) -> Path:
        return Path(built.scratch) / "launch_seconds.json"

    def suite_args(self, built: Any) -> tuple[str, ...]:
        return ("-p", PLUGIN, "--launch-time-json", str(self._file(built)),
                "--launch-time-options", shlex.join(self.options()))

    def suite_env(self, built: Any) -> dict[str, str]:
        """What the suite's pytest process needs to import the plugin."""
        return {"PYTHONPATH": str(PROJECT)}

    def measure(self, built: Any) -> dict:
        try:
            record = json.loads(self._file(built).read_text())[
                "launch_seconds"]
        except (OSError, ValueError, KeyError):
            record = empty_record("the suite's process wrote no launch-time "
                                  "record")
        record["concurrency"] = built.running()
        return {"launch_seconds": record}
