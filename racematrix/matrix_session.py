"""The driver of ``nox -s matrix``: one environment built, measured and
recorded per session, and the tables and report written once per run,
after the environments.

Each session builds its environment (``install``), hands it to the
measurements (the suite, then launch time for the MWE), records the raw
result (``recording``) and returns it. The process that ran the sessions
(nox itself, or nox's parent process under ``-j``) calls
``write_report_at_exit`` when it exits: the report is written once, after
the last session, by a fresh interpreter.
"""
import argparse
import importlib.util
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from . import measure_launch, measure_race, patching
from .errors import BadInput
from .fileio import results_lock, scratch_folder
from .install import install_resolved
from .measurement import Built, run_all
from .patches import patched_packages
from .patching import PatchError
from .procs import caching_environ
from .provenance import gpu_name, machine_info, now_iso
from .rawresult import make_raw
from .recording import (kept_measured_row, mark_tables_fresh, record,
                        running_marker, tables_stale)
from .report import build_report
from .suites import MWE_SUITE
from .venv import read_environment


def run_environment(session, spec, *, count, timeout, results_dir,
                    pytest_args=(), command="", suite=MWE_SUITE,
                    launch_time=None, patch=None):
    """Build one environment, run the measurements in it, and record the
    raw result. ``launch_time`` (keyword arguments of
    ``measure_launch.LaunchTime``, or None for none) adds launch time,
    timed in the suite's process after its tests. Returns the raw record."""
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
    measurements = [measure_race.RaceSuite(count, timeout, pytest_args)]
    with running_marker(results_dir, spec.env_id) as running, \
            scratch_folder() as scratch:
        if launch_time is not None:
            # Compared with the rows with the race, same Python and load.
            reference = measure_launch.reference_launches(
                Path(results_dir) / "raw", spec.python, running(),
                exclude=spec.env_id)
            measurements.append(measure_launch.LaunchTime(
                **launch_time, reference=reference))
        fields = run_all(measurements, Built(
            session, spec, suite, keep_dir=results_dir, log=session.log,
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
