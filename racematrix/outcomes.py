"""pytest's JUnit XML: each test run classified and counted."""
from __future__ import annotations

import enum
import fnmatch
import json
import re
import statistics
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# pytest-timeout's message for a test that ran past its limit.
TIMEOUT_SIGNATURE = re.compile(r"Timeout \(?>\s*[\d.]+s")


class Outcome(str, enum.Enum):
    """What one test run came to; the strings are the raw files' keys."""
    TARGET = "target"  # failed with the suite's signature: the race
    OTHER = "other"  # failed another way
    HANG = "hang"  # ran past the timeout
    PASS = "pass"
    SKIP = "skip"

    def __str__(self) -> str:
        return self.value


# The outcomes that are runs of a test (a skip is not).
RAN = (Outcome.TARGET, Outcome.OTHER, Outcome.HANG, Outcome.PASS)


@dataclass(frozen=True)
class RunRecord:
    name: str
    outcome: Outcome
    message: str
    properties: dict[str, str]
    seconds: float


def base_test_name(name: str, repeat_count: int) -> str:
    """A test's name without pytest-repeat's ``-i-N`` id (added for N > 1)."""
    if repeat_count <= 1:
        return name
    return re.sub(rf"\[(?:(.*)-)?\d+-{repeat_count}\]$",
                  lambda m: f"[{m[1]}]" if m[1] else "", name)


def classify_outcome(kind: str | None, text: str,
                     signature: re.Pattern[str]) -> Outcome:
    """One run's outcome from its result tag (None: a pass) and text."""
    if kind in (None, "skipped"):
        return Outcome.SKIP if kind else Outcome.PASS
    if signature.search(text):
        return Outcome.TARGET
    if TIMEOUT_SIGNATURE.search(text):
        return Outcome.HANG
    return Outcome.OTHER


def parse_junit(path: str | Path, signature: re.Pattern[str]
                ) -> tuple[dict[str, str], list[RunRecord]] | None:
    """(suite properties, [RunRecord]) from pytest's JUnit XML, or None."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    runs = []
    for case in root.iter("testcase"):
        result = next((child for child in case
                       if child.tag in ("failure", "error", "skipped")), None)
        message, text = ("", "") if result is None else (
            result.get("message") or "", result.text or "")
        lines = [line.strip() for line in (message or text).splitlines()]
        runs.append(RunRecord(
            case.get("name", ""), classify_outcome(
                None if result is None else result.tag,
                " ".join(filter(None, (message, text))), signature),
            next((line for line in lines if line), "")[:300],
            _properties(case), float(case.get("time", 0))))
    return {name: value for suite in root.iter("testsuite")
            for name, value in _properties(suite).items()}, runs


def _properties(element: ElementTree.Element) -> dict[str, str]:
    return {prop.get("name", ""): prop.get("value", "")
            for prop in element.iterfind("properties/property")}


def counts_of(outcomes: Iterable[Outcome]) -> dict[Outcome, int]:
    return {**dict.fromkeys(Outcome, 0), **Counter(outcomes)}


def summarize(runs: Sequence[RunRecord], repeat_count: int) -> dict:
    """Outcome counts per test and in all, the failing threads, each test
    function's times and what each test observed."""
    per_test: dict[str, list[Outcome]] = {}
    times: dict[str, list[float]] = {}
    for run in runs:
        per_test.setdefault(base_test_name(run.name, repeat_count),
                            []).append(run.outcome)
        times.setdefault(run.name.split("[", 1)[0], []).append(run.seconds)
    messages = Counter(run.message for run in runs
                       if run.outcome in (Outcome.OTHER, Outcome.HANG))
    observed = {run.name: run.properties["observed"] for run in reversed(runs)
                if "observed" in run.properties}
    return {
        "counts": counts_of(run.outcome for run in runs),
        "tests": {name: counts_of(found)
                  for name, found in sorted(per_test.items())},
        "failing_threads": [
            {**thread, "n_threads": int(run.properties.get("n_threads", 0))}
            for run in runs if "failing_threads" in run.properties
            for thread in json.loads(run.properties["failing_threads"])],
        "first_target_message": next(
            (run.message for run in runs if run.outcome is Outcome.TARGET), ""),
        "other_messages": [{"message": text, "count": count}
                           for text, count in messages.most_common(5)],
        "test_seconds": {name: {"n": len(values),
                                "median": round(statistics.median(values), 3),
                                "max": round(max(values), 3)}
                         for name, values in sorted(times.items())},
        **({"observed": observed} if observed else {}),
    }


def kind_counts(tests: Mapping[str, Mapping[str, int]],
                kinds: Mapping[str, Sequence[str]]) -> dict[str, dict[str, int]]:
    """Counts per kind (kind -> globs; the first that matches a test's name,
    with or without its parameters)."""
    found = {kind: Counter({"runs": 0, "failures": 0, "other": 0, "hangs": 0})
             for kind in kinds}
    for name, counts in tests.items():
        names = (name, name.split("[", 1)[0])
        kind = next((kind for kind, globs in kinds.items() if any(
            fnmatch.fnmatchcase(n, glob) for n in names for glob in globs)), "")
        if kind:
            found[kind].update(runs=sum(counts[o] for o in RAN),
                               failures=counts[Outcome.TARGET],
                               other=counts[Outcome.OTHER],
                               hangs=counts[Outcome.HANG])
    return {kind: dict(counts) for kind, counts in found.items()}
