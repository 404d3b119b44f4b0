"""Finding Python interpreters that are installed but not on PATH.

pyenv installs every version under ``$(pyenv root)/versions`` but exposes only
the active ones through its shims; a shim for an inactive version exits with
"command not found". uv keeps its managed Pythons in its own folder. Putting
the real ``bin`` folders ahead of the shims on PATH lets nox and uv find each
interpreter without downloading one.
"""
import os
import re
import shutil
import subprocess
from pathlib import Path


def pyenv_root(environ=os.environ):
    return Path(environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def versioned_bin_dirs(root, pattern):
    """``bin`` folders of the interpreters under ``root`` whose folder name
    matches ``pattern`` (three version groups), newest version first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for entry in root.iterdir():
        match = re.fullmatch(pattern, entry.name)
        if match and (entry / "bin").is_dir():
            found.append((tuple(map(int, match.groups())), entry / "bin"))
    return [str(path) for _, path in sorted(found, reverse=True)]


def pyenv_bin_dirs(environ=os.environ):
    """``bin`` folders of pyenv's CPython installs, newest version first."""
    return versioned_bin_dirs(pyenv_root(environ) / "versions",
                              r"(\d+)\.(\d+)\.(\d+)")


def uv_bin_dirs(timeout=5):
    """``bin`` folders of the CPython builds uv manages, newest first. Reads
    uv's Python folder (``uv python dir``) rather than ``uv python list``,
    which also probes every interpreter on PATH and takes seconds."""
    uv = shutil.which("uv")
    if uv is None:
        return []
    try:
        folder = subprocess.run([uv, "python", "dir"], capture_output=True,
                                text=True, timeout=timeout, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    return versioned_bin_dirs(folder.stdout.strip(),
                              r"cpython-(\d+)\.(\d+)\.(\d+)-.*")


def expose_interpreters(environ=os.environ):
    """Add the interpreters of pyenv and uv to ``environ["PATH"]``: just
    ahead of pyenv's shims when those are on PATH (a shim would shadow them),
    else at the end. Whatever PATH found before stays first. Returns the
    folders added."""
    path = [d for d in environ.get("PATH", "").split(os.pathsep) if d]
    extra = [d for d in pyenv_bin_dirs(environ) + uv_bin_dirs()
             if d not in path]
    if extra:
        shims_dir = pyenv_root(environ) / "shims"
        shims = next((i for i, d in enumerate(path)
                      if Path(d) == shims_dir), len(path))
        environ["PATH"] = os.pathsep.join(path[:shims] + extra + path[shims:])
    return extra


def find_interpreter(python, timeout=30):
    """The path of an installed Python ``X.Y`` as uv finds it (PATH, uv's
    own folder; pyenv's once :func:`expose_interpreters` has run), without
    downloading one; None when there is none or uv is missing."""
    uv = shutil.which("uv")
    if uv is None:
        return None
    try:
        found = subprocess.run([uv, "python", "find", python],
                               capture_output=True, text=True, timeout=timeout,
                               env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})
    except (OSError, subprocess.SubprocessError):
        return None
    if found.returncode != 0:
        return None
    return found.stdout.strip() or None


def missing_interpreters(pythons):
    """One sentence naming the Pythons in ``pythons`` that
    :func:`find_interpreter` cannot find, and what to do; None if none is
    missing."""
    missing = [python for python in pythons if find_interpreter(python) is None]
    if not missing:
        return None
    return (f"no Python {', '.join(missing)} here (looked on PATH, in pyenv "
            f"and in uv's folder); install it, e.g. `pyenv install "
            f"{missing[0]}`")
