"""The race suite as a measurement: a suite's tests under pytest-repeat in a
built environment, read from their JUnit XML."""
from __future__ import annotations

import re
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import outcomes
from .errors import BadInput
from .fileio import scratch_folder
from .measurement import Built
from .procs import run_streaming
from .suites import MWE_SUITE

# pytest's exit codes for "your arguments are wrong" and "nothing to run".
PYTEST_USAGE_ERROR = 4
PYTEST_NO_TESTS = 5
# Options that would take away the JUnit report every count is read from.
OWN_OPTIONS = re.compile(r"^(--junit-?xml\b|--junit-prefix\b|-p\s*no:junitxml$)")


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
            signals = {-s.value: s.name for s in signal.Signals}
            return (f"pytest was killed by signal "
                    f"{signals.get(self.returncode, -self.returncode)} "
                    f"before its report")
        return (f"pytest exited {self.returncode} without a report: "
                f"{first_error_line(self.tail)}" + (
                    f" (the options after `--`, {' '.join(pytest_args)}, "
                    f"may stop it)" if pytest_args else ""))


def usage_error(run: MweRun) -> str | None:
    """One line, in pytest's words, for arguments rejected or no test run."""
    if run.returncode == PYTEST_USAGE_ERROR:
        line = next((line.strip() for line in reversed(run.tail)
                     if re.search(r"\berror:", line)), None) or \
            first_error_line(run.tail)
        return (f"pytest rejected the arguments after `--`: "
                f"{line.removeprefix('ERROR: ')} (see `pytest --help` in "
                f"mwe/, or README.md: Options)")
    if run.returncode == PYTEST_NO_TESTS:
        selected = next((line.strip() for line in run.tail
                         if "deselected" in line or "collected" in line),
                        "no tests ran")
        return (f"pytest ran no test ({selected}): check -k/-m and the "
                f"test names after `--`")
    return None


def refuse_own_options(pytest_args: Sequence[str]) -> str | None:
    """One line for user options that would take the JUnit report away."""
    args = [*pytest_args, ""]
    for index, arg in enumerate(args[:-1]):
        text = f"{arg} {args[index + 1]}" if arg == "-p" else arg
        if OWN_OPTIONS.match(text):
            return (f"`{text}` after `--` would move or turn off the JUnit "
                    f"report that every count is read from: leave it out "
                    f"(the runner writes its own)")
    return None


def first_error_line(lines: Sequence[str]) -> str:
    """The exception line of pytest's output (``E   ...Error: ...`` first),
    else the last line."""
    for pattern in (r"^E\s+[\w.]*(Error|Exception)\b", r"^[\w.]*(Error|Exception)\b"):
        for line in lines:
            if re.match(pattern, line.strip()):
                return line.strip().removeprefix("E ").strip()[:300]
    return (lines[-1].strip() if lines else "no output")[:300]


class RaceSuite:
    """``count`` runs of each test of the suite, ``timeout`` s each before a
    run counts as hung. Arguments pytest rejects raise ``BadInput`` (the
    user's, not the environment's); ``last_run`` keeps the run."""
    name = "race"

    def __init__(self, count: int, timeout: float,
                 pytest_args: Sequence[str] = (), echo: bool = True) -> None:
        self.count, self.timeout, self.echo = count, timeout, echo
        self.pytest_args = tuple(pytest_args)
        self.last_run: MweRun | None = None

    def run(self, built: Built) -> MweRun:
        # From a scratch folder: what the code writes there (CuBIE's
        # generated code) goes with it.
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
            try:
                return MweRun(returncode, tail, seconds,
                              *outcomes.parse_junit(junit, suite.signature))
            except outcomes.JUnitError:
                return MweRun(returncode, tail, seconds, None, None)

    def measure(self, built: Built) -> dict[str, Any]:
        concurrency = built.running()
        run = self.last_run = self.run(built)
        usage = usage_error(run)
        if usage:
            raise BadInput(usage)
        fields: dict[str, Any] = {
            "pytest_seconds": round(run.seconds, 2),
            "concurrency": max(concurrency, built.running()),
            "pytest_output": "\n".join(run.tail)}
        if run.runs is None or run.suite is None:
            return {**fields, "env_error": run.no_report_reason(
                self.pytest_args), "env_error_detail": "\n".join(run.tail)}
        summary = outcomes.summarize(run.runs, self.count)
        if built.suite.name != MWE_SUITE.name:
            summary.update(outcomes.suite_evidence(run.runs))
        packages, kinds = built.environment.get("packages", {}), built.suite.kinds
        return {**fields, "counts": summary.pop("counts"), "summary": summary,
                "settings": {key: value for key, value in run.suite.items()
                             if key not in packages},
                **({"kinds": outcomes.kind_counts(summary["tests"],
                                                  dict(kinds))}
                   if kinds else {})}
