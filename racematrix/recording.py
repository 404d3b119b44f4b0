"""Recording what the sessions measured into the results folder: one raw
file per environment, written whole under the folder's lock, and a marker
saying the tables no longer match the raw files. The session driver
rewrites the tables and the report once, after the environments."""
import json
import os
from contextlib import contextmanager
from pathlib import Path

from .fileio import (clear_dead_scratch, pid_alive, results_lock,
                     write_json_atomic)
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
        if not pid_alive(marker.suffix.lstrip(".")):
            marker.unlink(missing_ok=True)
            continue
        alive += 1
    return alive


def clear_stale(results_dir):
    """What a killed run (kill -9 skips every cleanup) left behind: running
    markers of processes that are gone, and their scratch folders. Called
    before a run starts; returns how many of each were cleared."""
    folder = Path(results_dir) / ".running"
    markers = 0
    if folder.is_dir():
        before = sum(1 for _ in folder.iterdir())
        markers = before - count_running(folder)
    return markers, clear_dead_scratch()


# Failed attempts kept beside a measured row: enough to see a pattern.
MAX_ATTEMPTS = 20


def has_results(raw):
    return bool(raw) and raw.get("runs", 0) > 0


def failed_attempt(raw, detail=None):
    """The record of an attempt that measured nothing: when, which
    command, why in one line, and the full text behind it."""
    return {"when": raw["finished"], "command": raw["command"],
            "verdict": raw["verdict"], "why": raw["reason"],
            "detail": detail or raw["reason"]}


def read_kept(path):
    """The raw record at ``path`` if it is one a reader would use."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if isinstance(data, dict) and not validate_raw(data) else None


def record(raw, results_dir, detail=None):
    """Write one raw file, after checking it against the schema every
    reader holds it to, and mark the tables stale. A row with results is
    replaced only by a row with results: an attempt that measured nothing
    (an index out of reach, pytest killed, no report) is added to the kept
    row's ``attempts`` instead, with ``detail``, the full text behind its
    reason. Returns the record now in the file."""
    results_dir = Path(results_dir)
    problem = validate_raw(raw)
    if problem:  # ours to fix: the writer must hold to the schema
        raise RuntimeError(f"raw result of {raw['env']} breaks "
                           f"schemas/raw.schema.json: {problem}")
    path = results_dir / "raw" / f"{raw['env']}.json"
    with results_lock(results_dir):
        kept = read_kept(path)
        if not has_results(raw) and (has_results(kept)
                                     or raw["verdict"] == "error"):
            earlier = (kept or {}).get("attempts", [])
            attempts = [*earlier, failed_attempt(raw, detail)][-MAX_ATTEMPTS:]
            raw = dict(kept, attempts=attempts) if has_results(kept) else \
                dict(raw, attempts=attempts)
        write_json_atomic(path, raw)
        (results_dir / STALE).touch()
    return raw


def kept_measured_row(written, attempted):
    """Whether ``record`` kept an earlier measured row over ``attempted``."""
    return has_results(written) and not has_results(attempted)


def tables_stale(results_dir):
    return (Path(results_dir) / STALE).exists()


def mark_tables_fresh(results_dir):
    (Path(results_dir) / STALE).unlink(missing_ok=True)


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
