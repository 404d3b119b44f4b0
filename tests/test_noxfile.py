"""The noxfile as users and CI call it: real `nox` processes."""
import functools
import json
import os
import shutil
import subprocess
import sys

import pytest

from racematrix.provenance import gpu_name

GPU = gpu_name()

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKFLOW = os.path.join(PROJECT, ".github", "workflows", "matrix.yml")


def nox(*args, **environ):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATRIX_")}
    env.update(environ)
    return subprocess.run([sys.executable, "-m", "nox", *args], cwd=PROJECT,
                          env=env, capture_output=True, text=True, timeout=120)


@functools.lru_cache  # one `nox --list` per variables, per worker
def listed(**environ):
    done = nox("--list", "--json", **environ)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_default_matrix_covers_pythons_targets_flags_and_suites():
    sessions = [s for s in listed() if s["name"] == "env"]
    assert {s["python"] for s in sessions} == {"3.10", "3.11", "3.12"}
    # Simulator off needs a GPU: without one it has no session.
    assert {s["call_spec"]["sim"] for s in sessions} == (
        {True, False} if GPU else {True})
    mwe = [s for s in sessions if s["call_spec"]["suite"] == "mwe"]
    targets = {s["call_spec"]["spec"][0].split("==")[0] for s in mwe}
    assert targets == {"numba", "numba-cuda"}
    # The suites that run by default: CuBIE's runs when named.
    from nox.project import load_toml  # tomllib is 3.11+
    declared = load_toml(os.path.join(PROJECT, "pyproject.toml"))["tool"][
        "racematrix"]["suites"]
    assert {s["call_spec"]["suite"] for s in sessions} == {
        name for name, suite in declared.items() if suite.get("default", True)}
    assert declared["cubie"]["default"] is False


def test_sessions_are_the_exact_combinations_of_each_suites_lists():
    matrix = default_matrix()
    sessions = [s for s in listed() if s["name"] == "env"]
    assert sorted(s["session"] for s in sessions) == sorted(
        f"env({spec.env_id})" for spec in matrix.envs() if spec.sim or GPU)
    # No cross product: a suite's session only on its own Pythons and flags.
    for entry in sessions:
        config = matrix.configs[entry["call_spec"]["suite"]]
        assert entry["python"] in config.pythons
        assert entry["call_spec"]["sim"] in config.sims


def test_matrix_suites_picks_suites_and_specs_alone_mean_the_mwe():
    cubie = [s["call_spec"]["suite"] for s in listed(MATRIX_SUITES="cubie")
             if s["name"] == "env"]
    assert cubie and set(cubie) == {"cubie"}
    mwe = [s["call_spec"]["suite"] for s in listed(MATRIX_SPECS="numba==0.60.0")
           if s["name"] == "env"]
    assert mwe and set(mwe) == {"mwe"}
    done = nox("--list", MATRIX_SUITES="cubbie")
    assert done.returncode != 0 and "MATRIX_SUITES names unknown 'cubbie'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_overrides_select_exactly_one_environment():
    sessions = listed(MATRIX_PYTHONS="3.11", MATRIX_SPECS="numba==0.60.0",
                      MATRIX_SIM="1")
    assert [s["session"] for s in sessions if s["name"] == "env"] == [
        "env(py3.11-numba-0.60.0-sim1)"]
    # `matrix` is the run: every environment, then the report once.
    assert [s["session"] for s in sessions].index("matrix") >= 0


def test_bad_overrides_get_one_line_and_no_traceback():
    # The other malformed values' lines: test_envspec, in-process.
    done = nox("--list", MATRIX_PYTHONS="3.8")
    assert done.returncode != 0
    assert "unsupported Python 3.8" in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def default_matrix():
    from nox.project import load_toml  # tomllib is 3.11+; nox reads TOML on 3.10
    from racematrix.suites import load_matrix
    table = load_toml(os.path.join(PROJECT, "pyproject.toml"))["tool"][
        "racematrix"]
    return load_matrix(table, {}, PROJECT)


def test_ci_job_list_names_real_sessions():
    names = {s["session"] for s in listed()}
    matrix = default_matrix()
    jobs = matrix.jobs()
    assert jobs["include"], "the simulator-on sessions become jobs"
    assert all(job["session"] in names for job in jobs["include"])
    assert all(job["session"].endswith("sim1)") and job["runs_on"] ==
               "ubuntu-latest" for job in jobs["include"])
    assert len({job["artifact"] for job in jobs["include"]}) == len(jobs["include"])
    # Without a GPU runner, every simulator-off session is skipped, not lost.
    sim_off = set(jobs["skipped"])
    assert sim_off and all(name.endswith("sim0)") for name in sim_off)
    assert sim_off <= names or not GPU
    assert len(jobs["include"]) + len(jobs["skipped"]) == len(matrix.envs())
    with_gpu = matrix.jobs("gpu-a100")
    assert {j["session"] for j in with_gpu["include"] if j["runs_on"] ==
            "gpu-a100"} == sim_off


def test_ci_jobs_session_prints_the_job_list_of_the_config():
    done = nox("-s", "ci_jobs", MATRIX_PYTHONS="3.12",
               MATRIX_SPECS="numba==0.60.0", MATRIX_SIM="1 0")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert [j["session"] for j in data["include"]] == [
        "env(py3.12-numba-0.60.0-sim1)"]
    assert data["skipped"] == ["env(py3.12-numba-0.60.0-sim0)"]
    twice = nox("-s", "ci_jobs", "--", "a", "b")
    assert twice.returncode != 0 and "give one runner label" in twice.stderr


@pytest.mark.skipif(shutil.which("check-jsonschema") is None,
                    reason="check-jsonschema is not installed")
def test_workflow_validates_against_githubs_schema():
    done = subprocess.run(["check-jsonschema", "--builtin-schema",
                           "vendor.github-workflows", WORKFLOW],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflow_runs_each_listed_session_and_merges():
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load(open(WORKFLOW))
    jobs = workflow["jobs"]
    list_script = "\n".join(step.get("run", "") for step in jobs["list"]["steps"])
    assert "nox -s ci_jobs" in list_script
    assert jobs["run"]["strategy"]["fail-fast"] is False
    assert "fromJSON(needs.list.outputs.include)" in \
        jobs["run"]["strategy"]["matrix"]["include"]
    run_script = "\n".join(step.get("run", "") for step in jobs["run"]["steps"])
    assert 'nox -s "${{ matrix.session }}"' in run_script
    report_script = "\n".join(s.get("run", "") for s in jobs["report"]["steps"])
    assert "nox -s report -- --raw gathered/*" in report_script
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert "workflow_dispatch" in triggers and "schedule" in triggers
    assert {"pythons", "specs", "sim", "gpu_runner"} <= set(
        triggers["workflow_dispatch"]["inputs"])
