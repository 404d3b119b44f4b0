"""Reading pytest's JUnit XML and classifying each test run."""
from __future__ import annotations

import fnmatch
import json
import re
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# The race's signature: the simulator names the thread, then the attribute
# lookup on the real ``numba.cuda`` module fails. Nothing else produces it.
RACE_SIGNATURE = re.compile(
    r"tid=\[[\d, ]+\] ctaid=\[[\d, ]+\]: "
    r"module '[\w.]*cuda' has no attribute 'local'")
# pytest-timeout's message for a test that ran past its limit.
TIMEOUT_SIGNATURE = re.compile(r"Timeout \(?>\s*[\d.]+s")

TARGET = "target"
OTHER = "other"
HANG = "hang"
PASS = "pass"
SKIP = "skip"
OUTCOMES = (TARGET, OTHER, HANG, PASS, SKIP)


class JUnitError(ValueError):
    """The JUnit XML file is missing or cannot be read."""


@dataclass(frozen=True)
class RunRecord:
    name: str
    outcome: str
    message: str = ""
    properties: dict = field(default_factory=dict)


def base_test_name(name, repeat_count):
    """A test's name without the ``-i-N`` id that pytest-repeat adds when it
    repeats a test N > 1 times."""
    if repeat_count <= 1:
        return name
    return re.sub(rf"\[(?:(.*)-)?\d+-{repeat_count}\]$",
                  lambda m: f"[{m[1]}]" if m[1] else "", name)


def classify_outcome(kind, text, signature=RACE_SIGNATURE):
    """Classify one test run from its JUnit result kind (``failure``,
    ``error``, ``skipped`` or ``None`` for a pass) and the message text;
    ``signature`` is the suite's: what counts as the bug."""
    if kind is None:
        return PASS
    if kind == "skipped":
        return SKIP
    if signature.search(text):
        return TARGET
    if TIMEOUT_SIGNATURE.search(text):
        return HANG
    return OTHER


def parse_junit(path, signature=RACE_SIGNATURE):
    """Return (suite properties, [RunRecord]) from a pytest JUnit XML file;
    a failure matching ``signature`` is the target."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as error:
        raise JUnitError(f"cannot read JUnit XML {path}: {error}") from None
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    suite_properties = {}
    runs = []
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
                properties=_properties(case)))
    return suite_properties, runs


def _properties(element):
    found = {}
    holder = element.find("properties")
    for prop in [] if holder is None else holder.findall("property"):
        found[prop.get("name")] = prop.get("value")
    return found


def _first_line(text):
    lines = [line.strip() for line in text.strip().splitlines()]
    return next((line for line in lines if line), "")[:300]


def summarize(runs, repeat_count):
    """Counts of each outcome, per test and in all, plus evidence recorded by
    the MWE's controls (failing thread indices against n_threads)."""
    totals = Counter(run.outcome for run in runs)
    per_test = {}
    for run in runs:
        per_test.setdefault(base_test_name(run.name, repeat_count),
                            Counter())[run.outcome] += 1
    failing_threads = []
    for run in runs:
        if "failing_threads" in run.properties:
            n_threads = int(run.properties.get("n_threads", 0))
            for thread in json.loads(run.properties["failing_threads"]):
                failing_threads.append({**thread, "n_threads": n_threads})
    messages = Counter(run.message for run in runs
                       if run.outcome in (OTHER, HANG))
    return {
        "counts": {outcome: totals.get(outcome, 0) for outcome in OUTCOMES},
        "tests": {name: {outcome: counter.get(outcome, 0)
                         for outcome in OUTCOMES}
                  for name, counter in sorted(per_test.items())},
        "failing_threads": failing_threads,
        "first_target_message": next(
            (run.message for run in runs if run.outcome == TARGET), ""),
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
        into["runs"] += sum(counts[outcome] for outcome in
                            (TARGET, OTHER, HANG, PASS))
        into["failures"] += counts[TARGET]
        into["other"] += counts[OTHER]
        into["hangs"] += counts[HANG]
    return found
