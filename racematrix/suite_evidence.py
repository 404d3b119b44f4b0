"""What a suite's JUnit XML says beyond pass and fail: where each race
failure was raised, and how long the tests took (a client suite's raw
record carries both)."""
from __future__ import annotations

import re
import statistics
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .outcomes import RACE_SIGNATURE, Outcome, RunRecord

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
        if run.outcome is not Outcome.TARGET:
            continue
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


def seconds_per_test(junit_path: str | Path) -> dict[str, dict[str, float]]:
    """Per test function (parameters dropped): how many runs, and the
    median and largest of their durations from the JUnit XML."""
    root = ElementTree.parse(junit_path).getroot()
    times: dict[str, list[float]] = {}
    for case in root.iter("testcase"):
        name = case.get("name", "").split("[", 1)[0]
        times.setdefault(name, []).append(float(case.get("time", 0)))
    return {name: {"n": len(values),
                   "median": round(statistics.median(values), 3),
                   "max": round(max(values), 3)}
            for name, values in sorted(times.items())}


def observed_values(runs: Sequence[RunRecord]) -> dict[str, str]:
    """What each test recorded as its ``observed`` JUnit property (the
    semantics suite's cases), by test name; the first run's where a test
    ran more than once."""
    found: dict[str, str] = {}
    for run in runs:
        if "observed" in run.properties:
            found.setdefault(run.name, run.properties["observed"])
    return found


def suite_evidence(runs: Sequence[RunRecord], junit_path: str | Path
                   ) -> dict[str, Any]:
    """What a suite's raw record adds to its summary: where each race
    failure was raised, and the tests' durations. ``runs`` classified with
    the suite's own signature; call it while the JUnit file exists."""
    evidence: dict[str, Any] = {"race_sites": race_sites(runs),
                "test_seconds": seconds_per_test(junit_path)}
    observed = observed_values(runs)
    if observed:
        evidence["observed"] = observed
    return evidence
