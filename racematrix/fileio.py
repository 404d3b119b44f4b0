"""The results folder's files: written whole (a reader never sees half a
file), one writer at a time (a ``filelock.FileLock``), the markers of the
sessions running now, and what a killed run left behind."""
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

# Present while the tables and the report lag behind the raw files.
STALE = ".tables-stale"
# Scratch folders of a run carry its process id, so that the next run can
# tell one left by a killed run (kill -9 skips every cleanup) from one in use.
SCRATCH_PREFIX = "racematrix-scratch-"


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` in one step (a temporary file beside it, then
    ``os.replace``), keeping its mode; a new file gets the umask's."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}")
    try:
        with open(temporary, "x", encoding="utf-8", newline="") as stream:
            stream.write(text)
        if path.exists():
            shutil.copymode(path, temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def results_lock(results_dir: str | Path) -> FileLock:
    """Serialise writers of one results folder (parallel sessions), used as
    ``with``."""
    Path(results_dir).mkdir(parents=True, exist_ok=True)
    return FileLock(Path(results_dir) / ".lock")


def folder_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot hold results, in one line, or None where it can:
    checked before any work, so that a run never ends in a traceback after
    its measurements."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"results folder {path} is a file, not a folder"
    except NotADirectoryError:
        return f"results folder {path} cannot be made: a part of its path " \
               f"is a file"
    except OSError as error:
        return f"results folder {path} cannot be made ({error.strerror})"
    try:
        tempfile.TemporaryFile(dir=path).close()
    except OSError as error:
        return f"results folder {path} cannot be written ({error.strerror})"
    return None


def scratch_folder() -> tempfile.TemporaryDirectory[str]:
    """A ``TemporaryDirectory`` named for this process."""
    return tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")


def pid_alive(pid: str | int) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


@contextmanager
def running_marker(results_dir: str | Path, env_id: str
                   ) -> Iterator[Callable[[], int]]:
    """Mark this session as running; yields a count of the matrix sessions
    running now, for each row to say under what load it ran (load changes
    a race's rate)."""
    folder = Path(results_dir) / ".running"
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"{env_id}.{os.getpid()}"
    marker.write_text(str(os.getpid()))
    try:
        yield lambda: count_running(folder)
    finally:
        marker.unlink(missing_ok=True)


def count_running(folder: Path) -> int:
    """The markers of live processes in ``folder``; the others go."""
    alive = 0
    for marker in folder.iterdir():
        if pid_alive(marker.suffix.lstrip(".")):
            alive += 1
        else:
            marker.unlink(missing_ok=True)
    return alive


def clear_stale(results_dir: str | Path) -> tuple[int, int]:
    """What a killed run (kill -9 skips every cleanup) left behind: running
    markers of processes that are gone, and their scratch folders. Called
    before a run starts; returns how many of each were cleared."""
    folder = Path(results_dir) / ".running"
    markers = 0
    if folder.is_dir():
        markers = sum(1 for _ in folder.iterdir()) - count_running(folder)
    scratch = 0
    for found in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        pid = found.name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if found.is_dir() and not pid_alive(pid):
            shutil.rmtree(found, ignore_errors=True)
            scratch += 1
    return markers, scratch


def tables_stale(results_dir: str | Path) -> bool:
    return (Path(results_dir) / STALE).exists()


def mark_tables_fresh(results_dir: str | Path) -> None:
    (Path(results_dir) / STALE).unlink(missing_ok=True)
