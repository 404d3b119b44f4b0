"""One environment's raw result (``results/raw/<env>.json``): the typed
record, its verdict, decided here once when the record is made, and the
store that reads, validates and writes the records (``schemas/
raw.schema.json`` is the contract of every writer and reader)."""
from __future__ import annotations

import enum
import json
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from .fileio import STALE, results_lock, write_json_atomic
from .outcomes import RAN, Outcome
from .provenance import machine_info, now_iso
from .validation import SCHEMAS, problem

if TYPE_CHECKING:
    from .envspec import EnvSpec

SCHEMA = 1
# Failed attempts kept beside a measured row: enough to see a pattern.
MAX_ATTEMPTS = 20


class Verdict(str, enum.Enum):
    """What one environment came to; the strings are the raw files'."""
    REPRODUCED = "reproduced"
    NOT_REPRODUCED = "not-reproduced"
    HUNG = "hung"
    ERROR = "error"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value


class _Recorded(TypedDict):
    schema: int
    env: str
    suite: str
    spec: dict[str, Any]
    target: str
    python: str
    python_build: str
    sim: bool
    packages: dict[str, str]
    settings: dict[str, Any]
    runs: int
    failures: int
    other_errors: int
    hangs: int
    skips: int
    verdict: Verdict
    reason: str
    seconds: float
    pytest_seconds: float
    concurrency: int
    summary: dict[str, Any]
    machine: dict[str, Any]
    command: str
    started: str
    finished: str


class RawResult(_Recorded, total=False):
    """One environment's raw result, as ``schemas/raw.schema.json`` has it
    (a plain dict: it flows to JSON and to the templates as it is)."""
    kinds: dict[str, dict[str, int]]
    pytest_output: str
    resolution: dict[str, Any]
    launch_seconds: dict[str, Any]
    patch: dict[str, Any]
    attempts: list[dict[str, str]]
    pooled: list[str]


class RawResultWarning(UserWarning):
    """A raw result file was left out of the tables."""


class NoUsableResults(ValueError):
    """Every input was left out (or there was none): writing tables from
    nothing would replace good ones with empty ones."""


def decide_verdict(counts: Mapping[str, int], env_error: str | None = None,
                   skip_reason: str | None = None) -> tuple[Verdict, str]:
    """The verdict and its reason, from the outcome counts of every test
    run (``Outcome`` -> count): the one rule, for a row and a probe alike.

    One target failure is enough for "reproduced": the race's signature
    cannot appear without the race. Runs that only hung (past the timeout)
    make it "hung": on a fixed simulator a hang is the slowdown's symptom,
    neither the race nor a broken environment. Anything else that went
    wrong without a target failure makes the environment an "error", never
    a pass.
    """
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


def make_raw(spec: EnvSpec, *, packages: dict[str, str], python: str,
             python_build: str, counts: Mapping[str, int] | None = None,
             env_error: str | None = None, skip_reason: str | None = None,
             seconds: float = 0.0, started: str | None = None,
             **fields: Any) -> RawResult:
    """The raw record of one environment's run, its verdict decided.
    ``fields`` are the record's other keys (summary, settings, machine,
    command, resolution, launch_seconds, patch, kinds, pytest_output...);
    empty ones are left out where the schema lets them be absent."""
    counts = counts or dict.fromkeys(Outcome, 0)
    verdict, reason = decide_verdict(counts, env_error, skip_reason)
    spec_keys = {"python": spec.python, "requirements": list(spec.requirements),
                 "sim": spec.sim}
    optional = {"kinds", "pytest_output", "resolution", "launch_seconds",
                "patch"}
    unknown = set(fields) - optional - {"settings", "pytest_seconds",
                                        "concurrency", "summary", "machine",
                                        "command"}
    if unknown:
        raise TypeError(f"make_raw: unknown fields {sorted(unknown)}")
    return cast(RawResult, dict(
        schema=SCHEMA, env=spec.env_id, suite=spec.suite,
        spec={**spec_keys, **({"patch": spec.patch} if spec.patch else {})},
        target=spec.target, python=python, python_build=python_build,
        sim=spec.sim, packages=packages, settings=fields.pop("settings", None)
        or {}, runs=sum(counts[outcome] for outcome in RAN),
        failures=counts[Outcome.TARGET], other_errors=counts[Outcome.OTHER],
        hangs=counts[Outcome.HANG], skips=counts[Outcome.SKIP],
        verdict=verdict, reason=reason, seconds=round(seconds, 2),
        pytest_seconds=fields.pop("pytest_seconds", 0.0),
        concurrency=fields.pop("concurrency", 1),
        summary=fields.pop("summary", None) or {},
        machine=fields.pop("machine", None) or {},
        command=fields.pop("command", ""), started=started or now_iso(),
        finished=now_iso(),
        **{key: value for key, value in fields.items() if value}))


def validate_raw(data: Any) -> str | None:
    """The problem with a raw record in one line, or None if it is usable:
    checked against ``schemas/raw.schema.json``, each measurement's field
    against its own schema in ``schemas/raw-fields/`` (see measurement.py),
    then for counts that cannot add up."""
    wrong = problem(data, "raw", "record")
    for path in sorted((SCHEMAS / "raw-fields").glob("*.schema.json")):
        field = path.name.removesuffix(".schema.json")
        if not wrong and field in data:
            wrong = problem(data[field], f"raw-fields/{field}",
                            f"record.{field}")
    if not wrong and data["failures"] + data["other_errors"] + \
            data["hangs"] > data["runs"]:
        wrong = (f"failures ({data['failures']}), other errors and hangs "
                 f"exceed runs ({data['runs']})")
    return wrong


def read_raw(path: Path) -> tuple[RawResult | None, str | None]:
    """The record in one file and None, or None and why it is not usable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        return None, f"not readable JSON ({error})"
    wrong = validate_raw(data)
    if wrong:
        return None, wrong
    data["verdict"] = Verdict(data["verdict"])
    return data, None


def load_raw_dirs(dirs: Iterable[str | Path],
                  left_out: list[dict[str, str]] | None = None
                  ) -> list[tuple[Path, RawResult]]:
    """Every usable raw record under ``dirs`` (folders or files). Unreadable
    or malformed files are named in a warning and left out, and listed in
    ``left_out`` (as {path, reason}) where given, for the tables and the
    report to name them too."""
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
    return bool(raw) and raw["runs"] > 0  # type: ignore[index]


def record(raw: RawResult, results_dir: str | Path,
           detail: str | None = None) -> RawResult:
    """Write one raw file under the results folder's lock, after checking
    it against the schema every reader holds it to, and mark the tables
    stale. A measured row is replaced only by a measured row: an attempt
    that measured nothing (a skip, an index out of reach, pytest killed) is
    added to the kept row's ``attempts`` instead, with ``detail``, the full
    text behind its reason. Returns the record now in the file."""
    wrong = validate_raw(raw)
    if wrong:  # ours to fix: the writer must hold to the schema
        raise RuntimeError(f"raw result of {raw['env']} breaks "
                           f"schemas/raw.schema.json: {wrong}")
    results_dir = Path(results_dir)
    path = results_dir / "raw" / f"{raw['env']}.json"
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
        (results_dir / STALE).touch()
    return raw


def kept_measured_row(written: RawResult, attempted: RawResult) -> bool:
    """Whether ``record`` kept an earlier measured row over ``attempted``."""
    return measured(written) and not measured(attempted)


def machine_label(record: Mapping[str, Any]) -> str:
    machine = record.get("machine") or {}
    return machine.get("label") or machine.get("hostname") or "unknown"


def record_skips(envs: Iterable[EnvSpec],
                 reason_for: Callable[[EnvSpec], str | None],
                 results_dir: str | Path, command: str = "nox -s matrix"
                 ) -> int:
    """A `skipped` row, with the reason ``reason_for(spec)`` gives (None:
    no skip), for each environment without a row here yet. (The noxfile's,
    until the report derives these rows: ``tables.not_run``.)"""
    written = 0
    for spec in envs:
        reason = reason_for(spec)
        if reason and not (Path(results_dir) / "raw" /
                           f"{spec.env_id}.json").exists():
            record(make_raw(spec, packages={}, python="", python_build="",
                            skip_reason=reason, machine=machine_info(),
                            command=command), results_dir)
            written += 1
    return written


def record_missing_interpreters(envs: Iterable[EnvSpec],
                                missing: Mapping[str, str],
                                results_dir: str | Path) -> int:
    """``record_skips`` for the environments of a missing Python (``missing``:
    Python -> how to install it)."""
    return record_skips(envs, lambda spec: missing.get(spec.python),
                        results_dir)
