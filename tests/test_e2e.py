"""End to end: real virtual environments, real numba and numba-cuda from the
package index, real pytest runs of the MWE, through `nox` as users call it."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.e2e

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
from conftest import BUGGY, FIXED

PYTHON = None  # set by the fixture below: a Python with wheels for both


@pytest.fixture(scope="module", autouse=True)
def python_with_wheels(e2e_python):
    global PYTHON
    PYTHON = e2e_python


def nox(results, *args, **environ):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATRIX_")}
    env.update(environ, RACEMATRIX_RESULTS=str(results))
    return subprocess.run([sys.executable, "-m", "nox", *args], cwd=PROJECT,
                          env=env, capture_output=True, text=True, timeout=1500)


def raw(results, env_id):
    return json.loads((results / "raw" / f"{env_id}.json").read_text())


@pytest.fixture(scope="module")
def matrix_run(tmp_path_factory, data_dir_module):
    """One real parallel matrix run into a results folder that already
    holds an older result of one environment and a result of another."""
    results = tmp_path_factory.mktemp("results")
    (results / "raw").mkdir()
    for name in ("py3.11-numba-0.60.0-sim1.json",
                 "py3.10-numba-cuda-0.24.0+numba-0.61.2-sim1.json"):
        shutil.copy(data_dir_module / "raw" / name, results / "raw" / name)
    (results / "raw" / "py3.11-numba-0.60.0-sim1.json").rename(
        results / "raw" / f"py{PYTHON}-numba-0.60.0-sim1.json")
    before = {p.name: p.read_bytes() for p in (results / "raw").iterdir()}
    done = nox(results, "-s", "matrix", "-j", "2", MATRIX_PYTHONS=PYTHON,
               MATRIX_SPECS=f"{BUGGY};{FIXED}", MATRIX_SIM="1")
    return results, before, done


@pytest.fixture(scope="module")
def data_dir_module():
    from pathlib import Path
    return Path(__file__).resolve().parent / "data"


def test_verdicts_of_a_buggy_and_a_fixed_environment(matrix_run):
    results, _, done = matrix_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    buggy = raw(results, f"py{PYTHON}-numba-0.60.0-sim1")
    fixed = raw(results, f"py{PYTHON}-numba-cuda-0.30.4-sim1")
    assert buggy["verdict"] == "reproduced" and buggy["failures"] > 0
    assert fixed["verdict"] == "not-reproduced" and fixed["runs"] >= 20
    assert fixed["packages"]["numba-cuda"] == "0.30.4"
    assert buggy["packages"]["numba"] == "0.60.0"
    assert buggy["python"].startswith(PYTHON)
    assert buggy["settings"]["preset"] == "aggressive"
    # Both sessions ran side by side under -j 2, and the rows say so.
    assert {buggy["concurrency"], fixed["concurrency"]} <= {1, 2}


def test_run_replaces_its_row_and_keeps_the_others(matrix_run):
    results, before, _ = matrix_run
    other = "py3.10-numba-cuda-0.24.0+numba-0.61.2-sim1.json"
    replaced = f"py{PYTHON}-numba-0.60.0-sim1.json"
    assert (results / "raw" / other).read_bytes() == before[other]
    assert (results / "raw" / replaced).read_bytes() != before[replaced]
    table = json.loads((results / "failure_rates.json").read_text())
    assert sorted(row["env"] for row in table["rows"]) == sorted([
        "py3.10-numba-cuda-0.24.0+numba-0.61.2-sim1",
        f"py{PYTHON}-numba-0.60.0-sim1", f"py{PYTHON}-numba-cuda-0.30.4-sim1"])
    assert (results / "REPORT.md").exists()


def test_simulator_off_without_gpu_is_skipped_quickly(tmp_path):
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has a GPU")
    started = time.monotonic()
    done = nox(tmp_path, "-s", "matrix", MATRIX_PYTHONS=PYTHON,
               MATRIX_SPECS=BUGGY, MATRIX_SIM="0")
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 60
    record = raw(tmp_path, f"py{PYTHON}-numba-0.60.0-sim0")
    assert record["verdict"] == "skipped" and "no CUDA GPU" in record["reason"]


def test_unknown_version_is_one_line_and_writes_nothing(tmp_path):
    done = nox(tmp_path, "-s", "matrix", MATRIX_PYTHONS=PYTHON,
               MATRIX_SPECS="numba==0.60.9", MATRIX_SIM="1")
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "numba==0.60.9 is not on the package index; nearest on the " \
           "index: 0.59.1, 0.60.0" in output
    assert "Traceback" not in output
    assert not (tmp_path / "raw").exists()


def test_real_bisect_finds_the_fix(tmp_path):
    done = nox(tmp_path, "-s", "bisect", "--", "--package", "numba-cuda",
               "--python", PYTHON, "--from", "0.24.0", "--to", "0.26.0",
               "--with", "numba==0.61.2")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads((tmp_path / "bisect" / f"numba-cuda-py{PYTHON}.json")
                      .read_text())
    assert data["boundary"] == {
        "before": {"version": "0.24.0", "verdict": "reproduced"},
        "after": {"version": "0.26.0", "verdict": "not-reproduced"}}
    fixed = next(p for p in data["tested"] if p["version"] == "0.26.0")
    assert fixed["runs"] >= data["runs_to_rule_out"]
    assert (tmp_path / "bisect" / f"numba-cuda-py{PYTHON}.md").exists()


def test_bisect_bad_range_is_one_line(tmp_path):
    done = nox(tmp_path, "-s", "bisect", "--", "--package", "numba-cuda",
               "--python", PYTHON, "--from", "0.25.0")
    assert done.returncode != 0
    assert "numba-cuda 0.25.0 (--from) is not on the package index; nearest: " \
           "0.23.0, 0.24.0, 0.26.0, 0.27.0" in done.stdout + done.stderr


def test_interrupt_keeps_finished_results(tmp_path):
    """Ctrl-C in the middle of a matrix leaves every finished environment's
    result whole, and the tables readable."""
    import signal
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATRIX_")}
    env.update(RACEMATRIX_RESULTS=str(tmp_path), MATRIX_PYTHONS=PYTHON,
               MATRIX_SPECS=f"{BUGGY};{FIXED}", MATRIX_SIM="1")
    process = subprocess.Popen([sys.executable, "-m", "nox", "-s", "matrix"],
                               cwd=PROJECT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    first = tmp_path / "raw" / f"py{PYTHON}-numba-0.60.0-sim1.json"
    deadline = time.monotonic() + 600
    while not first.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.5)  # the second environment is now under way
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)
    assert json.loads(first.read_text())["verdict"] == "reproduced"
    table = json.loads((tmp_path / "failure_rates.json").read_text())
    assert f"py{PYTHON}-numba-0.60.0-sim1" in [r["env"] for r in table["rows"]]
    leftovers = [p.name for p in (tmp_path / "raw").iterdir()
                 if p.name.startswith(".")]
    assert leftovers == []


def test_bisect_without_the_interpreter_is_one_line_and_writes_nothing(tmp_path):
    done = nox(tmp_path, "-s", "bisect", "--", "--package", "numba",
               "--python", "3.99")
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "bisect: no Python 3.99 here" in output and "Traceback" not in output
    assert not (tmp_path / "bisect").exists()
