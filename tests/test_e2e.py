"""End to end: real virtual environments, real numba and numba-cuda from the
package index, real pytest runs of the MWE, through `nox` as users call it."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import BUGGY, FIXED, copy_project

pytestmark = pytest.mark.e2e

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

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
def data_dir_module():
    return Path(__file__).resolve().parent / "data"


def test_the_run_says_one_line_per_environment_and_a_last_word(matrix_run):
    """What `nox -s matrix -j 2` prints: a line per finished environment
    with its progress and verdict, no pytest traceback of the expected
    race (pytest's output is kept in the row), and last the counts of
    the run and where its table, report and plot are."""
    results, _, done = matrix_run
    output = done.stdout + done.stderr
    buggy, fixed = f"py{PYTHON}-numba-0.60.0-sim1", \
        f"py{PYTHON}-numba-cuda-0.30.4-sim1"
    progress = [line for line in output.splitlines()
                if re.match(r"nox > \[\d/2\b", line)]
    assert len(progress) == 2, output[-3000:]
    assert any(f"{buggy}: reproduced, pattern " in line for line in progress)
    assert any(f"{fixed}: not-reproduced, pattern 0/" in line
               for line in progress)
    assert "has no attribute 'local'" not in output
    assert "no attribute 'local'" in raw(results, buggy)["pytest_output"]
    # The session `matrix` says it once, after both (nox's summary follows).
    last, = [line for line in output.splitlines()
             if line.startswith("nox > matrix: ")]
    assert output.index(last) > max(output.index(line) for line in progress)
    assert last.startswith("nox > matrix: 2 environments in "), last
    assert "1 reproduced" in last and "1 not-reproduced" in last
    assert f"report {results}/REPORT.md" in last
    # Counts per kind of test: the pattern's is the rate.
    kinds = raw(results, buggy)["kinds"]
    assert set(kinds) == {"pattern", "trigger", "control"}
    # At count 1 the pattern's 16 runs can all miss the race under load;
    # the trigger (every thread at a barrier inside the device function)
    # does not.
    assert kinds["trigger"]["failures"] == kinds["trigger"]["runs"] == 1
    assert kinds["control"]["failures"] == 0


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
    # The load the suite ran under, at its start and end.
    assert all(len(r["load"]) == 2 and min(r["load"]) >= 0
               for r in (buggy, fixed))
    # Launch time, in the suite's own process after its tests: the row's
    # own A/B (at least 3 pairs), its decision and the load it ran under.
    from racematrix import launch_time
    for record in (buggy, fixed):
        launch = record["launch_seconds"]
        assert launch["n"] >= 3 and launch["unlocked"]["n"] == launch["n"]
        assert launch["decision"] in ("alike", "slower", "undecided")
        assert launch["workload"]["switch_interval"] == \
            launch_time.SWITCH_INTERVAL
    assert buggy["launch_seconds"]["unlocked_code"] is True
    assert fixed["launch_seconds"]["unlocked_code"] is False
    # The unlocked swap's own code needs no free core: its pairs never
    # wait for the exclusive lock.
    assert buggy["launch_seconds"]["exclusive"] is False


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


def test_simulator_off_without_gpu_skips_without_its_python(tmp_path):
    """Without a GPU, a simulator-off environment gets no session (no
    Python fetched or missed) and no row: the run counts it "not run
    here", from the config."""
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has a GPU")
    from racematrix.interpreters import expose_interpreters, find_interpreter
    expose_interpreters()
    if find_interpreter("3.14"):
        pytest.skip("this machine has Python 3.14")
    started = time.monotonic()
    done = nox(tmp_path, "-s", "matrix", "--download-python", "never",
               MATRIX_PYTHONS="3.14", MATRIX_SPECS=BUGGY, MATRIX_SIM="0")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert time.monotonic() - started < 60
    assert "3.14 not found" not in output
    assert "matrix: 0 environments; 1 not run here" in output
    assert not (tmp_path / "raw").exists()


def test_unknown_version_is_one_line_and_writes_nothing(tmp_path):
    done = nox(tmp_path, "-s", "matrix", MATRIX_PYTHONS=PYTHON,
               MATRIX_SPECS="numba==0.60.9", MATRIX_SIM="1")
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert "numba==0.60.9 is not on the package index; nearest on the " \
           "index: 0.59.1, 0.60.0" in output
    assert "Traceback" not in output
    assert not (tmp_path / "raw").exists()


def test_real_bisect_finds_an_adjacent_flip_without_pins(tmp_path):
    """A real, unpinned bisect over two releases of numba-cuda: whatever
    the answer, it is an adjacent pair of published releases with
    different verdicts, the "not reproduced" side ran enough to rule the
    bug out (its runs stop at a first failure, as a probe between the ends
    does), and every probe says how it was installed. (The runs needed to
    rule the bug out follow from the other end's rate: each release
    without the bug costs up to hundreds of runs, so the range is short.)"""
    done = nox(tmp_path, "-s", "bisect", "--", "--package", "numba-cuda",
               "--python", PYTHON, "--from", "0.24.0", "--to", "0.26.0")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    stem = f"numba-cuda-py{PYTHON}-0.24.0-0.26.0"
    data = json.loads((tmp_path / "bisect" / f"{stem}.json").read_text())
    assert (tmp_path / "bisect" / f"{stem}.md").read_text().startswith(
        "# Bisect: numba-cuda")
    releases = data["releases"]
    boundary = data["boundary"]
    assert boundary, data["summary"]
    before, after = boundary["before"], boundary["after"]
    assert releases.index(after["version"]) == \
        releases.index(before["version"]) + 1
    assert {before["verdict"], after["verdict"]} == {"reproduced",
                                                    "not-reproduced"}
    tested = {p["version"]: p for p in data["tested"]}
    clean = tested[before["version"] if before["verdict"] ==
                   "not-reproduced" else after["version"]]
    assert clean["runs"] >= data["runs_to_rule_out"]
    assert data["decisive_probes"] <= data["probe_limit"]
    for probe in data["tested"]:
        if probe["verdict"] in ("reproduced", "not-reproduced"):
            assert probe["way"] and probe["packages"]["numba-cuda"] == \
                probe["version"]


def test_bisect_bad_range_is_one_line(tmp_path):
    done = nox(tmp_path, "-s", "bisect", "--", "--package", "numba-cuda",
               "--python", PYTHON, "--from", "0.25.0")
    assert done.returncode != 0
    assert "numba-cuda 0.25.0 (--from) is not on the package index; nearest: " \
           "0.23.0, 0.24.0, 0.26.0, 0.27.0" in done.stdout + done.stderr


def interruptible():
    """In the child before exec: SIGINT back to its default. A shell runs
    a background job (``cmd &``, nohup) with SIGINT ignored, children
    inherit that, and Python then never raises KeyboardInterrupt: the
    tests' nox would not stop, wherever they were started from."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_interrupt_keeps_finished_results(tmp_path, matrix_envs):
    """Ctrl-C in the middle of a matrix leaves every finished environment's
    result whole; the tables come with the next run (the session `matrix`
    did not run) or `nox -s report`."""
    import signal
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATRIX_")}
    # No launch time: what is under test is the interrupt, not a row's
    # measurements (matrix_run's rows have launch time).
    env.update(RACEMATRIX_RESULTS=str(tmp_path), MATRIX_PYTHONS=PYTHON,
               MATRIX_SPECS=f"{BUGGY};{FIXED}", MATRIX_SIM="1",
               MATRIX_LAUNCHES="0")
    process = subprocess.Popen([sys.executable, "-m", "nox", "-s", "matrix"],
                               cwd=PROJECT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL,
                               preexec_fn=interruptible)
    # Whichever environment finishes first (sessions run longest expected
    # first, by the checkout's committed rows).
    verdicts = {f"py{PYTHON}-numba-0.60.0-sim1": "reproduced",
                f"py{PYTHON}-numba-cuda-0.30.4-sim1": "not-reproduced"}
    raw_dir = tmp_path / "raw"
    deadline = time.monotonic() + 600
    finished = []
    while not finished and time.monotonic() < deadline:
        time.sleep(0.2)
        finished = [p for p in raw_dir.glob("*.json")] if raw_dir.is_dir() \
            else []
    [first] = finished
    time.sleep(0.5)  # the second environment is under way (a warm row
    # without launch time takes about 1.5 s)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)
    assert json.loads(first.read_text())["verdict"] == verdicts[first.stem]
    assert [p.stem for p in raw_dir.glob("*.json")] == [first.stem]
    assert not (tmp_path / "failure_rates.json").exists()
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


def seeded_results(tmp_path, data_dir_module):
    """A results folder holding an earlier `reproduced` row of BUGGY."""
    results = tmp_path / "results"
    (results / "raw").mkdir(parents=True)
    target = results / "raw" / f"py{PYTHON}-numba-0.60.0-sim1.json"
    shutil.copy(data_dir_module / "raw" / "py3.11-numba-0.60.0-sim1.json",
                target)
    return results, target


@pytest.mark.parametrize("posargs, words", [
    (["--preset", "nonsense"], "invalid choice: 'nonsense'"),
    (["--count"], "--count needs a positive whole number"),
    (["-k", "nomatch"], "pytest ran no test"),
])
def test_usage_error_is_one_line_and_keeps_the_earlier_row(
        tmp_path, data_dir_module, matrix_envs, posargs, words):
    results, earlier = seeded_results(tmp_path, data_dir_module)
    before = earlier.read_bytes()
    done = nox(results, "-s", "matrix", "--", *posargs, MATRIX_PYTHONS=PYTHON,
               MATRIX_SPECS=BUGGY, MATRIX_SIM="1")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert words in output and "Traceback" not in output
    assert earlier.read_bytes() == before
    assert sorted(p.name for p in (results / "raw").iterdir()) == [earlier.name]
    assert not (results / "failure_rates.json").exists()


def test_missing_python_is_a_skip_and_no_row(tmp_path):
    started = time.monotonic()
    # Where CI is set, nox errors on a missing interpreter unless told not
    # to (README: Options).
    done = nox(tmp_path, "-s", "matrix", "--no-error-on-missing-interpreters",
               MATRIX_PYTHONS="3.99", MATRIX_SPECS=BUGGY, MATRIX_SIM="1")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-2000:]
    assert "Traceback" not in output
    assert "Python interpreter 3.99 not found" in output
    assert "matrix: 0 environments; 1 not run here" in output
    assert not (tmp_path / "raw").exists()
    assert time.monotonic() - started < 60


def test_report_refuses_when_every_input_is_left_out(tmp_path,
                                                     data_dir_module,
                                                     report_env):
    results = tmp_path / "results"
    shutil.copytree(data_dir_module / "raw", results / "raw")
    first = nox(results, "-s", "report")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]
    before = {p.name: p.read_bytes() for p in results.iterdir() if p.is_file()}
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "x.json").write_text('{"env": "x"}')
    done = nox(results, "-s", "report", "--", "--raw", str(junk))
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "nothing was written" in output and "Traceback" not in output
    assert {p.name: p.read_bytes() for p in results.iterdir()
            if p.is_file()} == before


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory):
    """The project as a source archive would hold it: no .git, nothing
    built."""
    root = tmp_path_factory.mktemp("source") / "racematrix"
    return copy_project(root, "results")


# The other bad values' lines: test_suites, in-process.
@pytest.mark.parametrize("line, words", [
    ("count = \"abc\"", "count: 'abc' is not of type 'integer'"),
])
def test_bad_config_is_one_line_from_nox(source_copy, tmp_path, line, words):
    project = tmp_path / "project"
    shutil.copytree(source_copy, project)
    pyproject = project / "pyproject.toml"
    key = line.split(" =")[0]
    text = pyproject.read_text()
    start = text.index("[tool.racematrix]")
    head, table = text[:start], text[start:]
    table = "\n".join(line for line in table.splitlines()
                      if not line.startswith(f"{key} ="))
    pyproject.write_text(head + table.replace(
        "[tool.racematrix]", f"[tool.racematrix]\n{line}", 1) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATRIX_")}
    done = subprocess.run([sys.executable, "-m", "nox", "-l"], cwd=project,
                          env=env, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert words in output and "Traceback" not in output
    assert [line for line in output.splitlines() if "tool.racematrix" in line] == [
        line for line in output.splitlines() if line.strip()][-1:]


def processes_of(marker):
    """Pids of live processes whose environment holds ``marker``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as stream:
                if marker.encode() not in stream.read():
                    continue
            with open(f"/proc/{entry}/stat") as stat:
                if stat.read().split(") ")[1][0] == "Z":
                    continue
        except OSError:
            continue
        found.append(int(entry))
    return found


def has_loaded(pid, name):
    """Whether process ``pid`` has a file whose path holds ``name`` mapped
    (a shared library it loaded)."""
    try:
        with open(f"/proc/{pid}/maps") as maps:
            return any(name in line for line in maps)
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_interrupt_ends_every_process_and_keeps_the_earlier_row(
        tmp_path, data_dir_module, matrix_envs, signal_name):
    """Ctrl-C (or a CI job's cancellation) while a long run's pytest runs
    the simulator: nothing of the run is left within seconds, and the
    interrupted environment keeps its earlier row."""
    import signal
    results, earlier = seeded_results(tmp_path, data_dir_module)
    before = earlier.read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATRIX_")}
    env.update(RACEMATRIX_RESULTS=str(results), MATRIX_PYTHONS=PYTHON,
               MATRIX_SPECS=BUGGY, MATRIX_SIM="1")
    process = subprocess.Popen([sys.executable, "-m", "nox", "-s", "matrix",
                                "--", "--count", "30"], cwd=PROJECT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, preexec_fn=interruptible)
    # Wait until pytest runs, numba imported (llvmlite's library loaded
    # in a process of the run), and a moment more: the simulator's
    # threads running. Keep reading: a child blocked on a full pipe would
    # outlive the signal.
    import threading
    lines = []
    threading.Thread(target=lambda: lines.extend(process.stdout),
                     daemon=True).start()
    waited = time.monotonic()
    while not any(has_loaded(pid, "llvmlite") for pid in
                  processes_of(str(results))) \
            and time.monotonic() - waited < 600:
        time.sleep(0.05)
    time.sleep(0.5)
    process.send_signal(getattr(signal, signal_name))
    sent = time.monotonic()
    while processes_of(str(results)) and time.monotonic() - sent < 30:
        time.sleep(0.1)
    gone_after = time.monotonic() - sent
    process.wait(timeout=30)
    assert processes_of(str(results)) == [], "".join(lines[-20:])
    assert gone_after < 10
    assert earlier.read_bytes() == before
    print(f"{signal_name}: no process of the run left after {gone_after:.1f} s")


@pytest.mark.parametrize("posargs, environ, words", [
    # The example: the package index out of reach.
    # uv's retries (3, over about 5 s) are its own; not waited for here.
    ([], {**{name: "http://127.0.0.1:9/simple" for name in
             ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL")},
          "UV_HTTP_RETRIES": "0"},
     "package index http://127.0.0.1:9/simple unreachable (connection "
     "refused)"),
    # Another member: options that let pytest run but report nothing.
    (["--co"], {}, "no test ran"),
])
def test_a_failed_attempt_keeps_the_measured_row_beside_it(
        tmp_path, data_dir_module, posargs, environ, words, request):
    results, earlier = seeded_results(tmp_path, data_dir_module)
    before = json.loads(earlier.read_text())
    if environ:  # environments of its own: a warm one needs no index
        where = ["--envdir", str(tmp_path / "envs")]
    else:  # the project's, as matrix_run built them
        request.getfixturevalue("matrix_envs")
        where = []
    done = nox(results, *where, "-s", "matrix",
               "--", *posargs, MATRIX_PYTHONS=PYTHON, MATRIX_SPECS=BUGGY,
               MATRIX_SIM="1", **environ)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "Traceback" not in output
    assert words in output and "is kept, with the attempt beside it" in output
    after = json.loads(earlier.read_text())
    assert {k: v for k, v in after.items() if k != "attempts"} == before
    assert words in after["attempts"][-1]["why"]
    assert "last attempt failed" in (results / "failure_rates.md").read_text()
