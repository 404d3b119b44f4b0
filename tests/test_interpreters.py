import os
import shutil
import subprocess

import pytest
from conftest import pick_python

from racematrix import interpreters


def fake_pyenv(root, versions):
    for version in versions:
        bin_dir = root / "versions" / version / "bin"
        bin_dir.mkdir(parents=True)
    (root / "shims").mkdir()


def names(dirs):
    return [os.path.basename(os.path.dirname(d)) for d in dirs]


def test_exposed_newest_first_just_before_the_shims(tmp_path):
    fake_pyenv(tmp_path, ["3.10.13", "3.12.1", "3.11.7", "miniconda3-latest"])
    shims = str(tmp_path / "shims")
    environ = {"PYENV_ROOT": str(tmp_path),
               "PATH": os.pathsep.join(["/first", shims, "/usr/bin"])}
    added = interpreters.expose_interpreters(environ)
    assert names(added) == ["3.12.1", "3.11.7", "3.10.13"]
    assert environ["PATH"].split(os.pathsep) == [
        "/first", *added, shims, "/usr/bin"]
    # Idempotent: a second call adds nothing.
    assert interpreters.expose_interpreters(environ) == []


def test_missing_pyenv_adds_nothing(tmp_path):
    environ = {"PYENV_ROOT": str(tmp_path / "no"), "PATH": "/usr/bin"}
    assert interpreters.expose_interpreters(environ) == []
    assert environ["PATH"] == "/usr/bin"


PYENV = interpreters.expose_interpreters(
    {"PYENV_ROOT": os.environ.get("PYENV_ROOT", ""), "PATH": ""})


@pytest.mark.skipif(not PYENV, reason="pyenv has no Pythons on this machine")
def test_real_pyenv_interpreters_become_runnable():
    environ = dict(os.environ)
    interpreters.expose_interpreters(environ)
    for directory in PYENV:
        version = os.path.basename(os.path.dirname(directory))
        minor = ".".join(version.split(".")[:2])
        found = shutil.which(f"python{minor}", path=environ["PATH"])
        assert found, f"python{minor} not found"
        ran = subprocess.run([found, "-c", "import sys; print(sys.version)"],
                             capture_output=True, text=True, env=environ)
        assert ran.returncode == 0 and ran.stdout.startswith(minor), (found, ran.stderr)


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not installed")
def test_find_interpreter_finds_this_python_and_not_a_missing_one():
    import sys
    this = f"{sys.version_info.major}.{sys.version_info.minor}"
    found = interpreters.find_interpreter(this)
    assert found and os.path.exists(found)
    assert interpreters.find_interpreter("3.99") is None


def test_failed_download_names_uvs_cause(data_dir):
    output = (data_dir / "uv-python-install-offline.txt").read_text()
    assert interpreters.network_cause(output) == "host not found"


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not installed")
def test_a_real_failed_download_is_known_at_once(monkeypatch):
    """uv itself, asked for a Python it cannot fetch (no such build, or
    offline): one line, within seconds rather than uv's retries."""
    import time
    monkeypatch.delenv("NOX_DOWNLOAD_PYTHON", raising=False)
    started = time.monotonic()
    reason = interpreters.missing_interpreters(["3.99"])
    assert "uv could not download it" in reason and "\n" not in reason
    assert "uv python install 3.99" in reason
    assert time.monotonic() - started < 5


def test_never_means_no_download(monkeypatch):
    monkeypatch.setattr(interpreters, "find_interpreter", lambda python: None)
    monkeypatch.setattr(interpreters, "uv",
                        lambda *a, **k: pytest.fail("asked uv"))
    monkeypatch.setenv("NOX_DOWNLOAD_PYTHON", "never")
    missing = interpreters.missing_interpreters(["3.14", "3.13"])
    assert missing.count("--download-python never") == 2
    assert "\n" not in missing and "uv python install 3.13" in missing


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not installed")
def test_pick_python_finds_one_with_wheels_for_what_it_pins():
    """A real resolution against the index: the Python picked is installed
    and has a wheel of the pinned release."""
    import sys
    this = f"{sys.version_info.major}.{sys.version_info.minor}"
    python = pick_python([["packaging==24.0"]], prefer=this)
    assert python == this
    assert pick_python([["packaging==24.0"]],
                                    candidates=["3.99"]) is None
