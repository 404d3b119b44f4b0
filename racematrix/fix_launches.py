"""Launch time of the candidate fixes, interleaved: the MWE's launch
workload in environments the matrix built (``nox -s matrix`` with
MATRIX_PATCHES), one ``LaunchServer`` each, one launch of each in turn,
round after round, so that the machine's load falls on all of them alike;
each release and patch against one reference release on the same Python,
in the same run."""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from .envspec import EnvSpec
from .errors import BadInput
from .fileio import write_json_atomic
from .measure_launch import ROW_DEVICE_CALLS, ROW_LOCATION, LaunchServer, \
    workload_options
from .probers import matrix_envdir
from .provenance import stamp
from .stats import quantile
from .venv import ProbeEnvironment, read_environment

logger = logging.getLogger(__name__)

# The packages each timed environment's record names (all are in its row).
NAMED_PACKAGES = ("numba", "numba-cuda", "llvmlite", "numpy")

NONE = "none"
LAUNCH_FILE = "fix_launch_time.json"
# A launch past this is killed and counted at it (a stall, as a bound).
LAUNCH_LIMIT = 10.0


def launch_label(release: str, patch: str | None) -> str:
    return f"{release}+{patch}" if patch else release


def summarize_samples(samples: list[float], limit: float) -> dict:
    """``n``, ``median``, ``p95``, ``max`` and how many launches were cut at
    ``limit``; a quantile that lands on a cut launch is a lower bound
    (``median_bound``/``p95_bound`` true)."""
    def bound(value):
        return value is not None and value >= limit
    median, p95 = quantile(samples, 0.5), quantile(samples, 0.95)
    return {"n": len(samples), "median": median, "p95": p95,
            "max": max(samples) if samples else None,
            "past_limit": sum(1 for s in samples if s >= limit),
            "median_bound": bound(median), "p95_bound": bound(p95)}


def ratios(summary: dict, reference: dict) -> dict:
    """Median and p95 of ``summary`` over the reference's; a ratio whose
    numerator is a lower bound is one too, and one over a bound is not a
    figure (None)."""
    found = {}
    for key in ("median", "p95"):
        mine, theirs = summary.get(key), reference.get(key)
        if mine is None or not theirs or reference.get(f"{key}_bound"):
            found[f"{key}_ratio"] = None
        else:
            found[f"{key}_ratio"] = round(mine / theirs, 3)
        found[f"{key}_ratio_bound"] = bool(summary.get(f"{key}_bound"))
    return found


def rotated(labels: list[str], turn: int) -> list[str]:
    """The order of one round: each label goes first in turn, so that none
    always follows the same neighbour."""
    turn %= max(len(labels), 1)
    return labels[turn:] + labels[:turn]


def find_environment(envdir, python, release, patch):
    """The matrix's environment of the MWE for numba-cuda ``release`` on
    ``python`` with ``patch`` (or None) applied, or None with why not."""
    spec = EnvSpec(python, (f"numba-cuda=={release}",), True, "mwe", patch)
    location = Path(matrix_envdir(envdir, spec))
    if not (location / "bin" / "python").exists():
        return None, f"no environment for {spec.env_id}: build it first"
    markers = list(location.glob("lib/python*/site-packages/"
                                 "racematrix-patch.json"))
    applied = json.loads(markers[0].read_text()).get("name") \
        if markers else None
    if applied != patch:
        return None, (f"{spec.env_id}: its environment has patch "
                      f"{applied or NONE} applied, not {patch or NONE}")
    return ProbeEnvironment(location, python), None


def time_launches(envs: dict, rounds: int, limit: float) -> dict:
    """``rounds`` launches of each environment (label -> environment), one
    of each in turn; per label its samples (a launch past ``limit`` counted
    at it), race errors and, where its server failed, why."""
    workload = workload_options({"device_calls": ROW_DEVICE_CALLS,
                                 "location": ROW_LOCATION})
    servers, found, loads = {}, {}, []
    try:
        for label, env in envs.items():
            servers[label] = LaunchServer(env, True, limit, workload)
            found[label] = {"samples": [], "race_errors": 0,
                            "error": servers[label].failed}
        labels = [label for label in envs if not found[label]["error"]]
        for turn in range(rounds):
            loads.append(round(os.getloadavg()[0], 2))
            for label in rotated(labels, turn):
                if found[label]["error"]:
                    continue
                kind, value = servers[label].launch(limit)
                if kind == "error":
                    found[label]["error"] = value
                elif kind == "race":
                    found[label]["race_errors"] += 1
                else:
                    found[label]["samples"].append(
                        limit if kind == "past" else min(value, limit))
            logger.info("round %d of %d, load %s", turn + 1, rounds, loads[-1])
    finally:
        for server in servers.values():
            server.close()
    return {"labels": found, "load_per_round": loads}


def launch_record(python, reference, releases, patches, timed, limit,
                  rounds, missing, command) -> dict:
    """The ``fix_launch_time.json`` record of one interleaved run."""
    rows = []
    ref = summarize_samples(timed["labels"].get(reference, {}).get(
        "samples", []), limit)
    for label, seen in timed["labels"].items():
        release, _, patch = label.partition("+")
        summary = summarize_samples(seen["samples"], limit)
        rows.append({"label": label, "release": release,
                     "patch": patch or NONE, **summary,
                     **ratios(summary, ref),
                     "race_errors": seen["race_errors"],
                     "error": seen["error"], "samples": seen["samples"]})
    return {"python": python, "reference": reference, "releases": releases,
            "patches": patches, "rounds": rounds, "limit": limit,
            "workload": {"device_calls": ROW_DEVICE_CALLS,
                         "location": ROW_LOCATION},
            "load_per_round": timed["load_per_round"], "missing": missing,
            "rows": rows, **stamp(command)}


def run_launches(args, envdir, out_dir, command) -> dict:
    envs, missing = {}, []
    wanted = [(args.reference, None)] + [
        (release, patch) for release in args.releases
        for patch in [None, *args.patches]]
    for release, patch in wanted:
        env, why = find_environment(envdir, args.python, release, patch)
        if env is None:
            missing.append(why)
            logger.info(why)
        else:
            envs[launch_label(release, patch)] = env
    reference = launch_label(args.reference, None)
    if reference not in envs:
        raise BadInput(f"no environment of numba-cuda {args.reference} on "
                       f"Python {args.python} to compare with: run "
                       f"MATRIX_SPECS='numba-cuda=={args.reference}' "
                       f"MATRIX_PYTHONS={args.python} nox -s matrix first")
    environments = {label: environment_record(env)
                    for label, env in envs.items()}
    started = time.monotonic()
    timed = time_launches(envs, args.rounds, args.limit)
    record = launch_record(args.python, reference, args.releases,
                           args.patches, timed, args.limit, args.rounds,
                           missing, command)
    record["seconds"] = round(time.monotonic() - started, 1)
    record["environments"] = environments
    path = Path(out_dir) / LAUNCH_FILE
    saved = _read_json(path, {})
    runs, earlier = saved.get("runs", {}), saved.get("earlier", {})
    if args.python in runs:  # the newest run per Python is the table's
        earlier.setdefault(args.python, []).append(runs[args.python])
    runs[args.python] = record
    write_json_atomic(path, {"runs": runs, "earlier": earlier})
    return record


def environment_record(env) -> dict:
    """What one timed environment is: its Python build, the versions of
    the packages that matter, and the patch applied (its diff's sha256)."""
    found = read_environment(env)
    markers = list(Path(env.location).glob(
        "lib/python*/site-packages/racematrix-patch.json"))
    patch = json.loads(markers[0].read_text()) if markers else {}
    return {"python_build": found["python_build"],
            "packages": {name: found["packages"][name]
                         for name in NAMED_PACKAGES
                         if name in found["packages"]},
            "patch_sha256": patch.get("sha256")}


def _read_json(path, default):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default
