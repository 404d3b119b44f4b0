import os
import shutil
import subprocess

import pytest

from racematrix import interpreters


def fake_pyenv(root, versions):
    for version in versions:
        bin_dir = root / "versions" / version / "bin"
        bin_dir.mkdir(parents=True)
    (root / "shims").mkdir()


def test_pyenv_versions_newest_first(tmp_path):
    fake_pyenv(tmp_path, ["3.10.13", "3.12.1", "3.11.7", "miniconda3-latest"])
    dirs = interpreters.pyenv_bin_dirs({"PYENV_ROOT": str(tmp_path)})
    assert [os.path.basename(os.path.dirname(d)) for d in dirs] == [
        "3.12.1", "3.11.7", "3.10.13"]


def test_exposed_just_before_the_shims(tmp_path, monkeypatch):
    fake_pyenv(tmp_path, ["3.10.13"])
    monkeypatch.setattr(interpreters, "uv_bin_dirs", lambda: [])
    shims = str(tmp_path / "shims")
    environ = {"PYENV_ROOT": str(tmp_path),
               "PATH": os.pathsep.join(["/first", shims, "/usr/bin"])}
    added = interpreters.expose_interpreters(environ)
    assert environ["PATH"].split(os.pathsep) == [
        "/first", *added, shims, "/usr/bin"]
    # Idempotent: a second call adds nothing.
    assert interpreters.expose_interpreters(environ) == []


def test_missing_pyenv_adds_nothing(tmp_path):
    assert interpreters.pyenv_bin_dirs({"PYENV_ROOT": str(tmp_path / "no")}) == []


@pytest.mark.skipif(not interpreters.pyenv_bin_dirs(),
                    reason="pyenv has no Pythons on this machine")
def test_real_pyenv_interpreters_become_runnable():
    environ = dict(os.environ)
    interpreters.expose_interpreters(environ)
    for directory in interpreters.pyenv_bin_dirs():
        version = os.path.basename(os.path.dirname(directory))
        minor = ".".join(version.split(".")[:2])
        found = shutil.which(f"python{minor}", path=environ["PATH"])
        assert found, f"python{minor} not found"
        ran = subprocess.run([found, "-c", "import sys; print(sys.version)"],
                             capture_output=True, text=True, env=environ)
        assert ran.returncode == 0 and ran.stdout.startswith(minor), (found, ran.stderr)


def test_uv_managed_pythons_are_read_from_uvs_folder(tmp_path, monkeypatch):
    for name in ("cpython-3.12.7-linux-x86_64-gnu",
                 "cpython-3.10.15-linux-x86_64-gnu", "pypy-3.10.14-linux"):
        (tmp_path / name / "bin").mkdir(parents=True)
    monkeypatch.setenv("UV_PYTHON_INSTALL_DIR", str(tmp_path))
    if shutil.which("uv") is None:
        pytest.skip("uv is not installed")
    dirs = interpreters.uv_bin_dirs()
    assert [os.path.basename(os.path.dirname(d)) for d in dirs] == [
        "cpython-3.12.7-linux-x86_64-gnu", "cpython-3.10.15-linux-x86_64-gnu"]


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not installed")
def test_find_interpreter_finds_this_python_and_not_a_missing_one():
    import sys
    this = f"{sys.version_info.major}.{sys.version_info.minor}"
    found = interpreters.find_interpreter(this)
    assert found and os.path.exists(found)
    assert interpreters.find_interpreter("3.99") is None
