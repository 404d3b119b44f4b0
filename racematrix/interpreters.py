"""Finding Python interpreters that are installed but not on PATH.

pyenv installs every version under ``$(pyenv root)/versions`` but exposes only
the active ones through its shims; a shim for an inactive version exits with
"command not found". uv keeps its managed Pythons in its own folder. Putting
the real ``bin`` folders ahead of the shims on PATH lets nox and uv find each
interpreter without downloading one.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def pyenv_root(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def versioned_bin_dirs(root: str | Path, pattern: str) -> list[str]:
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


def pyenv_bin_dirs(environ: Mapping[str, str] = os.environ) -> list[str]:
    """``bin`` folders of pyenv's CPython installs, newest version first."""
    return versioned_bin_dirs(pyenv_root(environ) / "versions",
                              r"(\d+)\.(\d+)\.(\d+)")


def uv_bin_dirs(timeout: float = 5) -> list[str]:
    """``bin`` folders of the CPython builds uv manages, newest first. Reads
    uv's Python folder (``uv python dir``) rather than ``uv python list``,
    which also probes every interpreter on PATH and takes seconds."""
    folder = uv_python_folder(os.environ.get("UV_PYTHON_INSTALL_DIR"),
                              timeout)
    if folder is None:
        return []
    return versioned_bin_dirs(folder, r"cpython-(\d+)\.(\d+)\.(\d+)-.*")


def uv_python_folder(install_dir: str | None, timeout: float = 5
                     ) -> str | None:
    """Where uv keeps the Pythons it manages: ``install_dir``
    (``UV_PYTHON_INSTALL_DIR``) where set, else asked of uv (0.2 s), or
    None without uv. :func:`expose_interpreters` sets the variable, so that
    nox's ``-j`` workers, its children, need not ask again."""
    if install_dir:
        return install_dir
    uv = shutil.which("uv")
    if uv is None:
        return None
    try:
        folder = subprocess.run([uv, "python", "dir"], capture_output=True,
                                text=True, timeout=timeout, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return folder.stdout.strip()


def expose_interpreters(environ: MutableMapping[str, str] = os.environ
                        ) -> list[str]:
    """Add the interpreters of pyenv and uv to ``environ["PATH"]``: just
    ahead of pyenv's shims when those are on PATH (a shim would shadow them),
    else at the end. Whatever PATH found before stays first. Returns the
    folders added."""
    path = [d for d in environ.get("PATH", "").split(os.pathsep) if d]
    folder = uv_python_folder(environ.get("UV_PYTHON_INSTALL_DIR"))
    if folder:
        environ["UV_PYTHON_INSTALL_DIR"] = folder
    extra = [d for d in pyenv_bin_dirs(environ) + uv_bin_dirs()
             if d not in path]
    if extra:
        shims_dir = pyenv_root(environ) / "shims"
        shims = next((i for i, d in enumerate(path)
                      if Path(d) == shims_dir), len(path))
        environ["PATH"] = os.pathsep.join(path[:shims] + extra + path[shims:])
    return extra


def find_interpreter(python: str, timeout: float = 30) -> str | None:
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


def missing_interpreters(pythons: list[str], download: str | None = None
                         ) -> str | None:
    """One line naming the Pythons in ``pythons`` that are neither
    installed nor could be fetched (see :func:`provision`), and what to do;
    None when all are there. ``download`` defaults to nox's own setting
    (``NOX_DOWNLOAD_PYTHON``, else "auto")."""
    missing = provision(
        pythons, download or os.environ.get("NOX_DOWNLOAD_PYTHON", "auto"))
    return "; ".join(missing.values()) or None


def install_hint(python: str) -> str:
    return (f"install it with `uv python install {python}` where downloads "
            f"work, or `pyenv install {python}`; then run again")


def download_interpreter(python: str, timeout: float = 600,
                         run: Callable[..., Any] = subprocess.run
                         ) -> tuple[str | None, str | None]:
    """Fetch Python ``X.Y`` as a uv-managed interpreter (found again next
    time through uv's folder). Returns (path, None) on success, else
    (None, one line saying why and how to install it). Without retries:
    offline, uv then fails in a tenth of a second (with its default
    retries, about 8 s)."""
    uv = shutil.which("uv")
    if uv is None:
        return None, f"no Python {python} here and uv is missing to fetch it; " \
                     f"{install_hint(python)}"
    started = time.monotonic()
    try:
        done = run([uv, "python", "install", python], capture_output=True,
                   text=True, timeout=timeout,
                   env={**os.environ, "UV_PYTHON_DOWNLOADS": "automatic",
                        "UV_HTTP_RETRIES": "0", "UV_PYTHON_INSTALL_BIN": "0"})
    except (OSError, subprocess.SubprocessError) as error:
        return None, (f"no Python {python} here and uv could not fetch it "
                      f"({error}); {install_hint(python)}")
    seconds = time.monotonic() - started
    if done.returncode != 0:
        cause = download_failure_cause(done.stdout + done.stderr)
        logger.info("Python %s: download failed after %.1f s (%s)", python,
                    seconds, cause)
        return None, (f"no Python {python} here and uv could not download it "
                      f"({cause}); {install_hint(python)}")
    found = find_interpreter(python)
    logger.info("Python %s: downloaded by uv in %.1f s -> %s", python,
                seconds, found)
    return found, None


def download_failure_cause(output: str) -> str:
    """The innermost cause in uv's error output, in one line."""
    causes = [line.split("cause:", 1)[1].strip() for line in output.splitlines()
              if "cause:" in line]
    if causes:
        return causes[-1]
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def provision(pythons: list[str], download: str) -> dict[str, str]:
    """Make each Python of ``pythons`` available: found where it is
    installed (PATH, pyenv, uv's folder), else downloaded by uv unless
    ``download`` is "never". Returns {python: reason} for those still
    missing, each reason one line that says how to install it."""
    if not pythons:
        return {}
    expose_interpreters()
    missing = {}
    for python in pythons:
        if find_interpreter(python):
            continue
        if download == "never":
            missing[python] = (f"no Python {python} here (downloads are off: "
                               f"--download-python never); "
                               f"{install_hint(python)}")
            continue
        found, reason = download_interpreter(python)
        if not found:
            missing[python] = reason or f"no Python {python} here"
    return missing
