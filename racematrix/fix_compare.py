"""``nox -s fix_compare``: each patch against the unpatched releases, from
the raw rows and ``--launches``' A/Bs of each, taken in turn (LAUNCH_FILE)."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from argparse import Namespace
from collections.abc import Iterable
from pathlib import Path

from packaging.version import Version

from . import launch_time
from .envspec import EnvSpec, project_config
from .errors import BadInput, OneLineArgumentParser
from .fileio import write_json_atomic, write_text_atomic
from .markdown import render
from .measurement import run_launch_time
from .patching import APPLIED
from .probers import matrix_envdir
from .provenance import stamp
from .rawresult import load_raw_dirs
from .report import (PROJECT, cubie, declared_patches, load_json, outcomes,
                     own_tests, spec_text)
from .suites import NONE
from .tables import python_minor
from .install import ProbeEnvironment, read_environment

logger = logging.getLogger(__name__)
NAMED_PACKAGES = ("numba", "numba-cuda", "llvmlite", "numpy")
LAUNCH_FILE = "fix_launch_time.json"
# A launch past this is counted at it (a stall, as a bound).
LAUNCH_LIMIT = 10.0
# An A/B is stopped this long past the limit: a locked one can stall minutes.
STARTUP_ALLOWANCE = 20.0
# The lock's price shows as stalls, and a stall needs a long launch.
WORKLOAD = {"device_calls": 1000, "location": "persistent",
            "switch_interval": 0.005}  # Python's default
# Issue 28's goals: launch ratios to the reference, and race-free MWE runs.
GOALS = {"median": 1.2, "p95": 1.5}
RACE_FREE_RUNS = 1000
COUNTED = {"runs": "runs", "failures": "failures", "other": "other_errors",
           "hangs": "hangs"}
PARTS = ("race", "launch", "cubie", "numba_cuda_tests", "semantics")
# What fix_compare.json keeps of a timed release and of a run.
LAUNCHED = ("release", "n", "median", "p95", "past_limit", "median_ratio",
            "p95_ratio", "median_ratio_bound", "p95_ratio_bound", "error")
RUN = ("reference", "rounds", "limit", "finished", "seconds",
       "load_per_round", "missing", "machine", "environments")
SOLVE_NONE: dict = {"median": None, "max": None, "n": 0, "skipped": 0}
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
        placed = [e for e in entries if e[f"{key}_ratio"] is not None]
        if placed:
            top = max(placed, key=lambda e: e[f"{key}_ratio"])
            bound = any(e[f"{key}_ratio_bound"] for e in placed)
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
            "cubie": by_spec(({**c, "solve_median": t["median"],
                               "solve_max": t["max"],
                               "solves": t["n"] + t["skipped"],
                               "solves_ran": t["n"]} for c in cubie(records)
                              for t in [c["solve"] or SOLVE_NONE]),
                             ("solve_median", "solve_max", "solves",
                              "solves_ran", "runs", "failures", "hangs",
                              "verdict")),
            "numba_cuda_tests": by_spec(own_tests(records), (
                "passed", "failed", "skipped", "differ")),
            "semantics": semantics_differences(records)}


def timed(samples: list[float], limit: float,
          reference: dict | None = None) -> dict:
    """Launches cut at ``limit`` and their ratios to ``reference``'s."""
    found = launch_time.summarize(samples)
    del found["samples"]
    found["past_limit"] = sum(1 for s in samples if s >= limit)
    for key in ("median", "p95"):
        found[f"{key}_bound"] = found[key] is not None and found[key] >= limit
    reference = reference or found
    for key in ("median", "p95"):
        mine, theirs = found[key], reference[key]
        found[f"{key}_ratio"] = None if mine is None or not theirs or \
            reference[f"{key}_bound"] else round(mine / theirs, 3)
        found[f"{key}_ratio_bound"] = found[f"{key}_bound"]
    return found


def find_environment(envdir: str | Path, python: str, release: str,
                     patch: str | None
                     ) -> tuple[ProbeEnvironment | None, dict | str]:
    """The matrix's MWE environment of ``release`` + ``patch``, or why not."""
    spec = EnvSpec(python, (f"numba-cuda=={release}",), True, "mwe", patch)
    location = Path(matrix_envdir(envdir, spec))
    if not (location / "bin" / "python").exists():
        return None, f"no environment for {spec.env_id}: build it first"
    markers = list(location.glob(f"lib/python*/site-packages/{APPLIED}"))
    applied = json.loads(markers[0].read_text()) if markers else {}
    if applied.get("name") != patch:
        return None, (f"{spec.env_id}: its environment has patch "
                      f"{applied.get('name') or NONE} applied, not "
                      f"{patch or NONE}")
    env = ProbeEnvironment(location, python)
    found = read_environment(env)
    return env, {"python_build": found["python_build"],
                 "packages": {name: found["packages"][name]
                              for name in NAMED_PACKAGES
                              if name in found["packages"]},
                 "patch_sha256": applied.get("sha256")}


def run_launches(args: Namespace, envdir: str, out_dir: str | Path,
                 command: str) -> dict:
    """``args.rounds`` A/Bs of each release and patch, into LAUNCH_FILE."""
    envs: dict[str, ProbeEnvironment] = {}
    environments, missing = {}, []
    for release, patch in [(args.reference, None)] + [
            (release, patch) for release in args.releases
            for patch in [None, *args.patches]]:
        env, found = find_environment(envdir, args.python, release, patch)
        if env is None:
            missing.append(str(found))
            logger.info(found)
        else:
            label = f"{release}+{patch}" if patch else release
            envs[label], environments[label] = env, found
    if args.reference not in envs:
        raise BadInput(f"no environment of numba-cuda {args.reference} on "
                       f"Python {args.python} to compare with: run "
                       f"MATRIX_SPECS='numba-cuda=={args.reference}' "
                       f"MATRIX_PYTHONS={args.python} nox -s matrix first")
    started = time.monotonic()
    options = ("--pairs", "1", "--max-pairs", "1", *(
        arg for name, value in WORKLOAD.items()
        for arg in (f"--{name.replace('_', '-')}", str(value))))
    # A race in an A/B is its environment's error: no more launches there.
    seen: dict[str, dict] = {label: {"samples": [], "error": None}
                             for label in envs}
    loads = []
    for turn in range(args.rounds):
        loads.append(round(os.getloadavg()[0], 2))
        labels = list(envs)  # each goes first in turn
        for label in labels[turn % len(labels):] + labels[:turn % len(labels)]:
            if not seen[label]["error"]:
                try:
                    record = run_launch_time(envs[label], True, options,
                                             timeout=args.limit +
                                             STARTUP_ALLOWANCE)
                except subprocess.TimeoutExpired:  # a stall, counted at limit
                    record = {"samples": [args.limit]}
                seen[label]["error"] = record.get("error")
                seen[label]["samples"] += [min(s, args.limit)
                                           for s in record["samples"]]
        logger.info("round %d of %d, load %s", turn + 1, args.rounds,
                    loads[-1])
    ref = timed(seen[args.reference]["samples"], args.limit)
    rows = []
    for label, found in seen.items():
        release, _, patch = label.partition("+")
        rows.append({"label": label, "release": release, "patch": patch or
                     NONE, **timed(found["samples"], args.limit, ref),
                     **found})
    record = {"python": args.python, "reference": args.reference,
              "releases": args.releases, "patches": args.patches,
              "rounds": args.rounds, "limit": args.limit, "workload": WORKLOAD,
              "load_per_round": loads, "missing": missing,
              "rows": rows, **stamp(command),
              "seconds": round(time.monotonic() - started, 1),
              "environments": environments}
    path = Path(out_dir) / LAUNCH_FILE
    saved = load_json(path) or {}
    runs, earlier = saved.get("runs", {}), saved.get("earlier", {})
    if args.python in runs:
        earlier.setdefault(args.python, []).append(runs[args.python])
    runs[args.python] = record
    write_json_atomic(path, {"runs": runs, "earlier": earlier})
    return record


def bisect_releases(results_dir: str, python: str, reference: str | None,
                    releases: list[str] | None) -> tuple[str, list[str]]:
    """The race bisect's last racy release and the matrix's from its fix on."""
    if reference and releases:
        return reference, releases
    path = Path(results_dir, "bisect", f"numba-cuda-py{python}.json")
    boundary = (load_json(path) or {}).get("boundary")
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
    add = parser.add_argument
    add("--launches", action="store_true", help="time launches first")
    add("--python", default="3.12", help="the launch-time run's Python X.Y")
    add("--reference", help="default: the race bisect's last racy release")
    add("--releases", nargs="+", help="default: the matrix's from the fix on")
    add("--patches", nargs="*", default=list(declared_patches()))
    add("--rounds", type=int, default=20)
    add("--limit", type=float, default=LAUNCH_LIMIT)
    add("--raw", nargs="+", default=[f"{results_dir}/raw"])
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
