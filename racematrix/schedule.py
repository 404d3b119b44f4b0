"""The order a matrix run hands its sessions out in: the longest expected
first, so that under ``-j`` no long session starts last. Expected: the
environment's time in this run's tables, else in the committed ones, else
its suite's median; a suite never recorded goes first."""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from statistics import median
from typing import TypeVar

from .envspec import EnvSpec

Item = TypeVar("Item")


def last_seconds(results_dir: str | Path) -> dict[str, float]:
    """Each measured environment's time in the folder's last tables (one
    file: every -j worker imports the noxfile)."""
    try:
        rows = json.loads((Path(results_dir) / "failure_rates.json")
                          .read_text())["rows"]
    except (OSError, ValueError, KeyError):
        return {}
    return {row["env"].split("@", 1)[0]: row["seconds"] for row in rows
            if row.get("runs") and row.get("seconds") is not None}


def expected_seconds(envs: Sequence[EnvSpec], *recorded: Mapping[str, float]
                     ) -> dict[str, float | None]:
    """``{env id: seconds}``: the first of ``recorded`` with it, else its
    suite's median, else None."""
    known = {env.env_id: next((seconds[env.env_id] for seconds in recorded
                               if env.env_id in seconds), None)
             for env in envs}
    by_suite: dict[str, list[float]] = {}
    for env in envs:
        if (seconds := known[env.env_id]) is not None:
            by_suite.setdefault(env.suite, []).append(seconds)
    return {env.env_id: known[env.env_id] if known[env.env_id] is not None
            else median(by_suite[env.suite]) if env.suite in by_suite
            else None for env in envs}


def longest_first(items: Iterable[Item], env_of: Callable[[Item], EnvSpec],
                  expected: Mapping[str, float | None]) -> list[Item]:
    """Unknown expected time first, then the longest; ties keep order."""
    def key(item: Item) -> tuple[int, float]:
        seconds = expected.get(env_of(item).env_id)
        return (0, 0) if seconds is None else (1, -seconds)
    return sorted(items, key=key)


def in_order(items: Sequence[Item], env_of: Callable[[Item], EnvSpec],
             results_dirs: Iterable[str | Path]) -> list[Item]:
    """``items`` by the tables of ``results_dirs`` (this run's first)."""
    folders = dict.fromkeys(os.path.realpath(f) for f in results_dirs)
    return longest_first(items, env_of, expected_seconds(
        [env_of(item) for item in items],
        *[last_seconds(folder) for folder in folders]))
