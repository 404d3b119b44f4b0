"""The order a matrix run hands its sessions out in: the longest expected
first, so that under ``-j`` no long session starts last."""
from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from statistics import median

from .suites import Combination, env_of


def in_order(rows: Sequence[Combination], results_dirs: Iterable[str | Path]
             ) -> list[Combination]:
    """Expected: the row's time in the first folder's last tables that has
    it (one file read: every -j worker imports the noxfile), else its
    suite's median; a suite never recorded goes first. Ties keep order."""
    recorded: dict[str, float] = {}
    for folder in dict.fromkeys(map(os.path.realpath, results_dirs)):
        try:
            rows_there = json.loads((Path(folder) / "failure_rates.json")
                                    .read_text())["rows"]
        except (OSError, ValueError, KeyError):
            continue
        for row in rows_there:
            if row.get("runs") and row.get("seconds") is not None:
                recorded.setdefault(row["env"].split("@", 1)[0],
                                    row["seconds"])
    envs = [env_of(row) for row in rows]
    by_suite: dict[str, list[float]] = {}
    for env in envs:
        if env.env_id in recorded:
            by_suite.setdefault(env.suite, []).append(recorded[env.env_id])

    def key(index: int) -> tuple[int, float]:
        env = envs[index]
        seconds = recorded.get(env.env_id)
        if seconds is None and env.suite in by_suite:
            seconds = median(by_suite[env.suite])
        return (0, 0) if seconds is None else (1, -seconds)
    return [rows[index] for index in sorted(range(len(rows)), key=key)]
