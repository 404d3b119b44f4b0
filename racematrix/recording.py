"""Recording what the sessions measured into the results folder: one raw
file per environment, written whole under the folder's lock, and a marker
saying the tables no longer match the raw files. The session driver
rewrites the tables and the report once, after the environments."""
import json
import os
from contextlib import contextmanager
from pathlib import Path

from .fileio import results_lock, write_json_atomic
from .provenance import machine_info
from .rawresult import make_raw, validate_raw

# Present while the tables and the report lag behind the raw files.
STALE = ".tables-stale"


@contextmanager
def running_marker(results_dir, env_id):
    """Mark this session as running, so each row can say how many
    matrix sessions ran at once (load changes a race's rate)."""
    folder = Path(results_dir) / ".running"
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"{env_id}.{os.getpid()}"
    marker.write_text(str(os.getpid()))
    try:
        yield lambda: count_running(folder)
    finally:
        marker.unlink(missing_ok=True)


def count_running(folder):
    alive = 0
    for marker in Path(folder).iterdir():
        pid = marker.suffix.lstrip(".")
        try:
            os.kill(int(pid), 0)
        except (ValueError, ProcessLookupError):
            marker.unlink(missing_ok=True)
            continue
        except PermissionError:
            pass
        alive += 1
    return alive


def record(raw, results_dir):
    """Write one raw file, after checking it against the schema every
    reader holds it to, and mark the tables stale."""
    results_dir = Path(results_dir)
    problem = validate_raw(raw)
    if problem:  # ours to fix: the writer must hold to the schema
        raise RuntimeError(f"raw result of {raw['env']} breaks "
                           f"schemas/raw.schema.json: {problem}")
    with results_lock(results_dir):
        write_json_atomic(results_dir / "raw" / f"{raw['env']}.json", raw)
        (results_dir / STALE).touch()


def tables_stale(results_dir):
    return (Path(results_dir) / STALE).exists()


def mark_tables_fresh(results_dir):
    (Path(results_dir) / STALE).unlink(missing_ok=True)


def last_seconds(results_dir):
    """How long each environment's last recorded run took, by env id (a
    skipped or unreadable row: none)."""
    found = {}
    for path in (Path(results_dir) / "raw").glob("*.json"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record.get("verdict") != "skipped" and \
                isinstance(record.get("seconds"), (int, float)):
            found[record.get("env", path.stem)] = record["seconds"]
    return found


def record_skips(envs, reason_for, results_dir, command="nox -s matrix"):
    """A `skipped` row, with the reason ``reason_for(spec)`` gives (None:
    no skip), for each environment that has no row from this machine yet;
    an earlier result is never replaced by a skip. Returns how many rows
    were written."""
    written = 0
    results_dir = Path(results_dir)
    with results_lock(results_dir):
        for spec in envs:
            reason = reason_for(spec)
            path = results_dir / "raw" / f"{spec.env_id}.json"
            if reason is None or path.exists():
                continue
            write_json_atomic(path, make_raw(
                spec, packages={}, python="", python_build="",
                skip_reason=reason, machine=machine_info(), command=command))
            written += 1
        if written:
            (results_dir / STALE).touch()
    return written


def record_missing_interpreters(envs, missing, results_dir,
                                command="nox -s matrix"):
    """A `skipped` row, whose reason says how to install the Python, for
    each environment of a missing Python (``missing``: Python -> reason)."""
    return record_skips(envs, lambda spec: missing.get(spec.python),
                        results_dir, command)
