"""Pythons: pyenv's put on PATH, those missing fetched by uv."""
from __future__ import annotations

import os
import re
import subprocess
from collections.abc import MutableMapping
from pathlib import Path

from .index import network_cause


def uv(*args: str, timeout: float = 30, **environ: str
       ) -> subprocess.CompletedProcess[str] | None:
    """uv's answer, or None where uv is missing or did not answer."""
    try:
        return subprocess.run(["uv", *args], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, **environ})
    except (OSError, subprocess.SubprocessError):
        return None


def expose_interpreters(environ: MutableMapping[str, str] = os.environ
                        ) -> list[str]:
    """Put pyenv's Pythons on PATH ahead of its shims (an inactive version's
    shim fails; nox and uv find uv's own); returns the folders added."""
    pyenv = Path(environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    path = [d for d in environ.get("PATH", "").split(os.pathsep) if d]
    found = sorted((tuple(map(int, match.groups())), str(entry / "bin"))
                   for entry in (pyenv / "versions").glob("*")
                   if (match := re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", entry.name))
                   and (entry / "bin").is_dir())
    extra = [d for _, d in reversed(found) if d not in path]
    if extra:
        shims = next((i for i, d in enumerate(path)
                      if Path(d) == pyenv / "shims"), len(path))
        environ["PATH"] = os.pathsep.join(path[:shims] + extra + path[shims:])
    return extra


def find_interpreter(python: str) -> str | None:
    """The path of an installed Python ``X.Y`` as uv finds it, no download."""
    found = uv("python", "find", python, UV_PYTHON_DOWNLOADS="never")
    return found.stdout.strip() or None if found and found.returncode == 0 \
        else None


def install_hint(python: str) -> str:
    return (f"install it with `uv python install {python}` where downloads "
            f"work, or `pyenv install {python}`; then run again")


def missing_interpreters(pythons: list[str]) -> str | None:
    """One line naming the Pythons neither here nor fetched by uv (unless
    nox's NOX_DOWNLOAD_PYTHON is never), and what to do; None: all here."""
    missing = []
    for python in [p for p in pythons if not find_interpreter(p)]:
        if os.environ.get("NOX_DOWNLOAD_PYTHON") == "never":
            why = " (downloads are off: --download-python never)"
        # Without retries: offline, uv fails in 0.1 s, not 8 s.
        elif (done := uv("python", "install", python, timeout=600,
                         UV_PYTHON_DOWNLOADS="automatic", UV_HTTP_RETRIES="0",
                         UV_PYTHON_INSTALL_BIN="0")) and done.returncode == 0:
            continue
        else:
            why = " and uv could not download it ({})".format(
                network_cause(done.stdout + done.stderr) if done
                else "uv is missing or did not answer")
        missing.append(f"no Python {python} here{why}; {install_hint(python)}")
    return "; ".join(missing) or None
