"""Reading pytest's JUnit XML: each test run classified, counted per test
and per kind, and what a client suite's raw record adds (where each race
failure was raised, how long the tests took)."""
from __future__ import annotations

import enum
import fnmatch
import json
import re
import statistics
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The race's signature: the simulator names the thread, then the attribute
# lookup on the real ``numba.cuda`` module fails. Nothing else produces it.
RACE_SIGNATURE = re.compile(
    r"tid=\[[\d, ]+\] ctaid=\[[\d, ]+\]: "
    r"module '[\w.]*cuda' has no attribute 'local'")
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


class JUnitError(ValueError):
    """The JUnit XML file is missing or cannot be read."""


@dataclass(frozen=True)
class RunRecord:
    name: str
    outcome: Outcome
    message: str = ""
    properties: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def base_test_name(name: str, repeat_count: int) -> str:
    """A test's name without the ``-i-N`` id that pytest-repeat adds when it
    repeats a test N > 1 times."""
    if repeat_count <= 1:
        return name
    return re.sub(rf"\[(?:(.*)-)?\d+-{repeat_count}\]$",
                  lambda m: f"[{m[1]}]" if m[1] else "", name)


def classify_outcome(kind: str | None, text: str,
                     signature: re.Pattern[str] = RACE_SIGNATURE) -> Outcome:
    """Classify one test run from its JUnit result kind (``failure``,
    ``error``, ``skipped`` or ``None`` for a pass) and the message text;
    ``signature`` is the suite's: what counts as the bug."""
    if kind is None:
        return Outcome.PASS
    if kind == "skipped":
        return Outcome.SKIP
    if signature.search(text):
        return Outcome.TARGET
    if TIMEOUT_SIGNATURE.search(text):
        return Outcome.HANG
    return Outcome.OTHER


def parse_junit(path: str | Path, signature: re.Pattern[str] = RACE_SIGNATURE
                ) -> tuple[dict[str, str], list[RunRecord]]:
    """Return (suite properties, [RunRecord]) from a pytest JUnit XML file;
    a failure matching ``signature`` is the target."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as error:
        raise JUnitError(f"cannot read JUnit XML {path}: {error}") from None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    suite_properties: dict[str, str] = {}
    runs: list[RunRecord] = []
    for suite in suites:
        suite_properties.update(_properties(suite))
        for case in suite.iter("testcase"):
            result = next((child for child in case
                           if child.tag in ("failure", "error", "skipped")),
                          None)
            kind = None if result is None else result.tag
            text = "" if result is None else " ".join(
                filter(None, (result.get("message"), result.text)))
            runs.append(RunRecord(
                name=case.get("name", ""),
                outcome=classify_outcome(kind, text, signature),
                message=_first_line(result.get("message") or result.text or "")
                if result is not None else "",
                properties=_properties(case),
                seconds=float(case.get("time", 0))))
    return suite_properties, runs


def _properties(element: ElementTree.Element) -> dict[str, str]:
    return {prop.get("name", ""): prop.get("value", "")
            for prop in element.iterfind("properties/property")}


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines()]
    return next((line for line in lines if line), "")[:300]


def counts_of(outcomes: Iterable[Outcome]) -> dict[Outcome, int]:
    """How many runs came to each outcome (every outcome there)."""
    totals = Counter(outcomes)
    return {outcome: totals[outcome] for outcome in Outcome}


def summarize(runs: Sequence[RunRecord], repeat_count: int) -> dict:
    """Counts of each outcome, per test and in all, plus evidence recorded by
    the MWE's controls (failing thread indices against n_threads)."""
    per_test: dict[str, list[Outcome]] = {}
    for run in runs:
        per_test.setdefault(base_test_name(run.name, repeat_count),
                            []).append(run.outcome)
    failing_threads = []
    for run in runs:
        if "failing_threads" in run.properties:
            n_threads = int(run.properties.get("n_threads", 0))
            for thread in json.loads(run.properties["failing_threads"]):
                failing_threads.append({**thread, "n_threads": n_threads})
    messages = Counter(run.message for run in runs
                       if run.outcome in (Outcome.OTHER, Outcome.HANG))
    return {
        "counts": counts_of(run.outcome for run in runs),
        "tests": {name: counts_of(found)
                  for name, found in sorted(per_test.items())},
        "failing_threads": failing_threads,
        "first_target_message": next(
            (run.message for run in runs if run.outcome is Outcome.TARGET), ""),
        "other_messages": [{"message": text, "count": count}
                           for text, count in messages.most_common(5)],
    }


def kind_of(name: str, kinds: Mapping[str, Sequence[str]]) -> str | None:
    """The kind of the test ``name`` (pytest-repeat's id left out): the
    first of ``kinds`` (kind -> globs, in order) with a glob that matches
    the name or the name without its parameters; None where none does."""
    bare = name.split("[", 1)[0]
    for kind, globs in kinds.items():
        if any(fnmatch.fnmatchcase(name, glob) or
               fnmatch.fnmatchcase(bare, glob) for glob in globs):
            return kind
    return None


def kind_counts(tests: Mapping[str, Mapping[str, int]],
                kinds: Mapping[str, Sequence[str]]) -> dict[str, dict[str, int]]:
    """Runs, race failures, other failures and hangs per kind of test,
    from ``summarize``'s per-test counts; every declared kind is there,
    with zeros where none of its tests ran."""
    found = {kind: {"runs": 0, "failures": 0, "other": 0, "hangs": 0}
             for kind in kinds}
    for name, counts in tests.items():
        kind = kind_of(name, kinds)
        if kind is None:
            continue
        into = found[kind]
        into["runs"] += sum(counts[outcome] for outcome in RAN)
        into["failures"] += counts[Outcome.TARGET]
        into["other"] += counts[Outcome.OTHER]
        into["hangs"] += counts[Outcome.HANG]
    return found


ATTRIBUTE = re.compile(r"has no attribute '(\w+)'")


def race_sites(runs: Sequence[RunRecord],
               mwe_signature: re.Pattern[str] = RACE_SIGNATURE
               ) -> list[dict[str, Any]]:
    """Where the suite's target failures were raised, from the properties
    each failing test records (``raised_at``, ``raised_line``,
    ``raised_in``), most frequent first; ``mwe_signature`` says whether the
    message is also the MWE's signature, word for word."""
    sites: Counter[tuple] = Counter()
    for run in runs:
        if run.outcome is Outcome.TARGET:
            attribute = ATTRIBUTE.search(run.message)
            sites[(run.properties.get("raised_at", ""),
                   run.properties.get("raised_line", ""),
                   run.properties.get("raised_in", ""),
                   attribute[1] if attribute else "",
                   bool(mwe_signature.search(run.message)))] += 1
    return [{"raised_at": at, "line": line, "function": function,
             "attribute": attribute, "mwe_signature": mwe, "count": count}
            for (at, line, function, attribute, mwe), count
            in sites.most_common()]


def seconds_per_test(runs: Sequence[RunRecord]) -> dict[str, dict[str, float]]:
    """Per test function (parameters dropped): how many runs, and the
    median and largest of their durations."""
    times: dict[str, list[float]] = {}
    for run in runs:
        times.setdefault(run.name.split("[", 1)[0], []).append(run.seconds)
    return {name: {"n": len(values),
                   "median": round(statistics.median(values), 3),
                   "max": round(max(values), 3)}
            for name, values in sorted(times.items())}


def suite_evidence(runs: Sequence[RunRecord]) -> dict[str, Any]:
    """What a client suite's raw record adds to its summary: where each
    race failure was raised, the tests' durations, and what each test
    recorded as its ``observed`` property (the first run's)."""
    observed: dict[str, str] = {}
    for run in runs:
        if "observed" in run.properties:
            observed.setdefault(run.name, run.properties["observed"])
    return {"race_sites": race_sites(runs),
            "test_seconds": seconds_per_test(runs),
            **({"observed": observed} if observed else {})}
