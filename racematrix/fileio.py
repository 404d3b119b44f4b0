"""The results folder: atomic writes, its lock; what a killed run left."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
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


def clear_stale() -> int:
    """Remove the scratch folders of processes that are gone; how many."""
    cleared = 0
    for found in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        pid = found.name.removeprefix(SCRATCH_PREFIX).split("-")[0]
        try:
            os.kill(int(pid), 0)
        except PermissionError:  # alive, someone else's
            continue
        except (ValueError, OSError, OverflowError):
            shutil.rmtree(found, ignore_errors=True)
            cleared += 1
    return cleared
