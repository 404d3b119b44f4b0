"""The report's structure: one plain dict from table rows, raw records,
bisect files and recorded runs; templates word it, tests assert it."""
from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from .price_sections import (cubie, cubie_price, interleaved, launch,
                             lock_share, own_tests, patches, price, proposal,
                             regression_test, reproducer_runs, seconds,
                             slowdown)
from .tables import grid, target_version, version_or_zero

CONTROL_TESTS = {
    "trigger": "test_syncthreads_trigger",
    "kernel_module": "test_control_allocator_in_kernel_module",
}


def probe_launch(probe: dict, limit: float | None) -> dict:
    return {"n": probe.get("n"), "past_limit": probe.get("past_limit", 0),
            "median": seconds(probe.get("median"), limit),
            "p95": seconds(probe.get("p95"), limit)}


def bisect_entry(data: dict) -> dict:
    """One bisect file: the boundary's sides and, in a bisect on time,
    their launches and the newest release's (``end``)."""
    releases, limit = data.get("releases") or [], data.get("limit")
    timed = data.get("metric") == "launch-time"
    tested = {t["version"]: t for t in data.get("tested", [])}
    boundary = data.get("boundary") or {}
    sides = {name: {**found, "launch": probe_launch(
        tested.get(found["version"], {}), limit) if timed else None}
        if (found := boundary.get(name)) else None
        for name in ("before", "after")}
    end = next((t for t in reversed(data.get("tested", [])) if releases
                and t["version"] == releases[-1] and t.get("n")), None)
    return {"package": data["package"], "python": data["python"],
            "with": data.get("with") or [], "releases": releases,
            "first": (releases or ["–"])[0], "last": (releases or ["–"])[-1],
            **sides, "probes": data["decisive_probes"],
            "partial": bool(data.get("partial")), "summary": data["summary"],
            "limit": limit,
            "end": {"version": releases[-1], **probe_launch(end, limit)}
            if timed and end else None,
            "command": data["provenance"]["command"],
            "finished": data["provenance"].get("finished")}


def status(mwe: list[dict], bisects: list[dict]) -> dict:
    """Per target: where its bisects placed the fix, and how many
    environments reproduced the race before and after it."""
    ran = [r for r in mwe if r["verdict"] in ("reproduced", "not-reproduced")]
    targets = {}
    for target in sorted({r["target"] for r in ran}):
        mine = [r for r in ran if r["target"] == target]
        racy = [r for r in mine if r["verdict"] == "reproduced"]
        flips = [b for b in bisects if b["package"] == target and b["after"]]
        first_fixed = min((b["after"]["version"] for b in flips),
                          key=version_or_zero, default=None)
        fixed, before = [], []
        for r in mine if first_fixed else ():
            (fixed if version_or_zero(target_version(r))
             >= version_or_zero(first_fixed) else before).append(r)
        targets[target] = {
            "before_environments": len(before),
            "before_reproduced": sum(r["verdict"] == "reproduced"
                                     for r in before),
            "before_releases": sorted({target_version(r) for r in before},
                                      key=version_or_zero),
            "fixed_runs": sum(r["runs"] for r in fixed),
            "fixed_failures": sum(r["failures"] for r in fixed),
            "environments": len(mine), "reproduced": len(racy),
            "newest_racy": max((target_version(r) for r in racy),
                               key=version_or_zero, default=None),
            "fixed_between": sorted({(b["before"]["version"],
                                      b["after"]["version"]) for b in flips}),
            "bisect_pythons": sorted({b["python"] for b in flips},
                                     key=version_or_zero),
            # the releases on the index that the bisects chose from
            "released": sorted({v for b in flips for v in b["releases"]},
                               key=version_or_zero)}
    return targets


def evidence(records: list[dict]) -> dict:
    """The MWE's controls, over the records that reproduced the race."""
    totals = {name: {"runs": 0, "target": 0, "other": 0, "envs": 0}
              for name in CONTROL_TESTS}
    threads: Counter[str] = Counter()
    for record in records:
        if record["verdict"] != "reproduced" or \
                record.get("suite", "mwe") != "mwe":
            continue
        tests = record.get("summary", {}).get("tests", {})
        for name, test in CONTROL_TESTS.items():
            cases = [c for n, c in tests.items() if n.split("[")[0] == test]
            totals[name]["envs"] += bool(cases)
            for counts in cases:
                totals[name]["runs"] += sum(counts[k] for k in (
                    "target", "other", "hang", "pass"))
                totals[name]["target"] += counts["target"]
                totals[name]["other"] += counts["other"] + counts["hang"]
        for thread in record.get("summary", {}).get("failing_threads", []):
            threads["early" if thread["index"] >= thread["n_threads"]
                    else "working"] += 1
    return {**totals, "failing_threads": dict(threads)}


def stacks(out_dir: Path | None) -> dict | None:
    """The newest launch caught past its limit: threads per simulator frame."""
    kept = sorted(Path(out_dir).glob("launch_time_stacks/*.stack.txt"),
                  key=lambda p: p.name) if out_dir else []
    if not kept:
        return None
    path = kept[-1]
    threads = [block for block in path.read_text().split("\n\n")
               if block.strip().startswith(("Thread", "Current thread"))]
    tops: Counter[str] = Counter()
    for block in threads:
        frames = [line.strip() for line in block.splitlines()[1:]
                  if line.strip().startswith("File")]
        top = frames[0] if frames else ""
        tops[re.sub(r'File ".*/', 'File "', top) if "/simulator/" in top
             else "elsewhere (the launcher, Python's threading)"] += 1
    return {"env": path.name.removesuffix(".stack.txt"),
            "threads": len(threads), "frames": tops.most_common()}


def build(rows: list[dict], records: list[dict], bisects: list[dict],
          time_bisects: list[dict], provenance: dict,
          reproducers: dict | None = None, out_dir: Path | None = None,
          figures: dict | None = None, fix_launches: dict | None = None,
          described: dict | None = None,
          race_rates: list[dict] | None = None) -> dict:
    """The report's whole structure."""
    mwe = [r for r in rows if r.get("suite", "mwe") == "mwe"
           and not r.get("patch")]
    race = [bisect_entry(b) for b in bisects]
    time = [bisect_entry(b) for b in time_bisects]
    ran = [r for r in mwe if r["verdict"] != "skipped"]
    skipped = defaultdict(list)
    for row in mwe:
        if row["verdict"] == "skipped":
            skipped[row["reason"]].append(row["env"])
    racy_launch = [r["launch_seconds"]["median"] for r in ran
                   if r["verdict"] == "reproduced" and launch(r)]
    cost = price(rows, time)
    timed = interleaved(fix_launches, (cost or {}).get("python"))
    found = patches(rows, described)
    clients = cubie(records)
    chosen = proposal(found, cost, timed)
    regression = regression_test(race_rates or [])
    # A patch that takes out one part of a fix to see what it costs says
    # so in its description (pyproject.toml).
    attribution = sorted(name for name, text in (described or {}).items()
                         if (text or "").startswith("attribution"))
    return {
        "provenance": provenance,
        "verdicts": dict(Counter(r["verdict"] for r in rows)),
        "rows": rows, "grid": grid(ran),
        "skipped": dict(sorted(skipped.items())),
        "last_attempts": [r for r in rows if r.get("last_attempt")],
        "error": next((r["summary"]["first_target_message"] for r in records
                       if (r.get("summary") or {}).get("first_target_message")),
                      None),
        "status": status(mwe, race),
        "bisects": race, "time_bisects": time, "price": cost,
        "racy_median": statistics.median(racy_launch) if racy_launch else None,
        "cubie": clients, "cubie_price": cubie_price(clients),
        "own_tests": own_tests(records), "patches": found,
        "proposal": chosen, "interleaved": timed,
        "slowdown": slowdown(fix_launches),
        "regression_test": regression,
        # the Python most of the regression test's runs were on
        "regression_python": Counter(r["python"] for r in regression)
        .most_common(1)[0][0] if regression else None,
        "attribution": attribution,
        "lock_share": {name: lock_share(timed, name) for name in attribution},
        # The changes the upstream texts show: the proposed one, and the
        # attribution; they name them in words, not by the patch's name.
        "upstream_changes": ([chosen["name"]] if chosen else [])
        + [name for name in attribution if name in {p["name"] for p in found}],
        "evidence": evidence(records), "stacks": stacks(out_dir),
        "reproducers": reproducer_runs(reproducers), "figures": figures,
        "commands": [b["command"] for b in race + time],
    }
