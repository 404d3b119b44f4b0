import pytest

from racematrix import errors, install, matrix_session, measurement, procs
from racematrix.envspec import EnvSpec


def install_outputs(data_dir):
    return (data_dir / "uv-install-failures.txt").read_text().split("=====\n")


def test_no_wheel_is_a_skip_with_the_reason(data_dir):
    no_wheel = install_outputs(data_dir)[0]
    kind, reason = install.classify_install_failure(
        no_wheel, EnvSpec("3.12", ("numba==0.56.4",), True))
    assert (kind, reason) == ("skip", "no wheel of numba==0.56.4 for Python 3.12")


def test_unknown_package_is_an_error_naming_it(data_dir):
    kind, reason = install.classify_install_failure(
        install_outputs(data_dir)[2], EnvSpec("3.12", ("nosuchpkgxyz",), True))
    assert kind == "bad-input"
    assert "nosuchpkgxyz is not on the package index" in reason


def test_conflicting_pins_are_an_error_with_uvs_cause(data_dir):
    kind, reason = install.classify_install_failure(
        install_outputs(data_dir)[3],
        EnvSpec("3.12", ("numba-cuda==0.0.17", "numba==0.57.1"), True))
    assert kind == "error"
    assert "numba-cuda==0.0.17 depends on numba>=0.59.1" in reason
    assert "\n" not in reason


def test_first_error_line_finds_the_real_exception(data_dir):
    lines = (data_dir / "pytest-output-import-error.txt").read_text().splitlines()
    assert measurement.first_error_line(lines) == (
        "AttributeError: module 'numba.cuda.types' has no attribute 'NPDatetime'")


@pytest.mark.parametrize("posargs, count, rest", [
    ([], 1, []), (["--count", "200"], 200, []),
    (["-x", "--count=5", "-k", "trigger"], 5, ["-x", "-k", "trigger"]),
])
def test_split_count(posargs, count, rest):
    assert matrix_session.split_count(posargs, 1) == (count, rest)


@pytest.mark.parametrize("posargs", [["--count", "x"], ["--count=0"]])
def test_split_count_rejects_bad_counts(posargs):
    with pytest.raises(errors.BadInput, match="--count needs a positive"):
        matrix_session.split_count(posargs, 1)


def test_session_command_names_the_overrides():
    command = matrix_session.session_command(
        "env(py3.11-numba-0.60.0-sim1)", ["--count", "5"],
        {"MATRIX_SPECS": "numba==0.60.0", "PATH": "/bin"})
    assert command == ("MATRIX_SPECS=numba==0.60.0 nox -s "
                       "'env(py3.11-numba-0.60.0-sim1)' -- --count 5")
    assert matrix_session.session_command("bisect", ["--with", "numba==0.61.2 x<13"],
                                  {}) == "nox -s bisect -- --with 'numba==0.61.2 x<13'"


def test_environment_of_runs_caches_bytecode(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    environ = procs.venv_environ(tmp_path / "bin", {"NUMBA_ENABLE_CUDASIM": "1"})
    assert "PYTHONDONTWRITEBYTECODE" not in environ
    assert environ["PATH"].startswith(str(tmp_path / "bin"))
    assert environ["VIRTUAL_ENV"] == str(tmp_path)
    assert environ["NUMBA_ENABLE_CUDASIM"] == "1"


@pytest.mark.parametrize("name, code, words", [
    ("pytest-usage-preset.txt", 4,
     ["argument --preset: invalid choice: 'nonsense'", "pytest rejected"]),
    ("pytest-usage-k.txt", 5, ["22 deselected", "check -k/-m"]),
])
def test_usage_errors_are_one_line_in_pytests_words(data_dir, name, code,
                                                    words):
    """Real output of the MWE's pytest given bad arguments."""
    tail = (data_dir / name).read_text().splitlines()
    line = measurement.usage_error(measurement.MweRun(code, tail, 0.1, None, None))
    assert "\n" not in line
    for word in words:
        assert word in line


def test_a_run_that_ran_is_no_usage_error(data_dir):
    tail = (data_dir / "pytest-output-import-error.txt").read_text().splitlines()
    assert measurement.usage_error(measurement.MweRun(1, tail, 1.0, None, None)) is None


def test_count_without_a_value_is_one_line():
    with pytest.raises(errors.BadInput, match="--count needs a positive"):
        matrix_session.split_count(["-x", "--count"], 1)


class Environment:
    """A stand-in for a session: runs commands with this Python."""
    def __init__(self):
        import sys
        from pathlib import Path
        self.bin = str(Path(sys.executable).parent)

    def log(self, line):
        pass


def alive(pid):
    import os
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone for us
        return stat.read().split(") ")[1][0] != "Z"


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"),
                    reason="process groups and /proc: Linux")
def test_interrupt_ends_the_child_and_its_threads(tmp_path):
    """A child whose non-daemon thread would outlive a KeyboardInterrupt in
    its main thread (as simulated CUDA threads do) is ended, group and all,
    within seconds of an interrupt in the parent."""
    import signal
    import sys
    import time
    pid_file = tmp_path / "pid"
    child = ("import os, threading, time\n"
             f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
             "threading.Thread(target=time.sleep, args=(60,)).start()\n"
             "print('started', flush=True)\n"
             "time.sleep(60)\n")

    def interrupt(signum, frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 1.5)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            procs.run_streaming(Environment(), [sys.executable, "-c", child],
                                 {}, echo=False)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    assert time.monotonic() - started < 8


def test_a_command_past_its_timeout_is_ended_and_says_so():
    """The timeout ends the command and raises, with what it printed; a
    command done in time returns its exit code."""
    import subprocess
    import sys
    import time
    child = "print('started', flush=True); import time; time.sleep(60)"
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as stopped:
        procs.run_streaming(Environment(), [sys.executable, "-c", child], {},
                            echo=False, timeout=0.5)
    assert "started" in stopped.value.output
    assert time.monotonic() - started < 8
    assert procs.run_streaming(Environment(), [sys.executable, "-c", "pass"],
                               {}, echo=False, timeout=30) == (0, [])
