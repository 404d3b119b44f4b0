"""The race suite as a measurement: a suite's pytest tests (the MWE, or a
client's) under pytest-repeat in a built environment, its JUnit XML read
into outcome counts, per-test counts and evidence."""
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
# Options that would take the JUnit report, which every count is read
# from, away from the runner.
OWN_OPTIONS = re.compile(r"^(--junit-?xml\b|--junit-prefix\b|-p\s*no:junitxml$)")


@dataclass
class MweRun:
    """One pytest run of a suite: its exit code, last output lines, wall
    time, and what its JUnit XML says (None for both without a report)."""
    returncode: int
    tail: list[str]
    seconds: float
    suite: dict[str, str] | None
    runs: list[outcomes.RunRecord] | None
    evidence: dict[str, Any] | None = None

    def no_report_reason(self, pytest_args: Sequence[str] = ()) -> str:
        if self.returncode < 0:
            try:
                name = signal.Signals(-self.returncode).name
            except ValueError:
                name = str(-self.returncode)
            return f"pytest was killed by signal {name} before its report"
        reason = (f"pytest exited {self.returncode} without a report: "
                  f"{first_error_line(self.tail)}")
        if pytest_args:
            reason += (f" (the options after `--`, {' '.join(pytest_args)}, "
                       f"may stop it)")
        return reason


def usage_error(run: MweRun) -> str | None:
    """One line for a pytest run that rejected its arguments or collected
    nothing, in pytest's own words; None for a run that ran."""
    if run.returncode == PYTEST_USAGE_ERROR:
        line = next((line.strip() for line in reversed(run.tail)
                     if re.search(r"\berror:", line)), None)
        line = line or first_error_line(run.tail)
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
    """One line for user pytest options that would move or turn off the
    JUnit report the runner reads; None where there are none."""
    args = list(pytest_args)
    for index, arg in enumerate(args):
        text = f"{arg} {args[index + 1]}" if arg == "-p" and \
            index + 1 < len(args) else arg
        if OWN_OPTIONS.match(text):
            return (f"`{text}` after `--` would move or turn off the JUnit "
                    f"report that every count is read from: leave it out "
                    f"(the runner writes its own)")
    return None


def first_error_line(lines: Sequence[str]) -> str:
    """The line that names the error in pytest's output: an exception line
    of a traceback (``E   ...Error: ...``) first, else the last line."""
    for pattern in (r"^E\s+[\w.]*(Error|Exception)\b", r"^[\w.]*(Error|Exception)\b"):
        for line in lines:
            if re.match(pattern, line.strip()):
                return line.strip().removeprefix("E ").strip()[:300]
    return (lines[-1].strip() if lines else "no output")[:300]


class RaceSuite:
    """``count`` runs of every test of the built environment's suite
    (pytest-repeat), ``timeout`` seconds each before a run counts as hung;
    ``pytest_args`` are the user's. Returns the raw fields ``counts``,
    ``summary``, ``settings``, ``pytest_seconds`` and ``concurrency``, or
    ``env_error`` where pytest wrote no report. Arguments pytest rejects
    raise ``BadInput``: they are the user's, not the environment's.
    ``last_run`` keeps the run itself for callers that need more (the
    bisect reads its size)."""
    name = "race"

    def __init__(self, count: int, timeout: float,
                 pytest_args: Sequence[str] = (), echo: bool = True) -> None:
        self.count = count
        self.timeout = timeout
        self.pytest_args = tuple(pytest_args)
        self.echo = echo
        self.last_run: MweRun | None = None

    def run(self, built: Built) -> MweRun:
        """The suite once in the built environment, from a scratch folder:
        what its code writes to the working folder (CuBIE generates code
        there) goes with it."""
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
                properties, runs = outcomes.parse_junit(junit, suite.signature)
            except outcomes.JUnitError:
                return MweRun(returncode, tail, seconds, None, None)
            return MweRun(returncode, tail, seconds, properties, runs,
                          None if suite.name == MWE_SUITE.name
                          else outcomes.suite_evidence(runs))

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
        summary.update(run.evidence or {})
        packages = built.environment.get("packages", {})
        kinds = built.suite.kinds
        return {**fields, "counts": summary.pop("counts"), "summary": summary,
                "settings": {key: value for key, value in run.suite.items()
                             if key not in packages},
                **({"kinds": outcomes.kind_counts(summary["tests"],
                                                  dict(kinds))}
                   if kinds else {})}
