"""``nox -s fix_compare``: each patch against the unpatched releases, from
the raw rows and ``--launches``' A/Bs of each, taken in turn (LAUNCH_FILE)."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from argparse import Namespace
from collections import deque
from itertools import product
from pathlib import Path

from packaging.version import Version

from . import launch_time
from .envspec import EnvSpec, project_config
from .errors import BadInput, OneLineArgumentParser
from .fileio import write_json_atomic, write_text_atomic
from .install import ProbeEnvironment, read_environment
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

logger = logging.getLogger(__name__)
LAUNCH_FILE = "fix_launch_time.json"
# An A/B is stopped this long past the limit: a locked one can stall minutes.
STARTUP_ALLOWANCE = 20.0
# One pair a round. The lock's price shows as stalls, and a stall needs a
# long launch; the switch interval is Python's default.
WORKLOAD = ("--pairs", "1", "--max-pairs", "1", "--device-calls", "1000",
            "--location", "persistent", "--switch-interval", "0.005")
COUNTED = {"runs": "runs", "failures": "failures", "other": "other_errors",
           "hangs": "hangs"}
DIFFERENCE = ("case", "outcome", "reference_outcome", "observed",
              "reference_observed")
# What fix_compare.json keeps of report.cubie()'s entries (not the raw row).
CUBIE = ("cubie", "numba_cuda", "numba", "simulator", "python", "patch",
         "spec", "verdict", "runs", "failures", "hangs", "other_errors",
         "skips", "solve")


def row_patch(record: dict) -> str:
    return (record.get("patch") or {}).get("name") or NONE


def race_by_base(records: list[dict]) -> dict:
    """Per patch, per base release: the MWE's simulator rows added up."""
    found: dict = {}
    for r in records:
        if r.get("suite", "mwe") == "mwe" and r["sim"] and r["runs"]:
            base = f"{r['target']} {r['packages'].get(r['target'], '?')}"
            entry = found.setdefault(row_patch(r), {}).setdefault(
                base, {**dict.fromkeys(COUNTED, 0), "pythons": []})
            for key, field in COUNTED.items():
                entry[key] += r[field]
            entry["pythons"] = sorted({*entry["pythons"], python_minor(r)})
    return found


def semantics_differences(records: list[dict]) -> dict:
    """Per patch: each case that differs from the unpatched row (unpatched:
    that fails) once, with the specs and Pythons it was seen on."""
    rows = {(row_patch(r), f"{spec_text(r)} (py{python_minor(r)})"): (
        outcomes(r), r.get("summary", {}).get("observed", {}))
        for r in records if r.get("suite") == "semantics"}
    found: dict = {}
    for (patch, name), (mine, seen) in sorted(rows.items()):
        if patch == NONE:  # its cases that fail
            cases: list[tuple] = [
                (case, outcome, None, seen.get(case), None)
                for case, outcome in mine.items() if outcome != "pass"]
        elif (NONE, name) in rows:
            theirs, their_seen = rows[NONE, name]
            cases = [(case, mine.get(case), theirs.get(case), seen.get(case),
                      their_seen.get(case))
                     for case in mine.keys() | theirs.keys()]
        else:
            continue
        grouped = found.setdefault(patch, {})
        for values in cases:
            if values[1::2] != values[2::2]:  # outcome or observed
                grouped.setdefault(values, []).append(name)
    return {patch: [{**dict(zip(DIFFERENCE, key)), "specs": grouped[key]}
                    for key in sorted(grouped, key=lambda k: [
                        str(x or "") for x in k])]
            for patch, grouped in found.items()}


def worst(entries: list[dict]) -> dict:
    """Per ratio (median, p95): the entry where it is largest."""
    found = {}
    for key in ("median", "p95"):
        placed = [e for e in entries if e[f"{key}_ratio"] is not None]
        if placed:
            found[key] = max(placed, key=lambda e: e[f"{key}_ratio"])
    return found


def summary(data: dict, runs: dict) -> dict:
    """What fix_compare.md shows of ``data`` and the ``runs``, per patch."""
    listed = ("cubie", "numba_cuda_tests")
    names = {*data["race"], *data["semantics"], *(
        row["patch"] for run in runs.values() for row in run["rows"]), *(
        e["patch"] or NONE for part in listed for e in data[part])}
    shown: dict = {"patches": {}, "pythons": sorted(runs),
                   # the bases some patch ran on: the others say nothing
                   "bases": sorted({b for p, by in data["race"].items()
                                    if p != NONE for b in by})}
    for patch in [NONE, *sorted(names - {NONE})]:
        # each release and its ratios to the reference, per Python
        launches = {python: [r for r in run["rows"] if r["patch"] == patch
                             and r["label"] != run["reference"]]
                    for python, run in sorted(runs.items())}
        shown["patches"][patch] = {
            **{part: [e for e in data[part] if (e["patch"] or NONE) == patch]
               for part in listed}, "launches": launches,
            "worst": {python: worst(rows)
                      for python, rows in launches.items() if rows},
            "pythons": sorted({x for e in data["race"].get(patch, {}).values()
                               for x in e["pythons"]})}
    return shown


def compare(records: list[dict]) -> dict:
    """What fix_compare.json holds: each part of the rows, per patch."""
    return {"race": race_by_base(records),
            "cubie": [{k: c[k] for k in CUBIE} for c in cubie(records)],
            "numba_cuda_tests": own_tests(records),
            "semantics": semantics_differences(records)}


def timed(samples: list[float], limit: float,
          reference: dict | None = None) -> dict:
    """Launches cut at ``limit`` and their ratios to ``reference``'s."""
    found = launch_time.summarize(samples)
    found["past_limit"] = sum(s >= limit for s in samples)
    reference = reference or found
    for key in ("median", "p95"):
        mine, theirs = found[key], reference[key]
        found[f"{key}_bound"] = found[f"{key}_ratio_bound"] = \
            mine is not None and mine >= limit
        found[f"{key}_ratio"] = None if mine is None or not theirs or \
            reference[f"{key}_bound"] else round(mine / theirs, 3)
    return found


def find_environment(envdir: str | Path, python: str, release: str,
                     patch: str | None
                     ) -> tuple[ProbeEnvironment | None, dict | str]:
    """The matrix's MWE environment of ``release`` + ``patch``, or why not."""
    spec = EnvSpec(python, (f"numba-cuda=={release}",), True, "mwe", patch)
    location = Path(matrix_envdir(envdir, spec))
    marker = next(location.glob(f"lib/python*/site-packages/{APPLIED}"), None)
    applied = json.loads(marker.read_text()) if marker else {}
    if not (location / "bin" / "python").exists() or \
            applied.get("name") != patch:
        return None, (f"no environment of {spec.env_id} with patch "
                      f"{patch or NONE} applied: build it first")
    env = ProbeEnvironment(location, python)
    return env, {**read_environment(env),
                 "patch_sha256": applied.get("sha256")}


def run_launches(args: Namespace, envdir: str, out_dir: str | Path,
                 command: str) -> dict:
    """``args.rounds`` A/Bs of each release and patch, into LAUNCH_FILE."""
    envs, environments, missing, seen = {}, {}, [], {}
    for release, patch in [(args.reference, None), *product(
            args.releases, [None, *args.patches])]:
        env, found = find_environment(envdir, args.python, release, patch)
        if env is None:
            missing.append(str(found))
            logger.info(found)
            continue
        label = f"{release}+{patch}" if patch else release
        envs[label], environments[label] = env, found
        # A race in an A/B is its environment's error: no more launches.
        seen[label] = {"label": label, "release": release,
                       "patch": patch or NONE, "samples": [], "error": None}
    if args.reference not in envs:
        raise BadInput(f"no environment of numba-cuda {args.reference} on "
                       f"Python {args.python} to compare with: run "
                       f"MATRIX_SPECS='numba-cuda=={args.reference}' "
                       f"MATRIX_PYTHONS={args.python} nox -s matrix first")
    started, loads, order = time.monotonic(), [], deque(envs)
    for turn in range(args.rounds):
        loads.append(round(os.getloadavg()[0], 2))
        for label in [x for x in order if not seen[x]["error"]]:
            try:
                record = run_launch_time(envs[label], True, WORKLOAD,
                                         args.limit + STARTUP_ALLOWANCE)
            except subprocess.TimeoutExpired:  # a stall, counted at limit
                record = {"samples": [args.limit]}
            seen[label]["error"] = record.get("error")
            seen[label]["samples"] += [min(s, args.limit)
                                       for s in record["samples"]]
        order.rotate(-1)  # each goes first in turn
        logger.info("round %d of %d, load %s", turn + 1, args.rounds,
                    loads[-1])
    ref = timed(seen[args.reference]["samples"], args.limit)
    rows = [{**row, **timed(row["samples"], args.limit, ref)}
            for row in seen.values()]
    record = {**{key: vars(args)[key] for key in (
        "python", "reference", "releases", "patches", "rounds", "limit")},
        "workload": " ".join(WORKLOAD), "load_per_round": loads,
        "missing": missing, "rows": rows, **stamp(command),
        "seconds": round(time.monotonic() - started, 1),
        "environments": environments}
    path = Path(out_dir) / LAUNCH_FILE
    saved = load_json(path) or {"runs": {}, "earlier": {}}
    if args.python in saved["runs"]:
        saved["earlier"].setdefault(args.python, []).append(
            saved["runs"][args.python])
    saved["runs"][args.python] = record
    write_json_atomic(path, saved)
    return record


def bisect_releases(results_dir: str, python: str, reference: str | None,
                    releases: list[str] | None) -> tuple[str, list[str]]:
    """The race bisect's last racy release and the matrix's after it."""
    if not reference:
        path = Path(results_dir, "bisect", f"numba-cuda-py{python}.json")
        boundary = (load_json(path) or {}).get("boundary")
        if not boundary:
            raise BadInput(f"fix_compare: {path} has no flip of the race; "
                           f"run `nox -s bisect -- --package numba-cuda "
                           f"--python {python}` first, or give --reference")
        reference = boundary["before"]["version"]
    matrix = [spec.split("==", 1)[1] for spec in project_config(PROJECT)[
        "specs"] if spec.startswith("numba-cuda==")]
    return reference, releases or [
        v for v in matrix if Version(v) > Version(reference)]


def run(argv: list[str], envdir: str, results_dir: str, command: str) -> dict:
    """An interleaved launch-time run where asked, then the table."""
    parser = OneLineArgumentParser(prog="nox -s fix_compare --",
                                   label="fix_compare",
                                   help_hint="nox -s fix_compare -- --help")
    add = parser.add_argument
    add("--launches", action="store_true", help="time launches first")
    add("--python", default="3.12", help="the launch-time run's Python X.Y")
    add("--reference", help="default: the race bisect's last racy release")
    add("--releases", nargs="+", help="default: the matrix's newer releases")
    add("--patches", nargs="*", default=list(declared_patches()))
    add("--rounds", type=int, default=20)
    add("--limit", type=float, default=10.0,
        help="seconds; a launch past it counts at it (a stall, a bound)")
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
    runs = (load_json(Path(results_dir, LAUNCH_FILE)) or {}).get("runs", {})
    data = {**compare([dict(data) for _, data in load_raw_dirs(
        [Path(results_dir, "raw")])]), **stamp(command)}
    write_json_atomic(Path(results_dir, "fix_compare.json"), data)
    write_text_atomic(Path(results_dir, "fix_compare.md"), render(
        "fix_compare.md", data=data, shown=summary(data, runs), runs=runs,
        NONE=NONE, launch_file=LAUNCH_FILE))
    return data
