"""Sessions of the reproduction matrix. The logic lives in ``racematrix``."""
# What nox's own process needs: where these are missing (a fresh
# `pip install nox uv`), nox makes an environment with them in
# .nox/_nox_script_mode and runs there (PEP 723 script metadata).
# /// script
# requires-python = ">=3.10"
# dependencies = ["nox>=2026.10.20", "packaging>=23", "jsonschema>=4.18",
#                 "pypi-simple>=1.6", "matplotlib>=3.7", "scipy>=1.11",
#                 "filelock>=3.12", "jinja2>=3.1"]
# ///
import atexit
import logging
import os
import sys

import nox

# nox does not put the noxfile's folder on sys.path; the logic lives beside it.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from racematrix import (envspec, fileio, interpreters, matrix_session, procs,
                        rawresult, schedule)
from racematrix.errors import BadInput
from racematrix.matrix import env_of, load_matrix, session_id
from racematrix.probers import note_matrix_env
from racematrix.provenance import gpu_name

nox.needs_version = ">=2026.10.20"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["matrix"]
# Keep environments between runs: a warm matrix only re-checks them.
nox.options.reuse_venv = "yes"
# nox itself never downloads: the matrix fetches missing Pythons below,
# failing within seconds where it cannot (uv alone may take ten).
nox.options.download_python = "never"
# nox logs at DEBUG; the libraries it imports for us need not.
for _library in ("matplotlib", "PIL", "urllib3", "requests"):
    logging.getLogger(_library).setLevel(logging.WARNING)
# A CI job's cancellation stops a run the way Ctrl-C does.
procs.terminate_on_sigterm()

PYPROJECT = nox.project.load_toml("pyproject.toml")
OPTIONAL = PYPROJECT["project"]["optional-dependencies"]
HERE = os.path.dirname(os.path.abspath(__file__))
# Where results go; tests point this at a scratch folder.
RESULTS = os.environ.get("RACEMATRIX_RESULTS", "results")
if not interpreters.nox_options(sys.argv[1:]).listing:
    # One line before any work, not a traceback after it.
    _UNWRITABLE = fileio.folder_problem(RESULTS)
    if _UNWRITABLE:
        sys.exit(f"nox: {_UNWRITABLE}; set RACEMATRIX_RESULTS to a folder "
                 f"you can write")
    # What a run killed outright (kill -9) left: its running markers and
    # scratch folders (the matrix's, the bisect's, the figures').
    _MARKERS, _SCRATCH = fileio.clear_stale(RESULTS)
    if _MARKERS or _SCRATCH:
        print(f"nox > cleared what a killed run left: {_MARKERS} running "
              f"marker(s), {_SCRATCH} scratch folder(s)", file=sys.stderr)
try:
    MATRIX = load_matrix(PYPROJECT["tool"]["racematrix"], os.environ, HERE)
except envspec.ConfigError as error:
    sys.exit(f"nox: {error}")
GPU = gpu_name()
# Whether this process runs the sessions, or hands them out under -j; a
# -j worker is its child (RACEMATRIX_RUN says whose), and only records.
LEADS = matrix_session.lead_run(os.environ, total=sum(
    1 for combination in MATRIX.combinations() if combination[3] or GPU),
    results_dir=RESULTS)
# What a -j worker runs, its parent looked at already.
REQUESTED = interpreters.sessions_requested(
    sys.argv[1:], os.environ, nox.options.sessions) if LEADS else ()
WANTED = interpreters.matrix_pythons_requested(REQUESTED, MATRIX.pythons)
# Simulator-off environments need a CUDA GPU. Without one they are
# sessions only where listed (`nox -l --json` feeds GPU runners' CI jobs),
# run by a worker of -j, or asked for by name or MATRIX_SIM; elsewhere their
# rows are `skipped` here, before any session or virtualenv work.
NO_GPU = "no CUDA GPU (simulator off needs one)"
NOX_OPTIONS = interpreters.nox_options(sys.argv[1:])
SIM_OFF_SESSIONS = bool(GPU) or "MATRIX_SIM" in os.environ or \
    NOX_OPTIONS.listing or not LEADS or \
    any("sim0" in name for name in REQUESTED)
# Every session asked for is simulator-off, without a GPU: each skips at
# once, with no interpreter and nothing to order.
ONLY_SIM_OFF = not GPU and bool(REQUESTED) and all(
    "sim0" in name for name in REQUESTED)
# Where nox looks for each session's Python: pyenv's and uv's folders too
# (asking uv takes a tenth of a second). Not for a listing, nor in a worker
# of -j, whose PATH is its parent's, exposed already.
if not NOX_OPTIONS.listing and LEADS and not ONLY_SIM_OFF:
    interpreters.expose_interpreters()
if WANTED:
    # Missing Pythons: fetched where uv can, else skipped with one line
    # each, and a `skipped` row where this machine has no row yet. Without
    # a GPU, a simulator-off session skips before it needs its Python:
    # never fetched for it.
    MISSING = interpreters.provision(
        WANTED if GPU else [] if 1 not in MATRIX.sims else
        interpreters.matrix_pythons_requested(
            [name for name in REQUESTED if "sim0" not in name],
            MATRIX.pythons),
        interpreters.download_choice(sys.argv[1:]),
        lambda line: print(f"nox > {line}", file=sys.stderr))
    for reason in MISSING.values():
        print(f"nox > skipped: {reason}", file=sys.stderr)
    rawresult.record_missing_interpreters(MATRIX.envs(), MISSING, RESULTS)
    if not GPU:  # the simulator-off rows of the sessions asked for
        rawresult.record_skips(
            [env for env, name in MATRIX.named_envs()
             if env.python in WANTED and not env.sim and (
                 "matrix" in REQUESTED or name in REQUESTED)],
            lambda env: NO_GPU, RESULTS)


# Longest expected first (racematrix/schedule.py), by this run's rows, else
# the checkout's: under -j, a long session started last would leave a core
# idle.
COMBINATIONS = MATRIX.combinations()
if WANTED and not ONLY_SIM_OFF:
    COMBINATIONS = schedule.in_order(COMBINATIONS, env_of,
                                     [RESULTS, f"{HERE}/results"])


def _finish_run():
    """The tables and report, once, after every session of this run, and
    the run's last word (verdict counts and where the files are)."""
    line = matrix_session.finish_run(RESULTS)
    if line:
        print(f"nox > {line}", file=sys.stderr)


if LEADS:
    atexit.register(_finish_run)


@nox.session(allow_parallel=True)
@nox.parametrize(["python", "suite", "spec", "sim", "patch"], [
    # A simulator-off session without a GPU makes no virtualenv.
    nox.param(python if sim or GPU or NOX_OPTIONS.listing else False,
              suite, spec, sim, patch,
              id=session_id(python, suite, spec, sim, patch))
    for python, suite, spec, sim, patch in COMBINATIONS
    if sim or SIM_OFF_SESSIONS])
def matrix(session, suite, spec, sim, patch):
    """Run a suite in one Python x package x simulator environment."""
    if not sim and not GPU:
        session.skip(NO_GPU)
    config = MATRIX.configs[suite]
    env = envspec.EnvSpec(session.python, spec, sim, suite, patch)
    try:
        count, pytest_args = matrix_session.split_count(session.posargs,
                                                        config.count)
        note_matrix_env(session.virtualenv.location, env)
        raw = matrix_session.run_environment(
            session, env, count=count, timeout=config.timeout,
            results_dir=RESULTS, pytest_args=pytest_args,
            command=matrix_session.session_command(session.name,
                                                   session.posargs),
            suite=MATRIX.suites[suite],
            patch=MATRIX.patches[patch] if patch else None,
            launch_time={"launches": config.launches,
                         "max_launches": config.max_launches,
                         "device_calls": config.launch_device_calls}
            if suite == envspec.DEFAULT_SUITE and config.launches else None,
            # nox's -v lowers its log level below DEBUG.
            verbose=logging.getLogger().getEffectiveLevel() < logging.DEBUG)
    except BadInput as error:
        session.error(str(error))
    session.log(matrix_session.note_finished(RESULTS, raw))
    if raw["verdict"] == "skipped":
        session.skip(raw["reason"])
    if raw["verdict"] == "error" and raw["runs"] == 0:
        session.error(raw["reason"])


@nox.session(python=False, default=False)
def bisect(session):
    """Find the release where the verdict flips: -- --package NAME --python X.Y."""
    from racematrix import bisect_session
    try:
        data = bisect_session.run_bisect(
            session.posargs, ".nox", f"{RESULTS}/bisect", session.log,
            matrix_session.session_command(session.name, session.posargs))
    except BadInput as error:
        session.error(str(error))
    session.log(f"{data['summary']} ({data['decisive_probes']} decisive "
                f"probes, {data['seconds']} s)")


@nox.session(default=False)
def report(session):
    """Write results/REPORT.md and failure_rates.png; -- --raw DIR... merges."""
    session.install(*PYPROJECT["project"]["dependencies"], *OPTIONAL["report"])
    session.run("python", "-m", "racematrix.report_session", *session.posargs,
                env={"PYTHONPATH": HERE})


@nox.session
def tests(session):
    """Run the project's own tests (unit and end-to-end)."""
    session.install(*PYPROJECT["project"]["dependencies"], *OPTIONAL["test"])
    # Lint and types first ([tool.ruff], [tool.mypy]; mypy caches what it
    # read in .mypy_cache: about 20 s cold, a few seconds after).
    session.run("ruff", "check", "--quiet", "racematrix", "noxfile.py",
                "tests", "mwe")
    session.run("mypy", "--no-error-summary", env={"PYTHONPATH": HERE})
    # 5: no test collected (e.g. a -k that matches nothing) is not a failure.
    # Parallel (pytest-xdist; `-- -n 0` runs in one process), handed out
    # one at a time, slowest first; what tests share is built once
    # (tests/conftest.py).
    # PYTHONDONTWRITEBYTECODE (set on some machines) would have every
    # process the tests start compile SciPy and matplotlib again: the
    # tests' environment is ours to cache in.
    session.run("python", "-m", "pytest", "-n", "auto", "--dist", "loadgroup",
                *session.posargs, env={"PYTHONPATH": HERE,
                                       "PYTHONDONTWRITEBYTECODE": None},
                success_codes=[0, 5])


@nox.session(python=False, default=False)
def mwe_figures(session):
    """Measure the MWE: reproduction per Python, time to first failure, rates."""
    from racematrix import mwe_figures
    try:
        pythons = MATRIX.configs.get(envspec.DEFAULT_SUITE, MATRIX).pythons
        mwe_figures.run(pythons, ".nox", RESULTS,
                        matrix_session.session_command(session.name,
                                                       session.posargs))
    except BadInput as error:
        session.error(str(error))


@nox.session(python=False, default=False)
def bench(session):
    """Time the matrix cold and warm, a skip, the time bisect, the tests."""
    from racematrix import bench
    try:
        bench.run(RESULTS, session.log,
                  matrix_session.session_command(session.name,
                                                 session.posargs),
                  session.posargs)
    except BadInput as error:
        session.error(str(error))


# --- sessions added by other work below ---


@nox.session(python=False, default=False)
def reproducers(session):
    """Record what mwe/bug.py and bug_slowdown.py print, in fresh envs."""
    session.run(sys.executable, "-m", "racematrix.reproducers",
                *session.posargs, env={"PYTHONPATH": HERE})


@nox.session(python=False, default=False)
def fix_compare(session):
    """Compare the candidate fixes in one table; -- --launches times them first."""
    from racematrix import fix_compare
    try:
        fix_compare.run(session.posargs, ".nox", RESULTS,
                        matrix_session.session_command(session.name,
                                                       session.posargs))
    except BadInput as error:
        session.error(str(error))

