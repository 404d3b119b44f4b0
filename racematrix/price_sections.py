"""The report's structure of the price of the fix and of the candidate
fixes: plain dicts for the templates (a launch statistic cut at a limit is
a bound)."""
from __future__ import annotations

import re
import statistics
from collections import defaultdict

from .tables import python_minor, target_version, version_or_zero


def seconds(value: float | None, limit: float | None = None) -> dict | None:
    """Launches past ``limit`` count at it: a statistic there is a bound."""
    if value is None:
        return None
    censored = limit is not None and limit > 0 and value >= limit - 1e-9
    return {"value": round(limit if censored and limit else value, 3),
            "censored": censored}


def span(values: list | None) -> list | None:
    return [min(values), max(values)] if values else None


def launch(record: dict | None) -> dict | None:
    data = (record or {}).get("launch_seconds") or {}
    if not data.get("n"):
        return None
    limit = data.get("limit")
    return {"n": data["n"], "limit": limit,
            **{k: seconds(data[k], limit) for k in ("median", "p95", "max")},
            "past_limit": data.get("past_limit", 0),
            "concurrency": data.get("concurrency"),
            "calls": (data.get("workload") or {}).get("device_calls")}


def price(rows: list[dict], bisects: list[dict]) -> dict | None:
    """Launch times around the fix on the newest Python with a bisect on
    time, unpatched and with each patch, from one release before it on."""
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
    shown = sorted((r for r in rows if r["target"] == target and r["sim"]
                    and r.get("suite", "mwe") == "mwe"
                    and python_minor(r) == python and launch(r)
                    and version_or_zero(target_version(r))
                    >= version_or_zero(start)),
                   key=lambda r: (r.get("patch") or "",
                                  version_or_zero(target_version(r))))
    return {"python": python, "target": target, "bisect": chosen,
            "dates": sorted({(r.get("finished") or "")[:10] for r in shown}
                            - {""}),
            "rows": [{"version": target_version(r), "patch": r.get("patch"),
                      "numba": r["packages"].get("numba"),
                      "launch": launch(r)} for r in shown]}


def interleaved(data: dict | None, python: str | None = None) -> dict | None:
    """``python``'s (else the newest) run of launches taken in turn."""
    runs = (data or {}).get("runs") or {}
    if not runs:
        return None
    run = runs.get(python or "") or runs[max(runs, key=version_or_zero)]
    limit, envs = run["limit"], run.get("environments") or {}
    return {"python": run["python"], "reference": run["reference"],
            "limit": limit, "rounds": run["rounds"],
            "finished": run.get("finished"),
            "load": span(run.get("load_per_round")),
            "python_build": next((e.get("python_build")
                                  for e in envs.values()), None),
            "rows": [{**r, "numba": (envs.get(r["label"], {}).get("packages")
                                     or {}).get("numba"),
                      "patch": None if r["patch"] == "none" else r["patch"],
                      "median": seconds(r["median"], limit),
                      "p95": seconds(r["p95"], limit),
                      "ratio_bound": r.get("median_ratio_bound")}
                     for r in run["rows"]]}


def slowdown(data: dict | None) -> list[dict]:
    """Per Python's run taken in turn: the newest unpatched release's
    median over the reference's, and the launches past the limit."""
    found = []
    for python, run in sorted(((data or {}).get("runs") or {}).items(),
                              key=lambda item: version_or_zero(item[0])):
        plain = [r for r in run["rows"] if r["patch"] == "none"]
        newer = [r for r in plain if r["release"] != run["reference"]
                 and r.get("median_ratio")]
        if not newer:
            continue
        newest = max(newer, key=lambda r: version_or_zero(r["release"]))
        reference = next((r for r in plain
                          if r["release"] == run["reference"]), {})
        found.append({"python": python, "release": newest["release"],
                      "reference": run["reference"],
                      "ratio": newest["median_ratio"],
                      "bound": bool(newest.get("median_ratio_bound")),
                      "limit": run.get("limit"), "n": newest.get("n"),
                      "past_limit": newest.get("past_limit", 0),
                      "finished": run.get("finished"),
                      "load": span(run.get("load_per_round")),
                      "reference_n": reference.get("n"),
                      "reference_past_limit": reference.get("past_limit", 0)})
    return found


def lock_share(timed: dict | None, name: str) -> dict | None:
    """The attribution patch ``name`` on the newest release it was timed
    on: the share of the rise from the reference it takes away (None where
    a median is a bound)."""
    rows = (timed or {}).get("rows") or []
    mine = [r for r in rows if r["patch"] == name]
    if not mine:
        return None
    row = max(mine, key=lambda r: version_or_zero(r["release"]))
    plain = next((r for r in rows if not r["patch"]
                  and r["release"] == row["release"]), None)
    ref = next((r for r in rows if r["label"] == timed["reference"]), None)  # type: ignore[index]
    if plain is None or ref is None:
        return None
    medians = [r["median"] for r in (row, plain, ref)]
    rise = medians[1]["value"] - medians[2]["value"]
    exact = not any(m["censored"] for m in medians) and rise > 0
    return {"release": row["release"], "with": medians[0],
            "without": medians[1], "reference": medians[2],
            "share": (medians[1]["value"] - medians[0]["value"]) / rise
            if exact else None}


def solve(record: dict | None) -> dict | None:
    """``solve_ivp``'s seconds in a CuBIE row; no median where solves were
    skipped once the row's budget was spent."""
    summary = (record or {}).get("summary") or {}
    data = next((v for k, v in (summary.get("test_seconds") or {}).items()
                 if "solve" in k), None)
    if not data:
        return None
    skipped = sum(c.get("skip", 0) for n, c in
                  (summary.get("tests") or {}).items() if "solve" in n)
    return {"median": None if skipped else data["median"], "max": data["max"],
            "n": data["n"] - skipped, "skipped": skipped}


def cubie_price(found: list[dict]) -> dict | None:
    """CuBIE's newest release: the newest numba-cuda with the race, the
    newest without, and that one with each patch."""
    mine = [c for c in found if c["numba_cuda"] and c["solve"]]
    if not mine:
        return None
    newest = max((c["cubie"] for c in mine), key=version_or_zero)
    mine = [c for c in mine if c["cubie"] == newest]
    before, after = (max((c for c in mine if not c["patch"]
                          and c["verdict"] == verdict),
                         key=lambda c: version_or_zero(c["numba_cuda"]),
                         default=None)
                     for verdict in ("reproduced", "not-reproduced"))
    medians = [(side or {}).get("solve", {}).get("median")
               for side in (before, after)]
    return {"cubie": newest, "before": before, "after": after,
            "ratio": medians[1] / medians[0] if all(medians) else None,
            "with": [c for c in mine if c["patch"] and after
                     and c["numba_cuda"] == after["numba_cuda"]]}


def spec_text(record: dict) -> str:
    return " ".join((record.get("spec") or {}).get("requirements") or ())


def cubie(records: list[dict]) -> list[dict]:
    """CuBIE's rows: versions, whose simulator, the race, ``solve_ivp``."""
    found = []
    for record in (r for r in records if r.get("suite") == "cubie"):
        known = {**record.get("settings", {}), **record.get("packages", {})}
        module = record.get("settings", {}).get("cuda_module", "")
        found.append({
            "cubie": known.get("cubie"), "numba_cuda": known.get("numba-cuda"),
            "numba": known.get("numba"), "python": record.get("python"),
            "patch": (record.get("spec") or {}).get("patch"),
            "spec": spec_text(record),
            "simulator": "vendored" if "vendored" in module else "numba-cuda"
            if known.get("numba-cuda") else "numba",
            "verdict": record["verdict"], "runs": record["runs"],
            "failures": record["failures"], "hangs": record.get("hangs", 0),
            "other": record.get("other_errors", 0),
            "skips": record.get("skips", 0), "solve": solve(record)})
    return sorted(found, key=lambda c: (version_or_zero(c["cubie"]),
                                        version_or_zero(c["numba_cuda"]),
                                        c["patch"] or ""))


def own_tests(records: list[dict]) -> list[dict]:
    """numba-cuda's own tests per release and patch, and the tests whose
    outcome differs from the unpatched run of the same release."""
    by_release: dict[tuple, dict] = defaultdict(dict)
    for record in (r for r in records if r.get("suite") == "numba-cuda-tests"):
        by_release[(python_minor(record), record["packages"].get(
            "numba-cuda"))][(record.get("spec") or {}).get("patch")] = record
    found = []
    for (python, version), sides in sorted(by_release.items()):
        plain = outcomes(sides[None]) if None in sides else None
        for patch, record in sorted(sides.items(), key=lambda s: s[0] or ""):
            mine = outcomes(record)
            failed = record["failures"] + record["other_errors"] + \
                record.get("hangs", 0)
            found.append({
                "python": python, "numba_cuda": version, "patch": patch,
                "spec": spec_text(record),
                "passed": record["runs"] - failed, "failed": failed,
                "skipped": record.get("skips", 0),
                "differ": None if patch is None or plain is None else sorted(
                    n for n in plain.keys() | mine.keys()
                    if plain.get(n) != mine.get(n))})
    return found


def outcomes(record: dict) -> dict:
    """Each test's outcome in a row (the most frequent where repeated)."""
    tests = (record.get("summary") or {}).get("tests") or {}
    return {test_name(name): max(counts, key=counts.get)
            for name, counts in tests.items() if any(counts.values())}


def test_name(name: str) -> str:
    """A module skipped at collection is named by its site-packages path."""
    return name.rsplit(".", 1)[-1] if "site-packages." in name else name


def patches(rows: list[dict], described: dict | None = None) -> list[dict]:
    """Each patch: its description and, over its MWE rows, the race
    failures, runs and median launch."""
    found = []
    for name in sorted({r["patch"] for r in rows if r.get("patch")}):
        mine = [{"verdict": r["verdict"], "runs": r["runs"],
                 "failures": r["failures"], "launch": launch(r),
                 "python": python_minor(r)} for r in rows
                if r.get("patch") == name and r.get("suite", "mwe") == "mwe"]
        medians = [r["launch"]["median"]["value"] for r in mine if r["launch"]]
        found.append({"name": name, "description": (described or {}).get(name),
                      "launch_median": statistics.median(medians)
                      if medians else None, "rows": mine,
                      "race_failures": sum(r["failures"] for r in mine),
                      "runs": sum(r["runs"] for r in mine)})
    return found


def proposal(found: list[dict], price: dict | None,
             timed: dict | None = None) -> dict | None:
    """Of the patches that never failed with the race, the fastest median
    launch on the newest release timed, in the run taken in turn where
    there is one, else in ``price``'s rows."""
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


def reproducer_runs(data: dict | None) -> dict | None:
    """The reproducers' recorded runs by script (``mwe/`` name)."""
    if not data:
        return None
    by_script = defaultdict(list)
    for entry in data["entries"]:
        for run in entry["runs"]:
            by_script[run["command"].split()[-1]].append({
                # older rows: a run stopped at the timeout has exit None
                "stopped_at": run["seconds"] if run["exit"] is None else None,
                **run, "label": entry["label"], "patch": entry["patch"],
                "python": entry["python"], "packages": entry["packages"]})
    return {"finished": data["finished"], "machine": data["machine"],
            "command": data["command"], "scripts": dict(by_script),
            "load": span([load for entry in data["entries"] for run
                          in entry["runs"] for load in run["load_average"]])}


RACE_RATE_LABEL = re.compile(
    r"^numba-cuda-(?:(?P<main>main)(?:-(?P<commit>[0-9a-f]+))?|"
    r"(?P<release>[\d.]+))(?P<change>\+series)?")


def regression_test(found: list[dict]) -> list[dict]:
    """The upstream series' ``race_rate`` files: which numba-cuda (a
    release or a commit of main), with the change or not, fresh processes
    or not, and how the runs ended."""
    shown = []
    for data in found:
        counts = data.get("counts") or {}
        if not data.get("runs") or "race" not in counts:
            continue
        label = data.get("label", "?")
        named = RACE_RATE_LABEL.match(label)
        installed = next((p.split("==", 1)[1] for p in data.get("packages")
                          or () if p.startswith("numba-cuda==")), None)
        processes = data.get("processes")
        shown.append({
            "label": label,
            "release": installed or (named and named["release"]) or None,
            "main": bool(named and named["main"]),
            "commit": (named and named["commit"]) or None,
            "change": bool(named and named["change"]),
            "python": ".".join((data.get("python") or "").split()[0]
                               .split(".")[:2]) if data.get("python") else None,
            "fresh": isinstance(processes, list)
            and len(processes) == data["runs"],
            "test": (data.get("test") or "").rsplit(".", 1)[-1],
            "runs": data["runs"], "race": counts["race"],
            "passed": counts.get("passed", 0),
            "other": counts.get("other", 0),
            "date": (data.get("date") or "")[:10]})
    return sorted(shown, key=lambda r: (r["main"],
                                        version_or_zero(r["release"] or "0"),
                                        r["fresh"], r["change"],
                                        version_or_zero(r["python"] or "0")))
