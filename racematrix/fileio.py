"""The results folder: atomic writes, its lock, running markers, leftovers."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

# Scratch folders of a run carry its process id, so that the next run can
# tell one left by a killed run (kill -9 skips every cleanup) from one in use.
SCRATCH_PREFIX = "racematrix-scratch-"


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` in one step, keeping its mode (new: the umask's)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}")
    try:
        temporary.write_text(text, encoding="utf-8", newline="")
        if path.exists():
            shutil.copymode(path, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def results_lock(results_dir: str | Path) -> FileLock:
    Path(results_dir).mkdir(parents=True, exist_ok=True)
    return FileLock(Path(results_dir) / ".lock")


def folder_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot hold results, in one line, or None."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()
    except FileExistsError:
        return f"results folder {path} is a file, not a folder"
    except NotADirectoryError:
        return f"results folder {path} cannot be made: a part of its path " \
               f"is a file"
    except OSError as error:
        done = "written" if path.is_dir() else "made"
        return f"results folder {path} cannot be {done} ({error.strerror})"
    return None


def scratch_folder() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")


def pid_alive(pid: str | int) -> bool:
    try:
        os.kill(int(pid), 0)
    except PermissionError:  # alive, someone else's
        pass
    except (ValueError, OSError, OverflowError):
        return False
    return True


@contextmanager
def running_marker(results_dir: str | Path, env_id: str
                   ) -> Iterator[Callable[[], int]]:
    """Mark this session running; yields a count of those running now."""
    folder = Path(results_dir) / ".running"
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"{env_id}.{os.getpid()}"
    marker.write_text(str(os.getpid()))
    try:
        yield lambda: count_running(folder)
    finally:
        marker.unlink(missing_ok=True)


def count_running(folder: Path) -> int:
    """The markers of live processes (the others are removed)."""
    for marker in folder.iterdir():
        if not pid_alive(marker.suffix.lstrip(".")):
            marker.unlink(missing_ok=True)
    return len(list(folder.iterdir()))


def clear_stale(results_dir: str | Path) -> tuple[int, int]:
    """Remove dead processes' markers and scratch folders; both counts."""
    folder = Path(results_dir) / ".running"
    markers = len(list(folder.iterdir())) - count_running(folder) \
        if folder.is_dir() else 0
    scratch = [found for found in Path(tempfile.gettempdir()).glob(
        f"{SCRATCH_PREFIX}*") if found.is_dir() and not pid_alive(
            found.name.removeprefix(SCRATCH_PREFIX).split("-", 1)[0])]
    for found in scratch:
        shutil.rmtree(found, ignore_errors=True)
    return markers, len(scratch)

