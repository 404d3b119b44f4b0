"""The driver of ``nox -s matrix``: one environment built, measured and
recorded per session, and the tables and report written once per run,
after the environments.

Each session builds its environment (``install``), hands it to the
measurements (the suite, then launch time for the MWE), records the raw
result (``rawresult.record``) and returns it. The session ``matrix`` requires
every environment's session (nox's ``requires=``, which its ``-j`` runner
schedules by too) and calls ``finish_run``: the report once, last.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shlex
import shutil
import time
from collections import Counter
from collections.abc import Mapping
from typing import cast
from pathlib import Path

from . import measure_launch, measure_race, patching
from .errors import BadInput
from .fileio import (clear_stale, folder_problem, results_lock,
                     running_marker, scratch_folder, write_text_atomic)
from .install import install_resolved
from .measurement import Built, run_all
from .patches import patched_packages
from .patching import PatchError
from .provenance import machine_info, now_iso
from .rawresult import RawResult, kept_measured_row, make_raw, read_raw, record
from .report import build_report
from .suites import MWE_SUITE
from .venv import ProbeEnvironment, read_environment

logger = logging.getLogger(__name__)


def run_environment(session, spec, *, count, timeout, results_dir,
                    pytest_args=(), command="", suite=MWE_SUITE,
                    launch_time=None, patch=None, verbose=False):
    """Build one environment, run the measurements in it, and record the
    raw result. ``launch_time`` (keyword arguments of
    ``measure_launch.LaunchTime``, or None for none) adds launch time,
    timed in the suite's process after its tests. Only ``verbose``
    prints the installer's steps and pytest's output (the raw result
    keeps pytest's last lines). Returns the raw record."""
    started_at = now_iso()
    clock = time.monotonic()
    base = dict(machine=machine_info(), command=command, started=started_at)
    nothing = dict(packages={}, python="", python_build="")

    def finish(detail=None, **fields):
        raw = make_raw(spec, seconds=time.monotonic() - clock,
                       **{**base, **fields})
        written = record(raw, results_dir, detail)
        if kept_measured_row(written, raw):
            session.log(f"{spec.env_id}: this attempt measured nothing; the "
                        f"row measured {written['finished'][:16]} "
                        f"({written['runs']} runs, {written['verdict']}) is "
                        f"kept, with the attempt beside it")
        return raw

    installation = install_resolved(session, spec, suite=suite)
    base["resolution"] = installation.resolution()
    problem = installation.problem
    if problem:
        kind, reason = problem
        if kind == "bad-input":  # not a measurement: no row for it
            raise BadInput(reason)
        if kind == "skip":
            return finish(skip_reason=reason, **nothing)
        return finish(env_error=reason, detail=installation.detail, **nothing)
    if spec.patch:
        try:
            base["patch"] = apply_patch(session, spec, patch, installation)
        except PatchError as error:  # never a result: an `error` row
            return finish(env_error=str(error), **nothing)
    environment = getattr(installation, "environment", None) or \
        read_environment(session)
    measurements = [measure_race.RaceSuite(count, timeout, pytest_args,
                                           echo=verbose)]
    with running_marker(results_dir, spec.env_id) as running, \
            scratch_folder() as scratch:
        if launch_time is not None:  # its own A/B: no other row needed
            measurements.append(measure_launch.LaunchTime(**launch_time))
        fields = run_all(measurements, Built(
            session, spec, suite, keep_dir=results_dir,
            environment=environment, running=running, scratch=scratch))
    detail = fields.pop("env_error_detail", None)
    return finish(detail=detail, **{**environment, **fields})


def apply_patch(session, spec, patch, installation):
    """Apply ``patch`` (a ``patches.Patch``) to the environment just
    installed for ``spec``: the diff meant for the release installed of
    its CUDA target, else of another package it names (CuBIE's own copy
    of the simulator)."""
    packages = installation.packages or {}
    if not any(packages.get(name) for name in patched_packages(spec)):
        packages = read_environment(session)["packages"]
    diff = None
    for package in patched_packages(spec):
        version = packages.get(package)
        diff = patch.diff_for(package, version) if version else None
        if diff is not None:
            break
    if diff is None:
        raise PatchError(f"patch {patch.name} has no diff for {spec.target} "
                         f"{packages.get(spec.target)}")
    session.log(f"patch {patch.name}: {diff.file.name} onto {package} "
                f"{version}")
    return patching.apply(session, patch, diff, patching.reinstaller(
        session, package, version))


def check_results_folder(results_dir: str | Path) -> None:
    """Raise BadInput (one line) where ``results_dir`` cannot hold
    results, before any work; clear what a killed run (kill -9) left
    there: running markers of processes that are gone, scratch folders."""
    problem = folder_problem(results_dir)
    if problem:
        raise BadInput(f"{problem}; set RACEMATRIX_RESULTS to a folder you "
                       f"can write")
    markers, scratch = clear_stale(results_dir)
    if markers or scratch:
        logger.info("cleared what a killed run left: %d running marker(s), "
                    "%d scratch folder(s)", markers, scratch)


def run_id(parallel: bool) -> int:
    """The nox process that runs this run: this one, or under ``-j`` the
    parent of this worker (``session.parallel``)."""
    return os.getppid() if parallel else os.getpid()


def run_journal(results_dir: str | Path, run: int) -> Path:
    """This run's folder of finished environments (one file each)."""
    return Path(results_dir) / ".runs" / str(run)


def row_line(raw: dict) -> str:
    """One line for a finished environment: its verdict, its rate (per
    kind where the suite declares kinds) and its launches."""
    verdict = raw["verdict"]
    if verdict in ("skipped", "error") and not raw["runs"]:
        return f"{verdict}: {raw['reason']}"
    parts = [verdict]
    kinds = raw.get("kinds")
    if kinds:
        parts += [f"{kind} {counts['failures']}/{counts['runs']}"
                  for kind, counts in kinds.items() if counts["runs"]]
    else:
        parts.append(f"{raw['failures']}/{raw['runs']} race failures")
    if raw["other_errors"] or raw.get("hangs"):
        parts.append(f"{raw['other_errors']} other, {raw.get('hangs', 0)} "
                     f"hung")
    launch = raw.get("launch_seconds")
    if launch:
        if launch.get("error"):
            parts.append(f"launches: {launch['error'][:120]}")
        elif launch.get("n"):
            parts.append(f"{launch['n']} launches, median "
                         f"{launch['median']:.2f} s: {launch['decision']}")
    return ", ".join(parts)


def note_finished(results_dir: str | Path, raw: dict, run: int,
                  total: int, venv: str | None = None) -> str:
    """Record ``raw``'s verdict in run ``run``'s journal and return the
    progress line: how many environments are done of ``total``, about
    how long the rest takes, and the row's line."""
    journal = run_journal(results_dir, run)
    journal.mkdir(parents=True, exist_ok=True)
    write_text_atomic(journal / f"{raw['env']}.json", json.dumps(
        {"env": raw["env"], "verdict": raw["verdict"], "runs": raw["runs"],
         "line": row_line(raw), "started": time.time() - raw["seconds"],
         "venv": venv}))
    entries = _entries(journal)
    done = len(entries)
    where = f"{done}/{total}" if done <= total else f"{done}"
    left = total - done
    if 0 < left and done:
        started = min(entry["started"] for entry in entries)
        where += f", ~{(time.time() - started) / done * left:.0f} s left"
    return f"[{where}] {raw['env']}: {row_line(raw)}"


def _entries(journal: Path) -> list[dict]:
    entries = []
    for path in sorted(journal.glob("*.json")):
        try:
            entries.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return entries


def launches_again_alone(results_dir: str | Path,
                         entries: list[dict]) -> list[str]:
    """The launch A/B of each row of this run that read undecided, timed
    again now that every session has ended: under -j its pairs can find no
    free core, and the lock's price shows only with one. The row keeps the
    first attempt's figures as ``launch_seconds["beside"]``. Returns one
    line per row timed again."""
    lines = []
    for entry in entries:
        path = Path(results_dir, "raw", f"{entry['env']}.json")
        raw = read_raw(path)[0] if entry.get("venv") and path.exists() \
            else None
        if raw is None:
            continue
        first = cast(dict, raw.get("launch_seconds") or {})
        if first.get("decision") != "undecided":
            continue
        # The row's own pairs; without its rule, launch_time's defaults.
        rule = first.get("rule")
        again = measure_launch.run_launch_time(
            ProbeEnvironment(entry["venv"], raw["python"]),
            raw["sim"], ("--pairs", str(rule["pairs"]), "--max-pairs",
                         str(rule["max_pairs"])) if rule else ())
        again["concurrency"] = 1
        again["beside"] = {key: first.get(key) for key in (
            "decision", "ratio", "idle_cpus", "concurrency")}
        record(cast(RawResult, {**raw, "launch_seconds": again}), results_dir)
        lines.append(f"{entry['env']}: launches again, alone: "
                     f"{again.get('decision')} (ratio {again.get('ratio')}; "
                     f"beside the others: undecided, ratio "
                     f"{first.get('ratio')})")
    return lines


def finish_run(results_dir: str | Path, run: int, env_ids: list[str],
               command: str = "nox -s matrix") -> tuple[str, list[str]]:
    """The run's last word, after its environments: where one of them
    recorded a row, the tables, REPORT.md and the plot; then the verdict
    counts of this run, the environments not run here (``env_ids`` minus
    those recorded) and the paths written. Returns (that line, the rows of
    this run that are errors with nothing measured, each as ``env: its
    line``)."""
    journal = run_journal(results_dir, run)
    entries = _entries(journal)
    shutil.rmtree(journal, ignore_errors=True)
    for again in launches_again_alone(results_dir, entries):
        logger.info(again)
    counts = Counter(entry["verdict"] for entry in entries)
    line = f"matrix: {len(entries)} environments"
    if entries:
        took = time.time() - min(entry["started"] for entry in entries)
        line += f" in {took:.0f} s: " + ", ".join(
            f"{count} {verdict}" for verdict, count in counts.most_common())
    not_run = len(set(env_ids) - {entry["env"] for entry in entries})
    if not_run:
        line += f"; {not_run} not run here"
    if entries:
        results = Path(results_dir)
        with results_lock(results):
            # nox's own environment has matplotlib; elsewhere `nox -s
            # report` draws the pictures.
            build_report([results / "raw"], results, results / "bisect",
                         command, plot=importlib.util.find_spec(
                             "matplotlib") is not None)
        line += (f"; table {results / 'failure_rates.md'}, report "
                 f"{results / 'REPORT.md'}, plot "
                 f"{results / 'failure_rates.png'}")
    failed = [f"{entry['env']}: {entry['line']}" for entry in entries
              if entry["verdict"] == "error" and not entry["runs"]]
    return line, failed


def session_command(session_name: str, posargs: list[str],
                    environ: Mapping[str, str] = os.environ) -> str:
    """The command that reruns one session, with the MATRIX_* variables
    that shaped it, for provenance."""
    variables = " ".join(f"{name}={shlex.quote(environ[name])}" for name in
                         ("MATRIX_PYTHONS", "MATRIX_SPECS", "MATRIX_SIM")
                         if name in environ)
    command = f"nox -s {shlex.quote(session_name)}"
    if posargs:
        command += " -- " + shlex.join(posargs)
    return f"{variables} {command}".strip()


def split_count(posargs: list[str], default: int) -> tuple[int, list[str]]:
    """pytest arguments for a run, with ``--count`` taken out (the runner
    passes it, and needs it to read test names)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--count", nargs="?", action="append")
    args, rest = parser.parse_known_args(list(posargs))
    given = args.count or [str(default)]
    if len(given) > 1:
        raise BadInput(f"--count given {len(given)} times "
                       f"({', '.join(map(str, given))}): give it once")
    if given[0] is None:
        raise BadInput("--count needs a value: a positive whole number, "
                       "e.g. `-- --count 20`")
    value = given[0]
    if not value.isdigit() or int(value) < 1:
        raise BadInput(f"--count needs a positive whole number, got {value!r}")
    own = measure_race.refuse_own_options(rest)
    if own:
        raise BadInput(own)
    return int(value), rest
