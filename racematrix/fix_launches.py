"""Launch time of the candidate fixes, in the environments the matrix built
(``nox -s matrix`` with MATRIX_PATCHES): round after round one launch A/B
of each (``launch_time``'s, one pair of WORKLOAD's launches), so that the
machine's load falls on all alike; each against one reference release."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from argparse import Namespace
from pathlib import Path

from . import launch_time
from .envspec import EnvSpec
from .errors import BadInput
from .fileio import write_json_atomic
from .measurement import run_launch_time
from .patching import APPLIED
from .probers import matrix_envdir
from .provenance import stamp
from .venv import ProbeEnvironment, read_environment

logger = logging.getLogger(__name__)

# The packages each timed environment's record names (all are in its row).
NAMED_PACKAGES = ("numba", "numba-cuda", "llvmlite", "numpy")
NONE = "none"
LAUNCH_FILE = "fix_launch_time.json"
# A launch past this is counted at it (a stall, as a bound).
LAUNCH_LIMIT = 10.0
# An A/B (numba's import, a warm-up and two launches) is stopped this long
# past the limit: a locked launch can stall for minutes.
STARTUP_ALLOWANCE = 20.0
# The lock's price shows as stalls, and a stall needs a long launch.
WORKLOAD = {"device_calls": 1000, "location": "persistent",
            "switch_interval": 0.005}  # Python's default


def summarize_samples(samples: list[float], limit: float) -> dict:
    """``launch_time.summarize`` without the samples, the launches cut at
    ``limit``, and whether a quantile landed on one (then a lower bound)."""
    found = launch_time.summarize(samples)
    del found["samples"]
    return {**found, "past_limit": sum(1 for s in samples if s >= limit),
            **{f"{key}_bound": found[key] is not None and found[key] >= limit
               for key in ("median", "p95")}}


def ratios(summary: dict, reference: dict) -> dict:
    """Median and p95 over the reference's: one over a bound is no figure
    (None), and a bound over a figure is a bound."""
    found = {}
    for key in ("median", "p95"):
        mine, theirs = summary.get(key), reference.get(key)
        found[f"{key}_ratio"] = None if mine is None or not theirs or \
            reference.get(f"{key}_bound") else round(mine / theirs, 3)
        found[f"{key}_ratio_bound"] = bool(summary.get(f"{key}_bound"))
    return found


def rotated(labels: list[str], turn: int) -> list[str]:
    """The order of one round: each label goes first in turn."""
    turn %= max(len(labels), 1)
    return labels[turn:] + labels[:turn]


def find_environment(envdir: str | Path, python: str, release: str,
                     patch: str | None
                     ) -> tuple[ProbeEnvironment | None, str | None]:
    """The matrix's MWE environment of ``release`` + ``patch``, or why not."""
    spec = EnvSpec(python, (f"numba-cuda=={release}",), True, "mwe", patch)
    location = Path(matrix_envdir(envdir, spec))
    if not (location / "bin" / "python").exists():
        return None, f"no environment for {spec.env_id}: build it first"
    applied = _patch_marker(location).get("name")
    if applied != patch:
        return None, (f"{spec.env_id}: its environment has patch "
                      f"{applied or NONE} applied, not {patch or NONE}")
    return ProbeEnvironment(location, python), None


def _patch_marker(location: str | Path) -> dict:
    markers = list(Path(location).glob(
        f"lib/python*/site-packages/{APPLIED}"))
    return json.loads(markers[0].read_text()) if markers else {}


def run_launches(args: Namespace, envdir: str, out_dir: str | Path,
                 command: str) -> dict:
    """``args.rounds`` launches of the reference and of each release with
    and without each patch, one of each in turn, added to LAUNCH_FILE (the
    newest run per Python is the table's; earlier ones are kept)."""
    envs: dict[str, ProbeEnvironment] = {}
    missing: list[str] = []
    for release, patch in [(args.reference, None)] + [
            (release, patch) for release in args.releases
            for patch in [None, *args.patches]]:
        env, why = find_environment(envdir, args.python, release, patch)
        if env is None:
            missing.append(str(why))
            logger.info(why)
        else:
            envs[f"{release}+{patch}" if patch else release] = env
    if args.reference not in envs:
        raise BadInput(f"no environment of numba-cuda {args.reference} on "
                       f"Python {args.python} to compare with: run "
                       f"MATRIX_SPECS='numba-cuda=={args.reference}' "
                       f"MATRIX_PYTHONS={args.python} nox -s matrix first")
    environments = {label: environment_record(env)
                    for label, env in envs.items()}
    started = time.monotonic()
    options = ("--pairs", "1", "--max-pairs", "1", *(
        arg for name, value in WORKLOAD.items()
        for arg in (f"--{name.replace('_', '-')}", str(value))))
    seen: dict[str, dict] = {label: {"samples": [], "race_errors": 0,
                                     "error": None} for label in envs}
    loads = []
    for turn in range(args.rounds):
        loads.append(round(os.getloadavg()[0], 2))
        for label in rotated(list(envs), turn):
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
    ref = summarize_samples(seen[args.reference]["samples"], args.limit)
    rows = []
    for label, found in seen.items():
        release, _, patch = label.partition("+")
        summary = summarize_samples(found["samples"], args.limit)
        rows.append({"label": label, "release": release,
                     "patch": patch or NONE, **summary, **ratios(summary, ref),
                     **found})
    record = {"python": args.python, "reference": args.reference,
              "releases": args.releases, "patches": args.patches,
              "rounds": args.rounds, "limit": args.limit, "workload": WORKLOAD,
              "load_per_round": loads, "missing": missing,
              "rows": rows, **stamp(command),
              "seconds": round(time.monotonic() - started, 1),
              "environments": environments}
    path = Path(out_dir) / LAUNCH_FILE
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        saved = {}
    runs, earlier = saved.get("runs", {}), saved.get("earlier", {})
    if args.python in runs:
        earlier.setdefault(args.python, []).append(runs[args.python])
    runs[args.python] = record
    write_json_atomic(path, {"runs": runs, "earlier": earlier})
    return record


def environment_record(env: ProbeEnvironment) -> dict:
    """A timed environment's Python build, versions and patch's sha256."""
    found = read_environment(env)
    return {"python_build": found["python_build"],
            "packages": {name: found["packages"][name]
                         for name in NAMED_PACKAGES
                         if name in found["packages"]},
            "patch_sha256": _patch_marker(env.location).get("sha256")}
