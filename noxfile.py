"""Sessions of the reproduction matrix. The logic lives in ``racematrix``."""
import os
import sys

import nox

# nox does not put the noxfile's folder on sys.path; the logic lives beside it.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from racematrix import envspec, runner
from racematrix.interpreters import expose_interpreters

nox.needs_version = ">=2026.10.20"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["matrix"]
# Keep environments between runs: a warm matrix only re-checks them.
nox.options.reuse_venv = "yes"
# Fail fast offline: find installed Pythons rather than download one.
# `--download-python auto` on the command line still downloads.
nox.options.download_python = "never"
expose_interpreters()

PYPROJECT = nox.project.load_toml("pyproject.toml")
OPTIONAL = PYPROJECT["project"]["optional-dependencies"]
HERE = os.path.dirname(os.path.abspath(__file__))
# Where results go; tests point this at a scratch folder.
RESULTS = os.environ.get("RACEMATRIX_RESULTS", "results")
try:
    MATRIX = envspec.load_config(PYPROJECT["tool"]["racematrix"], os.environ)
except envspec.ConfigError as error:
    sys.exit(f"nox: {error}")


@nox.session(python=list(MATRIX.pythons), allow_parallel=True)
@nox.parametrize("sim", [nox.param(s, id=f"sim{int(s)}") for s in MATRIX.sims])
@nox.parametrize("spec", [nox.param(s, id=" ".join(s)) for s in MATRIX.specs])
def matrix(session, spec, sim):
    """Run the MWE in one Python x package x simulator environment."""
    env = envspec.EnvSpec(session.python, spec, sim)
    try:
        count, pytest_args = runner.split_count(session.posargs, MATRIX.count)
        raw = runner.run_environment(
            session, env, count=count, timeout=MATRIX.timeout,
            results_dir=RESULTS, pytest_args=pytest_args,
            command=runner.session_command(session.name, session.posargs))
    except runner.BadInput as error:
        session.error(str(error))
    session.log(f"{env.env_id}: {raw['verdict']} ({raw['reason']})")
    try:  # REPORT.md is already rewritten; the report session adds the plot
        # posargs=[]: the matrix's own (e.g. --count) are pytest's, not the
        # report's.
        session.notify("report", posargs=[])
    except ValueError:  # under -j nox cannot queue sessions
        pass
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
            runner.session_command(session.name, session.posargs))
    except runner.BadInput as error:
        session.error(str(error))
    session.log(f"{data['summary']} ({data['decisive_probes']} decisive "
                f"probes, {data['seconds']} s)")


@nox.session(default=False)
def report(session):
    """Write results/REPORT.md and failure_rates.png; -- --raw DIR... merges."""
    session.install(*PYPROJECT["project"]["dependencies"], *OPTIONAL["report"])
    session.run("python", "-m", "racematrix.report", *session.posargs,
                env={"PYTHONPATH": HERE})


@nox.session
def tests(session):
    """Run the project's own tests (unit and end-to-end)."""
    session.install(*PYPROJECT["project"]["dependencies"], *OPTIONAL["test"])
    # 5: no test collected (e.g. a -k that matches nothing) is not a failure.
    session.run("python", "-m", "pytest", *session.posargs,
                env={"PYTHONPATH": HERE}, success_codes=[0, 5])


@nox.session(python=False, default=False)
def mwe_figures(session):
    """Measure the MWE: reproduction per Python, time to first failure, rates."""
    from racematrix import mwe_figures
    try:
        mwe_figures.run(MATRIX.pythons, ".nox", RESULTS, session.log,
                        runner.session_command(session.name, session.posargs))
    except runner.BadInput as error:
        session.error(str(error))


@nox.session(python=False, default=False)
def bench(session):
    """Time the default matrix cold, warm, and under nox's defaults."""
    from racematrix import bench
    bench.run(RESULTS, session.log,
              runner.session_command(session.name, session.posargs))
