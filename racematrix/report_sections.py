"""The report's structure: one plain dict built from table rows, raw
records, bisect files and the reproducers' recorded runs. Templates
(``racematrix/templates``) turn it into prose; tests assert the dict.
Nothing here writes a file or words a sentence."""
from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from .markdown import table
from .tables import (grid, package_cell, python_minor, target_version,
                     version_or_zero)

PIVOT_OVER = 24  # environments; a longer table becomes one row per release
CONTROL_TESTS = {
    "trigger": "test_syncthreads_trigger",
    "kernel_module": "test_control_allocator_in_kernel_module",
    "did_work": "test_control_failing_threads_did_work",
}


def seconds(value: float | None, limit: float | None = None) -> dict | None:
    """A launch statistic: its value, and whether it was cut at ``limit``
    (launches past the limit count at it, so a statistic at the limit is
    only a lower bound)."""
    if value is None:
        return None
    censored = limit is not None and limit > 0 and value >= limit - 1e-9
    return {"value": round(limit if censored and limit else value, 3),
            "censored": censored}


def launch(record: dict | None) -> dict | None:
    """A row's launch times: n, median, p95, max (each maybe a bound), the
    launches cut, the sessions beside it."""
    data = (record or {}).get("launch_seconds") or {}
    if not data.get("n"):
        return None
    limit = data.get("limit")
    return {"n": data["n"], "median": seconds(data["median"], limit),
            "p95": seconds(data["p95"], limit),
            "max": seconds(data["max"], limit), "limit": limit,
            "past_limit": data.get("past_limit", 0),
            "concurrency": data.get("concurrency"),
            "calls": (data.get("workload") or {}).get("device_calls")}


def environment_table(rows: list[dict], pivot_over: int = PIVOT_OVER) -> list[str]:
    """The grid as Markdown lines (cells: race failures / runs), or one line
    per environment while there are few."""
    if len(rows) <= pivot_over:
        return table(("Python", "target", "version", "numba", "asked", "runs",
                      "failures", "verdict"),
                     ((python_minor(r), r["target"], target_version(r),
                       package_cell(r, "numba"),
                       " ".join(r.get("requirements") or ()), r["runs"],
                       r["failures"], r["verdict"]) for r in rows))
    data = grid(rows)
    return table(("sim", "target", "version", "numba",
                  *(f"Python {p}" for p in data["pythons"])),
                 (("on" if line["sim"] else "off", line["target"],
                   line["version"], line["numba"],
                   *(grid_cell(line["cells"][p]) for p in data["pythons"]))
                  for line in data["lines"]))


def grid_cell(data: dict | None) -> str:
    if data is None:
        return "–"
    if data["verdict"] not in ("reproduced", "not-reproduced"):
        return data["verdict"]
    return f"{data['failures']}/{data['runs']}"


def bisect_entry(data: dict) -> dict:
    boundary = data.get("boundary") or {}
    releases = data.get("releases") or ["–"]
    tested = {t["version"]: t for t in data.get("tested", [])}

    def side(name):
        found = boundary.get(name)
        if not found:
            return None
        probe = tested.get(found["version"], {})
        return {**found, "launch": {
            "n": probe.get("n"), "past_limit": probe.get("past_limit"),
            "median": seconds(probe.get("median"), data.get("limit")),
            "p95": seconds(probe.get("p95"), data.get("limit"))}
            if data.get("metric") == "launch-time" else None}
    return {"package": data["package"], "python": data["python"],
            "with": data.get("with") or [], "first": releases[0],
            "last": releases[-1], "before": side("before"),
            "after": side("after"), "probes": data["decisive_probes"],
            "partial": bool(data.get("partial")), "summary": data["summary"],
            "seconds": data.get("seconds"), "limit": data.get("limit"),
            "end": end_launch(data), "command": data["provenance"]["command"],
            "finished": data["provenance"].get("finished")}


def end_launch(data: dict) -> dict | None:
    """The newest release's launches in a bisect on launch time (the slow
    end, timed in turn with the fast one)."""
    if data.get("metric") != "launch-time":
        return None
    last = data["releases"][-1]
    probe = next((t for t in reversed(data["tested"])
                  if t["version"] == last and t.get("n")), None)
    if probe is None:
        return None
    return {"version": last, "n": probe["n"],
            "past_limit": probe.get("past_limit", 0),
            "median": seconds(probe["median"], data["limit"]),
            "p95": seconds(probe["p95"], data["limit"])}


def status(mwe: list[dict], bisects: list[dict]) -> dict:
    """Where the race stands: where each target's bisect placed the fix,
    and how many environments of each target reproduced it."""
    ran = [r for r in mwe if r["verdict"] in ("reproduced", "not-reproduced")]
    targets = {}
    for target in sorted({r["target"] for r in ran}):
        mine = [r for r in ran if r["target"] == target]
        racy = [r for r in mine if r["verdict"] == "reproduced"]
        flips = [b for b in bisects if b["package"] == target and b["after"]]
        first_fixed = min((b["after"]["version"] for b in flips),
                          key=version_or_zero, default=None)
        fixed = [r for r in mine if first_fixed and version_or_zero(
            target_version(r)) >= version_or_zero(first_fixed)]
        targets[target] = {
            "fixed_runs": sum(r["runs"] for r in fixed),
            "fixed_failures": sum(r["failures"] for r in fixed),
            "fixed_pythons": sorted({python_minor(r) for r in fixed},
                                    key=version_or_zero),
            "environments": len(mine), "reproduced": len(racy),
            "newest": max((target_version(r) for r in mine),
                          key=version_or_zero),
            "newest_racy": max((target_version(r) for r in racy),
                               key=version_or_zero, default=None),
            "fixed_between": sorted({(b["before"]["version"],
                                      b["after"]["version"]) for b in flips}),
            "bisect_pythons": sorted({b["python"] for b in flips},
                                     key=version_or_zero)}
    return targets


def price(rows: list[dict], bisects: list[dict]) -> dict | None:
    """The launch times of numba-cuda's releases around the fix on one
    Python (the newest with a bisect on time), unpatched and with each
    patch, from the rows; the interleaved ends of that bisect."""
    timed = [b for b in bisects if b.get("end")]
    if not timed:
        return None
    chosen = max(timed, key=lambda b: version_or_zero(b["python"]))
    target, python = chosen["package"], chosen["python"]
    versions = sorted({target_version(r) for r in rows
                       if r["target"] == target}, key=version_or_zero)
    before = chosen["before"]["version"]
    start = versions[max(0, versions.index(before) - 1)] \
        if before in versions else versions[0]
    shown = [r for r in rows if r["target"] == target and r["sim"]
             and r.get("suite", "mwe") == "mwe" and python_minor(r) == python
             and version_or_zero(target_version(r)) >= version_or_zero(start)
             and launch(r)]
    shown.sort(key=lambda r: (r.get("patch") or "",
                              version_or_zero(target_version(r))))
    return {"python": python, "target": target, "bisect": chosen,
            "dates": sorted({(r.get("finished") or "")[:10] for r in shown}
                            - {""}),
            "rows": [{"version": target_version(r), "patch": r.get("patch"),
                      "numba": r["packages"].get("numba"),
                      "verdict": r["verdict"], "launch": launch(r),
                      "concurrency": r.get("concurrency"),
                      "finished": r.get("finished")} for r in shown]}


def interleaved(data: dict | None, python: str | None = None) -> dict | None:
    """One Python's run of releases and patches timed in turn
    (``fix_launch_time.json``; ``python``'s where it has one, else the
    newest): per label, n, median and p95 (each maybe a bound at the
    limit), the launches cut, the ratio to the reference."""
    runs = (data or {}).get("runs") or {}
    if not runs:
        return None
    run = runs.get(python or "") or runs[max(runs, key=version_or_zero)]
    limit = run["limit"]
    loads = run.get("load_per_round") or [None]
    return {"python": run["python"], "reference": run["reference"],
            "limit": limit, "rounds": run["rounds"],
            "command": run.get("command"), "finished": run.get("finished"),
            "machine": run.get("machine"), "missing": run.get("missing", []),
            "load": [min(loads), max(loads)] if loads[0] is not None else None,
            "rows": [{"label": r["label"], "release": r["release"],
                      "patch": None if r["patch"] == "none" else r["patch"],
                      "n": r["n"], "past_limit": r["past_limit"],
                      "median": seconds(r["median"], limit),
                      "p95": seconds(r["p95"], limit),
                      "median_ratio": r.get("median_ratio"),
                      "ratio_bound": r.get("median_ratio_bound"),
                      "race_errors": r["race_errors"], "error": r["error"]}
                     for r in run["rows"]]}


def solve(record: dict | None) -> dict | None:
    """``solve_ivp``'s seconds in a CuBIE row: median and max of the solves
    that ran, and how many were skipped once the row's budget was spent
    (then the median is not a figure)."""
    summary = (record or {}).get("summary") or {}
    data = next((v for k, v in (summary.get("test_seconds") or {}).items()
                 if "solve" in k), None)
    if not data:
        return None
    cases = [c for n, c in (summary.get("tests") or {}).items() if "solve" in n]
    skipped = sum(c.get("skip", 0) for c in cases)
    return {"median": None if skipped else data["median"], "max": data["max"],
            "n": data["n"] - skipped, "skipped": skipped}


def cubie_price(found: list[dict]) -> dict | None:
    """CuBIE's ``solve_ivp`` on its newest release run with numba-cuda: the
    newest numba-cuda with the race, the newest without, and that one with
    each patch."""
    mine = [c for c in found if c["numba_cuda"] and c["solve"]]
    if not mine:
        return None
    newest = max((c["cubie"] for c in mine), key=version_or_zero)
    mine = [c for c in mine if c["cubie"] == newest]
    plain = [c for c in mine if not c["patch"]]
    racy = [c for c in plain if c["verdict"] == "reproduced"]
    fixed = [c for c in plain if c["verdict"] == "not-reproduced"]
    def newest_of(group):
        return max(group, key=lambda c: version_or_zero(c["numba_cuda"]),
                   default=None)
    after = newest_of(fixed)
    return {"cubie": newest, "before": newest_of(racy), "after": after,
            "with": [c for c in mine if c["patch"] and after
                     and c["numba_cuda"] == after["numba_cuda"]]}


def cubie(records: list[dict]) -> list[dict]:
    """CuBIE's own code, each row: versions, whose simulator, the race, the
    hangs, ``solve_ivp``'s seconds."""
    found = []
    for record in records:
        if record.get("suite") != "cubie":
            continue
        known = {**record.get("settings", {}), **record.get("packages", {})}
        module = record.get("settings", {}).get("cuda_module", "")
        found.append({
            "cubie": known.get("cubie"), "numba_cuda": known.get("numba-cuda"),
            "numba": known.get("numba"), "python": record.get("python"),
            "patch": (record.get("spec") or {}).get("patch"),
            "simulator": "vendored" if "vendored" in module else "numba-cuda"
            if known.get("numba-cuda") else "numba",
            "verdict": record["verdict"], "runs": record["runs"],
            "failures": record["failures"], "hangs": record.get("hangs", 0),
            "skips": record.get("skips", 0), "solve": solve(record),
            "race_sites": sum(s["count"] for s in (record.get("summary") or {})
                              .get("race_sites", []))})
    return sorted(found, key=lambda c: (version_or_zero(c["cubie"]),
                                        version_or_zero(c["numba_cuda"]),
                                        c["patch"] or ""))


def own_tests(records: list[dict]) -> list[dict]:
    """numba-cuda's own simulator tests per release and patch: passed,
    failed, skipped, and the tests whose outcome differs from the
    unpatched run of the same release."""
    by_release: dict[tuple, dict] = defaultdict(dict)
    for record in records:
        if record.get("suite") != "numba-cuda-tests":
            continue
        key = (record["python"][:4], record["packages"].get("numba-cuda"))
        by_release[key][(record.get("spec") or {}).get("patch")] = record
    found = []
    for (python, version), sides in sorted(by_release.items()):
        plain = outcomes(sides.get(None))
        for patch, record in sorted(sides.items(), key=lambda s: s[0] or ""):
            mine = outcomes(record) or {}
            failed = record["failures"] + record["other_errors"] + \
                record.get("hangs", 0)
            found.append({
                "python": python, "numba_cuda": version, "patch": patch,
                "passed": record["runs"] - failed, "failed": failed,
                "skipped": record.get("skips", 0),
                "differ": None if patch is None or plain is None else sorted(
                    n for n in plain.keys() | mine.keys()
                    if plain.get(n) != mine.get(n))})
    return found


def outcomes(record: dict | None) -> dict | None:
    if record is None:
        return None
    tests = (record.get("summary") or {}).get("tests") or {}
    return {name: max(counts, key=counts.get) for name, counts in tests.items()}


def patches(rows: list[dict], records: list[dict],
            described: dict | None = None) -> list[dict]:
    """Every patch found in the rows: what it is, and each of its MWE rows
    beside the unpatched row of the same environment."""
    plain = {(re.sub(r"-sim[01]$", "", r["env"]), r["sim"]): r
             for r in rows if not r.get("patch")}
    found = []
    for name in sorted({r["patch"] for r in rows if r.get("patch")}):
        applied: dict = next((r["patch"] for r in records
                        if (r.get("spec") or {}).get("patch") == name
                        and r.get("patch")), {})
        pairs = []
        for row in rows:
            if row.get("patch") != name or row.get("suite", "mwe") != "mwe":
                continue
            old = plain.get((row["env"].split("+patch.")[0], row["sim"]))
            pairs.append({"python": python_minor(row), "target": row["target"],
                          "version": target_version(row),
                          "without": old and pair_side(old),
                          "with": pair_side(row)})
        medians = [p["with"]["launch"]["median"]["value"] for p in pairs
                   if p["with"]["launch"]]
        found.append({"name": name, "file": applied.get("file"),
                      "description": (described or {}).get(name),
                      "launch_median": statistics.median(medians)
                      if medians else None,
                      "package": applied.get("package"),
                      "releases": applied.get("releases"), "rows": pairs,
                      "race_failures": sum(p["with"]["failures"] for p in pairs),
                      "runs": sum(p["with"]["runs"] for p in pairs)})
    return found


def proposal(found: list[dict], price: dict | None,
             timed: dict | None = None) -> dict | None:
    """The patch to propose: of those that never failed with the race, the
    one with the fastest median launch on the newest release it was timed
    on, in the run of launches taken in turn (``timed``) if it is there,
    else in the rows of ``price``; with that release's launches without and
    with it."""
    clean = {p["name"]: p for p in found if p["runs"] and not p["race_failures"]}
    sources = []
    if timed:
        sources.append((True, timed["python"], {
            (r["release"], r["patch"]): {"launch": {
                "median": r["median"], "p95": r["p95"], "n": r["n"]}}
            for r in timed["rows"]}))
    if price:
        sources.append((False, price["python"], {
            (r["version"], r["patch"]): r for r in price["rows"]}))
    for same_run, python, sides in sources:
        candidates = [(v, n) for v, n in sides if n in clean]
        if not candidates:
            continue
        newest = max((v for v, _ in candidates), key=version_or_zero)
        best = min((n for v, n in candidates if v == newest),
                   key=lambda n: sides[(newest, n)]["launch"]["median"]["value"])
        return {**clean[best], "newest": newest, "same_run": same_run,
                "python": python, "without": sides.get((newest, None)),
                "with": sides[(newest, best)]}
    return None


def pair_side(row: dict) -> dict:
    return {"verdict": row["verdict"], "runs": row["runs"],
            "failures": row["failures"], "launch": launch(row)}


def evidence(records: list[dict]) -> dict:
    """What the MWE's controls measured, added up over the records that
    reproduced the race."""
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


def first_error(records: list[dict]) -> str | None:
    return next((r["summary"]["first_target_message"] for r in records
                 if (r.get("summary") or {}).get("first_target_message")),
                None)


def stacks(out_dir: Path | None) -> dict | None:
    """The newest launch caught past its limit: its threads counted by the
    simulator frame they were in."""
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


def reproducer_runs(data: dict | None) -> dict | None:
    """The reproducers' recorded runs by script and label: exit status,
    output, and its load."""
    if not data:
        return None
    by_script = defaultdict(list)
    for entry in data["entries"]:
        for run in entry["runs"]:
            by_script[run["command"].split()[-1]].append({
                **run, "label": entry["label"], "patch": entry["patch"],
                "python": entry["python"], "packages": entry["packages"]})
    loads = [load for entry in data["entries"] for run in entry["runs"]
             for load in run["load_average"]]
    return {"finished": data["finished"], "machine": data["machine"],
            "command": data["command"], "scripts": dict(by_script),
            "load": [min(loads), max(loads)] if loads else None}


def regression_test(found: list[dict]) -> list[dict]:
    """The race's regression test run many times per release (the upstream
    series' ``race_rate`` files): label, runs and how they ended."""
    shown = []
    for data in found:
        counts = data.get("counts") or {}
        if not data.get("runs") or "race" not in counts:
            continue
        label = data.get("label", "?").replace("numba-cuda-", "numba-cuda ", 1)
        shown.append({"label": label.replace("+series", " with this change"),
                      "test": (data.get("test") or "").rsplit(".", 1)[-1],
                      "runs": data["runs"], "race": counts["race"],
                      "passed": counts.get("passed", 0),
                      "other": counts.get("other", 0),
                      "date": (data.get("date") or "")[:10]})
    return sorted(shown, key=lambda r: r["label"])


def build(rows: list[dict], records: list[dict], bisects: list[dict],
          time_bisects: list[dict], provenance: dict,
          reproducers: dict | None = None, out_dir: Path | None = None,
          figures: dict | None = None, fix_launches: dict | None = None,
          described: dict | None = None,
          race_rates: list[dict] | None = None) -> dict:
    """The report's whole structure; every template renders from it."""
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
    found = patches(rows, records, described)
    clients = cubie(records)
    return {
        "provenance": provenance,
        "verdicts": dict(Counter(r["verdict"] for r in rows)),
        "rows": rows, "grid": grid(ran),
        "skipped": dict(sorted(skipped.items())),
        "last_attempts": [r for r in rows if r.get("last_attempt")],
        "error": first_error(records), "status": status(mwe, race),
        "bisects": race, "time_bisects": time, "price": cost,
        "racy_median": statistics.median(racy_launch) if racy_launch else None,
        "cubie": clients, "cubie_price": cubie_price(clients),
        "own_tests": own_tests(records), "patches": found,
        "proposal": proposal(found, cost, timed), "interleaved": timed,
        "regression_test": regression_test(race_rates or []),
        # A patch that takes out one part of a fix to see what it costs says
        # so in its description (pyproject.toml).
        "attribution": sorted(name for name, text in (described or {}).items()
                              if (text or "").startswith("attribution")),
        "evidence": evidence(records), "stacks": stacks(out_dir),
        "reproducers": reproducer_runs(reproducers), "figures": figures,
        "sweep": sweep_table(figures["sweep"])
        if figures and figures.get("sweep") else None,
        "commands": [b["command"] for b in race + time],
    }


def summary_sentences(rows: list[dict], bisects: list[dict]) -> str:
    """One line for a log: environments that reproduced, and not placed."""
    ran = [r for r in rows if r["verdict"] in ("reproduced", "not-reproduced")]
    counts = Counter(r["verdict"] for r in rows)
    extra = "; ".join(f"{counts[v]} {v}" for v in ("hung", "error")
                      if counts[v])
    return (f"reproduced in {counts['reproduced']} of {len(ran)} "
            f"environments" + (f" (not placed: {extra})" if extra else "")
            + "".join(f"; {b['package']} py{b['python']}: {b['summary']}"
                      for b in bisects))


def sweep_table(points: list[dict]) -> list[str]:
    """Markdown lines: one row per knob of the MWE's figures."""
    by_knob: dict[str, list[str]] = {}
    for point in points:
        by_knob.setdefault(point["knob"], []).append(
            f"{point['value']}: {point['failures']}/{point['runs']} "
            f"({100 * point['failure_rate']:.0f}%)")
    return table(("knob", "value: race failures / runs (rate)"),
                 ((f"`--{knob}`", "; ".join(cells))
                  for knob, cells in by_knob.items()))
