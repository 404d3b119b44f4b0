"""The raw result: the typed record, its verdict decided once, the store."""
from __future__ import annotations

import enum
import json
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypedDict, cast

from .envspec import EnvSpec
from .fileio import results_lock, write_json_atomic
from .outcomes import RAN, Outcome
from .provenance import now_iso
from .validation import problem

SCHEMA = 1
# Failed attempts kept beside a measured row: enough to see a pattern.
MAX_ATTEMPTS = 20
# The record's count of each outcome (a pass is what the others leave).
COUNTED = {Outcome.TARGET: "failures", Outcome.OTHER: "other_errors",
           Outcome.HANG: "hangs", Outcome.SKIP: "skips"}


class Verdict(str, enum.Enum):
    """What one environment came to; the strings are the raw files'."""
    REPRODUCED = "reproduced"
    NOT_REPRODUCED = "not-reproduced"
    HUNG = "hung"
    ERROR = "error"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value


# schemas/raw.schema.json's fields, typed (it says which are required).
RawResult = TypedDict("RawResult", {
    "schema": int, "env": str, "suite": str, "spec": dict[str, Any],
    "target": str, "python": str, "python_build": str, "sim": bool,
    "packages": dict[str, str], "settings": dict[str, Any], "runs": int,
    "failures": int, "other_errors": int, "hangs": int, "skips": int,
    "verdict": Verdict, "reason": str, "seconds": float,
    "pytest_seconds": float, "load": list[float], "summary": dict[str, Any],
    "machine": dict[str, Any], "command": str, "started": str,
    "finished": str, "kinds": dict[str, dict[str, int]],
    "pytest_output": str, "resolution": dict[str, Any],
    "launch_seconds": dict[str, Any], "patch": dict[str, Any],
    "attempts": list[dict[str, str]]}, total=False)


class RawResultWarning(UserWarning):
    """A raw result file was left out of the tables."""


class NoUsableResults(ValueError):
    """No usable input: empty tables would replace good ones."""


def decide_verdict(counts: Mapping[str, int], env_error: str | None = None,
                   skip_reason: str | None = None) -> tuple[Verdict, str]:
    """The verdict and its reason from a row's or a probe's outcome counts."""
    target, other, hang = (counts[Outcome.TARGET], counts[Outcome.OTHER],
                           counts[Outcome.HANG])
    runs = sum(counts[outcome] for outcome in RAN)
    if skip_reason:
        return Verdict.SKIPPED, skip_reason
    if env_error:
        return Verdict.ERROR, env_error
    if target:
        return Verdict.REPRODUCED, (f"{target} of {runs} test runs failed "
                                    f"with the race's AttributeError")
    if hang and not other:
        return Verdict.HUNG, (f"no race failure; {hang} of {runs} test runs "
                              f"hung (past the timeout), none failed another "
                              f"way")
    if hang:
        return Verdict.ERROR, (f"no race failure, but {hang} of {runs} test "
                               f"runs hung and {other} failed another way")
    if other:
        return Verdict.ERROR, (f"{other} of {runs} test runs failed with "
                               f"another error")
    if runs == 0:
        return (Verdict.SKIPPED, "every test was skipped") if \
            counts[Outcome.SKIP] else (Verdict.ERROR, "no test ran")
    return Verdict.NOT_REPRODUCED, f"0 of {runs} test runs failed"


def make_raw(spec: EnvSpec, *, counts: Mapping[str, int] | None = None,
             env_error: str | None = None, skip_reason: str | None = None,
             seconds: float = 0.0, started: str | None = None,
             **fields: Any) -> RawResult:
    """One run's record, its verdict decided (empty ``fields`` left out)."""
    counts = counts or dict.fromkeys(Outcome, 0)
    verdict, reason = decide_verdict(counts, env_error, skip_reason)
    raw = dict(
        packages={}, python="", python_build="", settings={},
        pytest_seconds=0.0, summary={}, machine={}, command="",
        schema=SCHEMA, env=spec.env_id, suite=spec.suite, spec={
            "python": spec.python, "requirements": list(spec.requirements),
            "sim": spec.sim, **({"patch": spec.patch} if spec.patch else {})},
        target=spec.target, sim=spec.sim,
        runs=sum(counts[outcome] for outcome in RAN),
        **{key: counts[outcome] for outcome, key in COUNTED.items()},
        verdict=verdict, reason=reason, seconds=round(seconds, 2),
        started=started or now_iso(), finished=now_iso())
    raw.update((key, value) for key, value in fields.items() if value)
    return cast(RawResult, raw)


def validate_raw(data: Any) -> str | None:
    """The record's first problem in one line, or None."""
    wrong = problem(data, "raw", "record")
    if wrong or data["failures"] + data["other_errors"] + data["hangs"] \
            <= data["runs"]:
        return wrong
    return (f"failures ({data['failures']}), other errors and hangs exceed "
            f"runs ({data['runs']})")


def read_raw(path: Path) -> tuple[RawResult | None, str | None]:
    """The record in one file and None, or None and why it is not usable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        return None, f"not readable JSON ({error})"
    if wrong := validate_raw(data):
        return None, wrong
    return cast(RawResult, {**data, "verdict": Verdict(data["verdict"])}), None


def load_raw_dirs(dirs: Iterable[str | Path],
                  left_out: list[dict[str, str]] | None = None
                  ) -> list[tuple[Path, RawResult]]:
    """Every usable record under ``dirs``; the others warned of and listed."""
    records = []
    for source in map(Path, dirs):
        for path in sorted(source.rglob("*.json")) if source.is_dir() \
                else [source]:
            data, reason = read_raw(path)
            if data is not None:
                records.append((path, data))
                continue
            warnings.warn(f"left out {path}: {reason}", RawResultWarning,
                          stacklevel=2)
            if left_out is not None:
                left_out.append({"path": str(path), "reason": str(reason)})
    return records


def measured(raw: Mapping[str, Any] | None) -> bool:
    return bool(raw and raw["runs"] > 0)


def record(raw: RawResult, results_dir: str | Path,
           detail: str | None = None) -> RawResult:
    """Write one row under the lock; returns what the file holds."""
    if wrong := validate_raw(raw):  # ours to fix, not the user's
        raise RuntimeError(f"raw result of {raw['env']} breaks "
                           f"schemas/raw.schema.json: {wrong}")
    path = Path(results_dir, "raw", f"{raw['env']}.json")
    with results_lock(results_dir):
        kept = read_raw(path)[0] if path.exists() else None
        if not measured(raw) and (measured(kept)
                                  or raw["verdict"] is Verdict.ERROR):
            attempt = {"when": raw["finished"], "command": raw["command"],
                       "verdict": raw["verdict"], "why": raw["reason"],
                       "detail": detail or raw["reason"]}
            attempts = [*(kept.get("attempts", []) if kept else []), attempt]
            raw = cast(RawResult, {**(kept if kept and measured(kept) else raw),
                                   "attempts": attempts[-MAX_ATTEMPTS:]})
        write_json_atomic(path, raw)
    return raw


def machine_label(record: Mapping[str, Any]) -> str:
    machine = record.get("machine") or {}
    return machine.get("label") or machine.get("hostname") or "unknown"
