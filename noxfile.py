"""Sessions of the reproduction matrix. The logic lives in ``racematrix``."""
# What nox's own process needs (PEP 723: nox makes it where it is missing).
# /// script
# requires-python = ">=3.10"
# dependencies = ["nox>=2026.10.20", "packaging>=23", "jsonschema>=4.18",
#                 "pypi-simple>=1.6", "matplotlib>=3.7", "scipy>=1.11",
#                 "filelock>=3.12", "jinja2>=3.1"]
# ///
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import astuple
from typing import Any

import nox

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from racematrix import interpreters, matrix_session, procs
from racematrix.envspec import EnvSpec
from racematrix.errors import BadInput
from racematrix.suites import in_order, load_matrix
from racematrix.provenance import gpu_name

nox.needs_version = ">=2026.10.20"
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["matrix"]
nox.options.reuse_venv = "yes"
for _library in ("matplotlib", "PIL", "urllib3", "requests"):
    logging.getLogger(_library).setLevel(logging.WARNING)
# Set on some machines, it has each -j worker compile nox and our imports.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
# This nox checked the script metadata; its -j workers need not.
os.environ["NOX_SCRIPT_MODE"] = "none"
procs.terminate_on_sigterm()
# pyenv's versions on PATH (an inactive one's shim fails); nox finds uv's.
interpreters.expose_interpreters()

PYPROJECT = nox.project.load_toml("pyproject.toml")
OPTIONAL = PYPROJECT["project"]["optional-dependencies"]
RESULTS = os.environ.get("RACEMATRIX_RESULTS", "results")
try:
    MATRIX = load_matrix(PYPROJECT["tool"]["racematrix"], os.environ, HERE)
except BadInput as error:
    sys.exit(f"nox: {error}")
# Simulator off only with a GPU (the report: "not run here"); longest first.
GPU = gpu_name()
ROWS = in_order([spec for spec in MATRIX.envs() if spec.sim or GPU],
                [RESULTS, f"{HERE}/results"])


def drive(session: nox.Session, run: Callable[..., Any], *args: Any,
          **kwargs: Any) -> Any:
    """``run(*args, command=...)`` in a checked folder; BadInput: the error."""
    try:
        matrix_session.check_results_folder(RESULTS)
        return run(*args, **kwargs, command=matrix_session.session_command(
            session.name, session.posargs))
    except BadInput as error:
        session.error(str(error))


@nox.session(allow_parallel=True)
@nox.parametrize(["python", "spec", "sim", "suite", "patch"], [
    nox.param(*astuple(row), id=row.env_id) for row in ROWS])
def env(session: nox.Session, spec: tuple[str, ...], sim: bool, suite: str,
        patch: str | None) -> None:
    """Run a suite in one Python x package x simulator environment."""
    # An `error` row fails `matrix` after the report (not here: requires=).
    session.log(drive(session, matrix_session.run_environment, session, MATRIX,
                      EnvSpec(str(session.python), spec, sim, suite, patch),
                      RESULTS, len(ROWS)))


@nox.session(python=False, requires=[f"env({row.env_id})" for row in ROWS])
def matrix(session: nox.Session) -> None:
    """Every environment of the matrix, then the tables and REPORT.md once."""
    line, failed = drive(session, matrix_session.finish_run, RESULTS,
                         matrix_session.run_id(session.parallel),
                         MATRIX.envs())
    session.log(line)
    if failed:
        session.error("; ".join(failed))


@nox.session(python=False, default=False)
def bisect(session: nox.Session) -> None:
    """Find the release where the verdict flips: -- --package NAME --python X.Y."""
    from racematrix import bisect_session
    data = drive(session, bisect_session.run_bisect, session.posargs, ".nox",
                 f"{RESULTS}/bisect")
    session.log(f"{data['summary']} ({data['decisive_probes']} decisive "
                f"probes, {data['seconds']} s)")


@nox.session(default=False)
def report(session: nox.Session) -> None:
    """Write results/REPORT.md and failure_rates.png; -- --raw DIR... merges."""
    drive(session, lambda command: None)
    session.install(*PYPROJECT["project"]["dependencies"], *OPTIONAL["report"])
    session.run("python", "-m", "racematrix.report", *session.posargs,
                env={"PYTHONPATH": HERE})


@nox.session
def tests(session: nox.Session) -> None:
    """Run the project's own tests (unit and end-to-end)."""
    session.install(*PYPROJECT["project"]["dependencies"], *OPTIONAL["test"])
    session.run("ruff", "check", "--quiet", "racematrix", "noxfile.py",
                "tests", "mwe")
    session.run("mypy", "--no-error-summary", env={"PYTHONPATH": HERE})
    # 5: nothing collected (a -k matching nothing); bytecode cached for xdist.
    session.run("python", "-m", "pytest", "-n", "auto", "--dist", "loadgroup",
                *session.posargs, env={"PYTHONPATH": HERE,
                                       "PYTHONDONTWRITEBYTECODE": None},
                success_codes=[0, 5])


@nox.session(python=False, default=False)
def ci_jobs(session: nox.Session) -> None:
    """Print the CI workflow's job matrix (JSON); -- GPU_RUNNER: sim-off jobs."""
    if len(session.posargs) > 1:
        session.error("ci_jobs: give one runner label, or none")
    print(json.dumps(MATRIX.jobs(*session.posargs)))


@nox.session(python=False, default=False)
def mwe_figures(session: nox.Session) -> None:
    """Measure the MWE: reproduction per Python, time to first failure, rates."""
    from racematrix import mwe_figures
    drive(session, mwe_figures.run, list(dict.fromkeys(
        python for config in MATRIX.configs.values()
        for python in config.pythons)), ".nox", RESULTS)


@nox.session(python=False, default=False)
def bench(session: nox.Session) -> None:
    """Time the matrix cold and warm, a skip, the time bisect, the tests."""
    from racematrix import bench
    drive(session, bench.run, RESULTS, argv=session.posargs)


@nox.session(python=False, default=False)
def reproducers(session: nox.Session) -> None:
    """Record what mwe/bug.py and bug_slowdown.py print, in fresh envs."""
    from racematrix import reproducers
    drive(session, reproducers.run, session.posargs, ".nox", RESULTS)


@nox.session(python=False, default=False)
def fix_compare(session: nox.Session) -> None:
    """Compare the candidate fixes in one table; -- --launches times them first."""
    from racematrix import fix_compare
    drive(session, fix_compare.run, session.posargs, ".nox", RESULTS)
