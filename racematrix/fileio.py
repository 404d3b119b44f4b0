"""Files that readers never see half-written, and the lock that serialises
the writers of one results folder (parallel sessions)."""
import contextlib
import json
import os
import tempfile
from pathlib import Path


def write_json_atomic(path, data):
    """Write JSON so that a reader (or a kill mid-write) never sees half a
    file: write a temporary file beside it, then rename."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_text_atomic(path, text):
    """Replace ``path`` in one step. The new file gets the mode the old one
    had, or the usual mode for new files under the current umask (a
    temporary file alone would be 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o666 & ~current_umask()
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def current_umask():
    """The process's umask, read without changing it where Linux allows."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def results_lock(results_dir):
    """Serialise writers of one results folder (parallel sessions): a
    ``filelock.FileLock`` on ``<results>/.lock``, used as ``with``."""
    from filelock import FileLock
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(results_dir / ".lock")


def folder_problem(path):
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
        handle, probe = tempfile.mkstemp(dir=path, prefix=".write-check-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        return f"results folder {path} cannot be written ({error.strerror})"
    return None


# Scratch folders of a run carry its process id, so that the next run can
# tell one left by a killed run (kill -9 skips every cleanup) from one in use.
SCRATCH_PREFIX = "racematrix-scratch-"


def scratch_folder():
    """A ``TemporaryDirectory`` named for this process."""
    return tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")


def pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def clear_dead_scratch(parent=None):
    """Remove the scratch folders of processes that are gone; returns how
    many."""
    import shutil
    cleared = 0
    for folder in Path(parent or tempfile.gettempdir()).glob(
            f"{SCRATCH_PREFIX}*"):
        pid = folder.name[len(SCRATCH_PREFIX):].split("-", 1)[0]
        if folder.is_dir() and not pid_alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            cleared += 1
    return cleared
