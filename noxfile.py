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
# Fail fast offline: find installed Pythons rather than download one.
# `--download-python auto` on the command line still downloads.
nox.options.download_python = "never"
expose_interpreters()

PYPROJECT = nox.project.load_toml("pyproject.toml")
RESULTS = "results"
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
    count, pytest_args = runner.split_count(session.posargs, MATRIX.count)
    raw = runner.run_environment(
        session, env, count=count, timeout=MATRIX.timeout, results_dir=RESULTS,
        pytest_args=pytest_args, command=runner.nox_command())
    session.log(f"{env.env_id}: {raw['verdict']} ({raw['reason']})")
    if raw["verdict"] == "skipped":
        session.skip(raw["reason"])
    if raw["verdict"] == "error" and raw["runs"] == 0:
        session.error(raw["reason"])
