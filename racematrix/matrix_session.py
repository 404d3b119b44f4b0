"""The driver of ``nox -s matrix``: one environment built, measured and
recorded per session, and the tables and report written once per run,
after the environments.

Each session builds its environment (``install``), hands it to the
measurements (the suite, then launch time for the MWE), records the raw
result (``rawresult.record``) and returns it. The process that ran the sessions
(nox itself, or nox's parent process under ``-j``) calls
``write_report_at_exit`` when it exits: the report is written once, after
the last session, by a fresh interpreter.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from . import measure_launch, measure_race, patching
from .errors import BadInput
from .fileio import (mark_tables_fresh, results_lock, running_marker,
                     scratch_folder, tables_stale, write_text_atomic)
from .install import install_resolved
from .measurement import Built, run_all
from .patches import patched_packages
from .patching import PatchError
from .procs import caching_environ
from .provenance import gpu_name, machine_info, now_iso
from .rawresult import kept_measured_row, make_raw, record
from .report import build_report
from .suites import MWE_SUITE
from .venv import read_environment


def run_environment(session, spec, *, count, timeout, results_dir,
                    pytest_args=(), command="", suite=MWE_SUITE,
                    launch_time=None, patch=None, verbose=False):
    """Build one environment, run the measurements in it, and record the
    raw result. ``launch_time`` (keyword arguments of
    ``measure_launch.LaunchTime``, or None for none) adds launch time,
    timed in the suite's process after its tests. Only ``verbose``
    prints the installer's steps and pytest's output (the raw result
    keeps pytest's last lines). Returns the raw record."""
    detail = session.log if verbose else (lambda *_: None)
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

    if not spec.sim and not gpu_name():
        return finish(skip_reason="no CUDA GPU (simulator off needs one)",
                      **nothing)
    installation = install_resolved(session, spec, suite=suite, log=detail)
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


def write_report_if_stale(results_dir, command="nox -s matrix"):
    """Tables, REPORT.md and the pictures, when a session of this run (or
    of one killed before it could) recorded a raw file since they were last
    written. Returns whether it wrote them."""
    results_dir = os.fspath(results_dir)
    with results_lock(results_dir):
        if not tables_stale(results_dir):
            return False
        # nox's own environment has matplotlib; elsewhere `nox -s report`
        # draws the pictures.
        build_report([f"{results_dir}/raw"], results_dir,
                     f"{results_dir}/bisect", command,
                     plot=importlib.util.find_spec("matplotlib") is not None)
        mark_tables_fresh(results_dir)
    return True


def write_report_at_exit(results_dir):
    """``write_report_if_stale`` in a fresh interpreter: the process that
    ran the sessions calls this from ``atexit``, where Python refuses new
    threads and exit handlers (the report's libraries make some). nox's
    own environment may come from uv, with no bytecode: it runs with
    ``caching_environ``. Nothing is started where no session recorded a
    row (the tables are not stale)."""
    if not tables_stale(results_dir):
        return
    project = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "racematrix.matrix_session",
                    os.fspath(results_dir)], cwd=project,
                   env={**caching_environ(), "PYTHONPATH": os.pathsep.join(
                       filter(None, [str(project),
                                     os.environ.get("PYTHONPATH")]))})


# Set by the process that runs (or, under -j, hands out) a run's sessions:
# "PID:TOTAL:START". nox's -j workers are its children and inherit it; any
# other process (a nox started by the bench or the tests) leads its own run.
RUN_VARIABLE = "RACEMATRIX_RUN"


def lead_run(environ: MutableMapping[str, str], total: int,
             results_dir: str | Path | None = None) -> bool:
    """Whether this process leads the run: False in a -j worker of the
    process that does (whose pid the variable holds). The leader sets
    the variable for its workers, with ``total``, the matrix's sessions
    that run here, and the time it started, and empties its journal in
    ``results_dir`` (one a killed run of the same pid left)."""
    pid = environ.get(RUN_VARIABLE, "").split(":")[0]
    if pid == str(os.getppid()):
        return False
    environ[RUN_VARIABLE] = f"{os.getpid()}:{total}:{time.time():.3f}"
    if results_dir is not None:
        shutil.rmtree(run_journal(results_dir, environ), ignore_errors=True)
    return True


def run_journal(results_dir: str | Path,
                environ: Mapping[str, str] = os.environ) -> Path:
    """This run's folder of finished environments (one file each)."""
    pid = environ.get(RUN_VARIABLE, str(os.getpid())).split(":")[0]
    return Path(results_dir) / ".runs" / pid


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


def note_finished(results_dir: str | Path, raw: dict,
                  environ: Mapping[str, str] = os.environ) -> str:
    """Record ``raw``'s verdict in this run's journal and return the
    progress line: how many environments are done of the matrix's, about
    how long the rest takes, and the row's line."""
    journal = run_journal(results_dir, environ)
    journal.mkdir(parents=True, exist_ok=True)
    write_text_atomic(journal / f"{raw['env']}.json", json.dumps(
        {"env": raw["env"], "verdict": raw["verdict"],
         "line": row_line(raw)}))
    done = sum(1 for _ in journal.glob("*.json"))
    _, total, started = (environ.get(RUN_VARIABLE, "") + "::").split(":")[:3]
    where = f"{done}"
    if total.isdigit() and done <= int(total):
        where += f"/{total}"
        left = int(total) - done
        if left and started:
            seconds = (time.time() - float(started)) / done * left
            where += f", ~{seconds:.0f} s left"
    return f"[{where}] {raw['env']}: {row_line(raw)}"


def finish_run(results_dir: str | Path,
               environ: Mapping[str, str] = os.environ) -> str | None:
    """The run's last word, in the leading process after its sessions:
    where a matrix session of this run recorded a row, the tables and
    report, then the verdict counts of this run and the paths of what
    was written; None (and nothing written) where none ran."""
    journal = run_journal(results_dir, environ)
    entries = []
    for path in sorted(journal.glob("*.json")):
        try:
            entries.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    if not entries:  # no matrix session ran here (`nox -l`, the tests)
        return None
    wrote = tables_stale(results_dir)
    write_report_at_exit(results_dir)
    shutil.rmtree(journal, ignore_errors=True)
    counts = Counter(entry["verdict"] for entry in entries)
    _, _, started = (environ.get(RUN_VARIABLE, "") + "::").split(":")[:3]
    took = f" in {time.time() - float(started):.0f} s" if started else ""
    line = (f"matrix: {len(entries)} environments{took}: " + ", ".join(
        f"{count} {verdict}" for verdict, count in counts.most_common()))
    if wrote:
        results = Path(results_dir)
        line += (f"; table {results / 'failure_rates.md'}, report "
                 f"{results / 'REPORT.md'}, plot "
                 f"{results / 'failure_rates.png'}")
    return line


def session_command(session_name, posargs, environ=os.environ):
    """The command that reruns one session, with the MATRIX_* variables
    that shaped it, for provenance."""
    variables = " ".join(f"{name}={shlex.quote(environ[name])}" for name in
                         ("MATRIX_PYTHONS", "MATRIX_SPECS", "MATRIX_SIM")
                         if name in environ)
    command = f"nox -s {shlex.quote(session_name)}"
    if posargs:
        command += " -- " + shlex.join(posargs)
    return f"{variables} {command}".strip()


def split_count(posargs, default):
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


if __name__ == "__main__":  # python -m racematrix.matrix_session RESULTS
    write_report_if_stale(sys.argv[1])
