"""The candidate fixes side by side (``nox -s fix_compare``): each patch
against the unpatched releases, from the raw rows and the interleaved
launch-time runs (``fix_launch_time.json``, made by ``--launches``)."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from packaging.version import Version

from .envspec import project_config
from .errors import BadInput, OneLineArgumentParser
from .fileio import write_json_atomic, write_text_atomic
from .fix_launches import LAUNCH_FILE, LAUNCH_LIMIT, NONE, run_launches
from .markdown import render
from .provenance import stamp
from .rawresult import load_raw_dirs
from .report import (PROJECT, cubie, declared_patches, load_json, outcomes,
                     own_tests, spec_text)
from .tables import python_minor

# Issue 28's goals for a fix: launch time against the reference release
# (median and p95 ratios, same Python, interleaved), and the MWE runs of
# every base without a race failure.
GOALS = {"median": 1.2, "p95": 1.5}
RACE_FREE_RUNS = 1000
COUNTED = {"runs": "runs", "failures": "failures", "other": "other_errors",
           "hangs": "hangs"}
PARTS = ("race", "launch", "cubie", "numba_cuda_tests", "semantics")
# What fix_compare.json keeps of a timed release and of a run in turn.
LAUNCHED = ("release", "n", "median", "p95", "past_limit", "median_ratio",
            "p95_ratio", "median_ratio_bound", "p95_ratio_bound",
            "race_errors", "error")
RUN = ("reference", "rounds", "limit", "finished", "seconds",
       "load_per_round", "missing", "machine", "environments")
DIFFERENCE = ("case", "outcome", "reference_outcome", "observed",
              "reference_observed")


def row_patch(record: dict) -> str:
    return (record.get("patch") or {}).get("name") or NONE


def race_by_base(records: list[dict]) -> dict:
    """Per patch, per base release: the MWE's simulator rows added up."""
    found: dict = {}
    for r in records:
        if r.get("suite", "mwe") == "mwe" and r.get("sim") and r.get("runs"):
            target = r.get("target", "numba")
            entry = found.setdefault(row_patch(r), {}).setdefault(
                f"{target} {r.get('packages', {}).get(target, '?')}",
                {**dict.fromkeys(COUNTED, 0), "pythons": []})
            for key, field in COUNTED.items():
                entry[key] += r.get(field, 0)
            entry["pythons"] = sorted({*entry["pythons"], python_minor(r)})
    return found


def by_spec(entries: Iterable[dict], fields: Iterable[str]) -> dict:
    """Per patch, per spec and Python: the entries' ``fields``."""
    found: dict = {}
    for e in entries:
        found.setdefault(e["patch"] or NONE, {})[
            f"{e['spec']} (py{python_minor(e)})"] = {k: e[k] for k in fields}
    return found


def cubie_solve(records: list[dict]) -> dict:
    """Per patch and spec: CuBIE's solve_ivp seconds and its race."""
    none: dict = {"median": None, "max": None, "n": 0, "skipped": 0}
    return by_spec(({**c, "solve_median": t["median"], "solve_max": t["max"],
                     "solves": t["n"] + t["skipped"], "solves_ran": t["n"]}
                    for c in cubie(records) for t in [c["solve"] or none]),
                   ("solve_median", "solve_max", "solves", "solves_ran",
                    "runs", "failures", "hangs", "verdict"))


def numba_cuda_tests(records: list[dict]) -> dict:
    """Per patch and spec: numba-cuda's own tests' counts and differences."""
    return by_spec(own_tests(records), ("passed", "failed", "skipped", "differ"))


def semantics_differences(records: list[dict]) -> dict:
    """Per patch and spec: the cases that differ from the unpatched row."""
    rows = {(row_patch(r), f"{spec_text(r)} (py{python_minor(r)})"): (
        outcomes(r), r.get("summary", {}).get("observed", {}))
        for r in records if r.get("suite") == "semantics"}
    found: dict = {}
    for (patch, name), (mine, seen) in rows.items():
        if patch == NONE:  # its cases that fail
            differ = [{"case": case, "outcome": outcome,
                       "observed": seen.get(case)}
                      for case, outcome in sorted(mine.items())
                      if outcome != "pass"]
        elif (NONE, name) in rows:
            theirs, their_seen = rows[NONE, name]
            differ = []
            for case in sorted(mine.keys() | theirs.keys()):
                values = (mine.get(case), theirs.get(case), seen.get(case),
                          their_seen.get(case))
                if values[::2] != values[1::2]:  # outcome or observed
                    differ.append(dict(zip(DIFFERENCE, (case, *values))))
        else:
            continue
        found.setdefault(patch, {})[name] = {"cases": len(mine),
                                             "differ": differ}
    return found


def launch_by_patch(launch_runs: dict) -> dict:
    """Per patch, per Python: each release's ratios to that run's reference."""
    found: dict = {}
    for python, run in sorted(launch_runs.items()):
        for row in run["rows"]:
            if row["label"] != run["reference"]:
                found.setdefault(row["patch"], {}).setdefault(
                    python, []).append({key: row[key] for key in LAUNCHED})
    return found


def worst(entries: list[dict]) -> dict:
    """The largest median and p95 ratio against GOALS (a bound never meets)."""
    found = {}
    for key, goal in GOALS.items():
        ratios = [e for e in entries if e[f"{key}_ratio"] is not None]
        if ratios:
            top = max(ratios, key=lambda e: e[f"{key}_ratio"])
            bound = any(e[f"{key}_ratio_bound"] for e in ratios)
            found[key] = {"ratio": top[f"{key}_ratio"], "release": top["release"],
                          "shown_bound": top[f"{key}_ratio_bound"],
                          "bound": bound, "goal": goal,
                          "met": top[f"{key}_ratio"] <= goal and not bound}
    return found


def summary(data: dict) -> dict:
    """The figures fix_compare.md shows of ``compare``'s data, per patch."""
    names = set().union(*(data[part] for part in PARTS)) - {NONE}
    shown: dict = {"patches": {},
                   # the bases some patch ran on: the others say nothing
                   "bases": sorted({b for p, by in data["race"].items()
                                    if p != NONE for b in by}),
                   "pythons": sorted({p for by in data["launch"].values()
                                      for p in by}),
                   # each earlier run's worst ratios, per patch
                   "earlier": {python: [{p: worst(by[python]) for p, by in
                                         run.items()} for run in runs]
                               for python, runs in data["launch_earlier"]
                               .items()}}
    for patch in [NONE, *sorted(names)]:
        race, grouped = data["race"].get(patch, {}), {}
        for spec, entry in sorted(data["semantics"].get(patch, {}).items()):
            for d in entry["differ"]:  # each difference once, with its specs
                grouped.setdefault(tuple(map(d.get, DIFFERENCE)), []).append(spec)
        shown["patches"][patch] = {
            "worst": {python: worst(entries) for python, entries in
                      data["launch"].get(patch, {}).items()},
            "race_free": [b for b, e in sorted(race.items())
                          if e["runs"] >= RACE_FREE_RUNS and not (
                              e["failures"] or e["other"] or e["hangs"])],
            "pythons": sorted({x for e in race.values() for x in e["pythons"]}),
            "semantics": [{**dict(zip(DIFFERENCE, k)), "specs": specs}
                          for k, specs in sorted(grouped.items(), key=lambda i: [
                              "" if x is None else str(x) for x in i[0]])]}
    return shown


def short_spec(key: str) -> str:
    """A spec's pins but numba's: ``cubie 0.14.2, numba-cuda 0.30.4``."""
    pins = [word.replace("==", " ") for word in key.split()
            if "==" in word and not word.startswith("numba==")]
    return ", ".join(pins) or key


def compare(records: list[dict], launches: dict) -> dict:
    """What fix_compare.json holds: the rows' parts and ``launches``' runs."""
    runs = launches.get("runs", {})
    return {"race": race_by_base(records), "launch": launch_by_patch(runs),
            "launch_runs": {python: {key: run.get(key) for key in RUN}
                            for python, run in runs.items()},
            "launch_earlier": {python: [launch_by_patch({python: run})
                                        for run in earlier]
                               for python, earlier in launches.get(
                                   "earlier", {}).items()},
            "cubie": cubie_solve(records),
            "numba_cuda_tests": numba_cuda_tests(records),
            "semantics": semantics_differences(records)}


def bisect_releases(results_dir: str, python: str, reference: str | None,
                    releases: list[str] | None) -> tuple[str, list[str]]:
    """The race bisect's last racy release and the matrix's from its fix on."""
    path = Path(results_dir, "bisect", f"numba-cuda-py{python}.json")
    boundary = (load_json(path) or {}).get("boundary")
    if reference and releases:
        return reference, releases
    if not boundary:
        raise BadInput(f"fix_compare: {path} has no flip of the race; run "
                       f"`nox -s bisect -- --package numba-cuda --python "
                       f"{python}` first, or give --reference and --releases")
    fixed = Version(boundary["after"]["version"])
    matrix = [spec.split("==", 1)[1] for spec in project_config(PROJECT)[
        "specs"] if spec.startswith("numba-cuda==")]
    return (reference or boundary["before"]["version"],
            releases or [v for v in matrix if Version(v) >= fixed])


def run(argv: list[str], envdir: str, results_dir: str, command: str) -> dict:
    """An interleaved launch-time run where asked, then the table."""
    parser = OneLineArgumentParser(prog="nox -s fix_compare --",
                                   label="fix_compare",
                                   help_hint="nox -s fix_compare -- --help")
    parser.add_argument("--launches", action="store_true",
                        help="time launches first (else only the table)")
    parser.add_argument("--python", default="3.12",
                        help="the Python X.Y of the launch-time run")
    parser.add_argument("--reference", help="the release compared with "
                        "(default: the race bisect's last with the race)")
    parser.add_argument("--releases", nargs="+", help="the releases timed "
                        "(default: the matrix's from the bisect's fix on)")
    parser.add_argument("--patches", nargs="*", default=list(
        declared_patches()), help="the patches timed (default: all declared)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--limit", type=float, default=LAUNCH_LIMIT)
    parser.add_argument("--raw", nargs="+", default=[f"{results_dir}/raw"])
    try:
        args = parser.parse_args(argv)
    except SystemExit:  # --help (a mistake is a BadInput)
        return {}
    if args.rounds < 1 or args.limit <= 0:
        parser.error("--rounds must be at least 1 and --limit positive")
    if args.launches:
        args.reference, args.releases = bisect_releases(
            results_dir, args.python, args.reference, args.releases)
        run_launches(args, envdir, results_dir, command)
    data = compare([dict(data) for _, data in load_raw_dirs(args.raw)],
                   load_json(Path(results_dir, LAUNCH_FILE)) or {})
    provenance = stamp(command)
    write_json_atomic(Path(results_dir, "fix_compare.json"),
                      {**data, **provenance})
    write_text_atomic(Path(results_dir, "fix_compare.md"), render(
        "fix_compare.md", data=data, shown=summary(data), NONE=NONE,
        provenance=provenance, launch_file=LAUNCH_FILE, short_spec=short_spec))
    return data
