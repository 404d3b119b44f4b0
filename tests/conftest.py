import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from racematrix import interpreters

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
DATA = Path(__file__).resolve().parent / "data"
# What the end-to-end tests build: a release with the race and one without.
BUGGY = "numba==0.60.0"
FIXED = "numba-cuda==0.30.4"


@pytest.fixture
def data_dir():
    return DATA


# Pythons the matrix supports, newest first: the order in which a test that
# needs "some Python with wheels for X" tries them.
SUPPORTED = ("3.14", "3.13", "3.12", "3.11", "3.10")


def pick_python(requirement_sets, candidates=None, prefer=None,
                run=subprocess.run):
    """The first installed Python, of ``prefer`` then ``candidates``
    (newest first), for which every requirement set in
    ``requirement_sets`` resolves to wheels alone; None when there is
    none. What a test needs that pins releases with wheels for some Pythons
    only (numba 0.60 has none for 3.13)."""
    order = list(dict.fromkeys([*([prefer] if prefer else []),
                                *(candidates or SUPPORTED)]))
    uv = shutil.which("uv")
    if uv is None:
        return None
    interpreters.expose_interpreters()
    for python in order:
        if interpreters.find_interpreter(python) is None:
            continue
        if all(has_wheels(uv, python, requirements, run)
               for requirements in requirement_sets):
            return python
    return None


def has_wheels(uv, python, requirements, run=subprocess.run):
    """Whether ``requirements`` resolve on the index to wheels alone for
    Python ``python`` (a dry resolution: nothing is installed)."""
    try:
        done = run([uv, "pip", "compile", "-q", "--no-header",
                    "--python-version", python, "--only-binary", ":all:",
                    "-"], input="\n".join(requirements), capture_output=True,
                   text=True, timeout=300)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@pytest.fixture(scope="session")
def e2e_python():
    """A Python that is installed here and has wheels for BUGGY and FIXED:
    nox's own where it has, else the newest that has. Never assumed to be
    nox's (numba 0.60 has no wheel for 3.13)."""
    this = f"{sys.version_info.major}.{sys.version_info.minor}"
    python = pick_python([[BUGGY], [FIXED]], prefer=this)
    if python is None:
        pytest.skip(f"no installed Python 3.10-3.14 has wheels for both "
                    f"{BUGGY} and {FIXED}: install one, e.g. `uv python "
                    f"install 3.12`")
    return python


def shared_folder(tmp_path_factory):
    """A folder that every pytest-xdist worker of this run sees (each
    worker's own tmp_path folders lie under it); without xdist, this
    process's own base folder."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def once(tmp_path_factory, name, build):
    """``build(folder)`` run by one worker of this run, the others waiting
    for it (a file lock): what two workers would build alike, built once.
    Its result, plain JSON data, is returned to every caller."""
    from filelock import FileLock
    shared = shared_folder(tmp_path_factory)
    done = shared / f"{name}.json"
    with FileLock(str(shared / f"{name}.lock")):
        if not done.exists():
            folder = shared / name
            folder.mkdir(exist_ok=True)
            done.write_text(json.dumps(build(folder)))
    return json.loads(done.read_text())


# The longest tests first (measured, --durations), so that pytest-xdist's
# workers, each taking the next test as it frees up (--dist loadgroup: a
# few queued each), start them early and fill the rest of the run with the
# short ones; the real bisect needs no matrix_run, so it runs beside it.
# Each name is the start of a test's name (the others keep their order).
SLOW_FIRST = (
    "test_verdicts_of_a_buggy_and_a_fixed_environment",  # builds matrix_run
    "test_real_bisect_finds_an_adjacent_flip_without_pins",  # beside it
    "test_workflow_lists_runs_and_merges_one_environment",
    "test_patched_and_unpatched_environments_through_nox",
    "test_a_failed_attempt_keeps_the_measured_row_beside_it",
    "test_report_refuses_when_every_input_is_left_out",
    "test_under_nox_defaults_pip_installs_exactly_the_pins",
    "test_each_finished_environment_is_one_line_with_its_progress",
    "test_a_users_own_suite_runs_end_to_end_through_nox",
    "test_a_rows_pairs_in_a_real_environment",
    "test_interrupt_keeps_finished_results",
    "test_interrupt_ends_every_process_and_keeps_the_earlier_row",
    "test_an_early_release_installs_through_the_ladder",
    "test_a_part_runs_nox_and_one_past_its_limit_is_stopped",
    "test_usage_error_is_one_line_and_keeps_the_earlier_row",
)


def pytest_collection_modifyitems(config, items):
    def rank(item):
        for position, name in enumerate(SLOW_FIRST):
            if item.name.startswith(name):
                return position
        return len(SLOW_FIRST)
    items.sort(key=rank)  # stable: the others keep their order


def run_nox(results, *args, **environ):
    """``python -m nox ARGS`` in the project, results in ``results``."""
    import subprocess
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATRIX_")}
    env.update(environ, RACEMATRIX_RESULTS=str(results))
    return subprocess.run([sys.executable, "-m", "nox", *args], cwd=PROJECT,
                          env=env, capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="session")
def matrix_run(tmp_path_factory, e2e_python):
    """One real parallel matrix run (`nox -s matrix -j 2`, BUGGY and FIXED)
    into a results folder that already holds an older result of one
    environment and a result of another: (results, the raw files before,
    the finished nox process). It builds BUGGY's and FIXED's environments
    in the project's .nox, which the tests that use ``matrix_envs`` reuse;
    run once for all pytest-xdist workers, the others waiting for it."""
    import shutil
    import subprocess

    def build(results):
        (results / "raw").mkdir()
        for name in ("py3.11-numba-0.60.0-sim1.json",
                     "py3.10-numba-cuda-0.24.0+numba-0.61.2-sim1.json"):
            shutil.copy(DATA / "raw" / name, results / "raw" / name)
        (results / "raw" / "py3.11-numba-0.60.0-sim1.json").rename(
            results / "raw" / f"py{e2e_python}-numba-0.60.0-sim1.json")
        before = {p.name: p.read_text() for p in (results / "raw").iterdir()}
        done = run_nox(results, "-s", "matrix", "-j", "2",
                       MATRIX_PYTHONS=e2e_python,
                       MATRIX_SPECS=f"{BUGGY};{FIXED}", MATRIX_SIM="1")
        return {"results": str(results), "before": before,
                "returncode": done.returncode, "stdout": done.stdout,
                "stderr": done.stderr}
    data = once(tmp_path_factory, "matrix_run", build)
    before = {name: text.encode() for name, text in data["before"].items()}
    done = subprocess.CompletedProcess("nox", data["returncode"],
                                       data["stdout"], data["stderr"])
    return Path(data["results"]), before, done


@pytest.fixture
def matrix_envs(matrix_run, e2e_python):
    """Where BUGGY's and FIXED's matrix environments are, built (by
    matrix_run): a test that runs them waits for it rather than building
    them beside it. {requirement: folder of the environment}."""
    from racematrix.envspec import EnvSpec
    from racematrix.probers import ENV_INDEX
    folders = {}
    for spec in (BUGGY, FIXED):
        env_id = EnvSpec(e2e_python, (spec,), True).env_id
        folders[spec] = (PROJECT / ".nox" / ENV_INDEX / env_id).resolve()
    return folders


def copy_project(where, *leave_out):
    """The project as a checkout holds it (no git, nothing built or cached),
    without ``leave_out`` (names or globs) too."""
    shutil.copytree(PROJECT, where, ignore=shutil.ignore_patterns(
        ".git", ".nox", ".venv", "__pycache__", "*.pyc", ".pytest_cache",
        ".mypy_cache", ".ruff_cache", ".running", ".lock", *leave_out))
    return where


def seed_env(project, session, built, copy=False):
    """A built environment as the one nox gives ``session`` in ``project``
    (nox reuses it, the install finds it complete): a link to it, or with
    ``copy`` a copy of hard links whose files written in place are its own
    (uv's environments are links into its cache alike)."""
    from nox.sessions import _normalize_path
    where = project / _normalize_path(".nox", session)
    where.parent.mkdir(exist_ok=True)
    if not copy:
        where.symlink_to(built, target_is_directory=True)
        return where
    shutil.copytree(built, where, symlinks=True, copy_function=os.link)
    for name in ("pyvenv.cfg", "racematrix-installed.json"):
        (where / name).unlink()
        shutil.copy2(built / name, where / name)
    return where


@pytest.fixture
def report_env(tmp_path_factory):
    """The report session's environment in the project's .nox, built once
    for every test that runs `nox -s report` (`nox -s report -- --help`
    builds it and writes nothing), the others waiting for it: a checkout
    links it rather than building its own. Its folder."""
    def build(results):
        done = run_nox(results, "-s", "report", "--", "--help")
        return {"returncode": done.returncode,
                "output": (done.stdout + done.stderr)[-3000:]}
    data = once(tmp_path_factory, "report_env", build)
    assert data["returncode"] == 0, data["output"]
    return PROJECT / ".nox" / "report"
