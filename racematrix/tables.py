"""The failure-rate tables (``failure_rates.md``/``.csv``/``.json``),
merged from every raw result and never edited: one row per environment and
machine, and one column spec (``COLUMNS``) that makes all three."""
from __future__ import annotations

import csv
import io
import json
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .envspec import EnvSpec
from .fileio import write_json_atomic, write_text_atomic
from .markdown import percent, render, table
from .outcomes import Outcome
from .rawresult import (NoUsableResults, RawResult, RawResultWarning, Verdict,
                        decide_verdict, load_raw_dirs, machine_label, make_raw)
from .stats import wilson_interval

Row = dict[str, Any]
Records = list[tuple[Any, RawResult]]
KINDS = ("pattern", "trigger", "control")


def merge_records(records: Records, pool: bool = False,
                  left_out: list[dict] | None = None) -> list[Row]:
    """Merge raw records into table rows.

    One row per environment and machine. Records of the same environment
    from different machines stay separate rows, labelled by machine. Two
    records of one environment from the same machine (two copies of one
    result gathered twice) are a conflict unless identical: the newer one
    is kept and the other named in a warning.
    """
    by_key: dict[tuple[str, str], tuple[Any, RawResult]] = {}
    for path, record in records:
        key = (record["env"], machine_label(record))
        old = by_key.setdefault(key, (path, record))
        if old[1] == record:
            continue
        keep, drop = ((path, record), old) if \
            record["finished"] >= old[1]["finished"] else (old, (path, record))
        warnings.warn(f"conflicting results for {record['env']} on {key[1]}: "
                      f"kept {keep[0]}, left out {drop[0]}", RawResultWarning,
                      stacklevel=2)
        if left_out is not None:
            left_out.append({"path": str(drop[0]), "reason": (
                f"conflicts with {keep[0]} (same environment and machine; "
                f"the newer was kept)")})
        by_key[key] = keep
    machines = {key[1] for key in by_key}
    kept = [record for _, record in by_key.values()]
    if pool:
        kept = pool_records(kept)
    return sorted((make_row(record, show_machine=len(machines) > 1
                            and not record.get("pooled"))
                   for record in kept), key=row_sort_key)


def pool_records(records: list[RawResult]) -> list[RawResult]:
    """Pool one environment's records from several machines into one, but
    only where the Python build and every package version match; otherwise
    they stay apart, with a warning that says why."""
    by_env: dict[str, list[RawResult]] = {}
    for record in records:
        by_env.setdefault(record["env"], []).append(record)
    pooled = []
    for env, group in by_env.items():
        labels = sorted(machine_label(r) for r in group)
        if len(group) == 1 or len({(r["python"], json.dumps(
                r["packages"], sort_keys=True)) for r in group}) > 1:
            if len(group) > 1:
                warnings.warn(f"not pooled: {env} ran with different "
                              f"versions on {', '.join(labels)}",
                              RawResultWarning, stacklevel=3)
            pooled.extend(group)
            continue
        counts = {Outcome.TARGET: sum(r["failures"] for r in group),
                  Outcome.OTHER: sum(r["other_errors"] for r in group),
                  Outcome.HANG: sum(r["hangs"] for r in group),
                  Outcome.PASS: sum(r["runs"] - r["failures"] - r["other_errors"]
                                    - r["hangs"] for r in group),
                  Outcome.SKIP: sum(r["skips"] for r in group)}
        verdict, reason = decide_verdict(counts)
        if {r["verdict"] for r in group} & {Verdict.ERROR, Verdict.SKIPPED}:
            verdict, reason = group[0]["verdict"], group[0]["reason"]
        pooled.append(dict(  # type: ignore[arg-type]
            group[0], runs=sum(r["runs"] for r in group),
            failures=counts[Outcome.TARGET], other_errors=counts[Outcome.OTHER],
            hangs=counts[Outcome.HANG], verdict=verdict,
            seconds=round(sum(r["seconds"] for r in group), 2), pooled=labels,
            machine={"label": "+".join(labels)},
            reason=f"{reason}; pooled from {len(group)} machines "
                   f"({', '.join(labels)}) with identical versions"))
    return pooled


def make_row(record: RawResult, show_machine: bool = False) -> Row:
    """The table row of one record: its figures, and the rate with its
    Wilson interval."""
    runs, failures = record["runs"], record["failures"]
    low, high = wilson_interval(failures, runs)
    return {
        "env": f"{record['env']}@{machine_label(record)}" if show_machine
        else record["env"],
        "suite": record.get("suite", "mwe"),
        "python": record["python"] or record["spec"]["python"],
        "target": record["target"], "sim": record["sim"],
        "packages": record["packages"], "runs": runs, "failures": failures,
        "other_errors": record["other_errors"], "hangs": record["hangs"],
        "failure_rate": round(failures / runs, 4) if runs else None,
        "ci95": [round(low, 4), round(high, 4)],
        "verdict": record["verdict"], "reason": record["reason"],
        "seconds": record["seconds"], "concurrency": record["concurrency"],
        "machine": machine_label(record),
        "requirements": record["spec"]["requirements"],
        "launch_seconds": record.get("launch_seconds"),
        "resolution_way": record.get("resolution", {}).get("way"),
        "patch": record["spec"].get("patch"),
        "patch_record": record.get("patch"),
        "last_attempt": last_failed_attempt(record),
        "finished": record["finished"],
        **({"kinds": record["kinds"]} if record.get("kinds") else {}),
    }


def not_run(envs: Iterable[EnvSpec], rows: Iterable[Row]) -> list[Row]:
    """A `skipped` row for each configured environment with no recorded
    row (on any machine): what the matrix did not run here, derived from
    the config rather than recorded as a file."""
    recorded = {row["env"].split("@", 1)[0] for row in rows}
    return [make_row(make_raw(
        spec, packages={}, python="", python_build="", skip_reason=(
            "not run here: no CUDA GPU (simulator off needs one)"
            if not spec.sim else "not run here: no row recorded (its "
            "Python may be missing: see `nox -s matrix`'s output)")))
            for spec in envs if spec.env_id not in recorded]


def last_failed_attempt(record: RawResult) -> dict | None:
    """The attempt that measured nothing after the row's results were
    taken, as {when, why}, or None: the row stays, and says so."""
    attempts = record.get("attempts") or []
    if not attempts or attempts[-1]["when"] <= record["finished"]:
        return None
    return {"when": attempts[-1]["when"], "why": attempts[-1]["why"]}


def version_or_zero(text: str | None) -> Version:
    try:
        return Version(text)
    except (InvalidVersion, TypeError):
        return Version("0")


def _version_key(text: str | None) -> tuple[int, Version | str]:
    try:
        return (0, Version(text))
    except (InvalidVersion, TypeError):
        return (1, str(text))


def row_sort_key(row: Row) -> tuple:
    """Python (X.Y), then target, then the target's version, then simulator
    on before off; environments that were never built sort among the
    others by what they asked for."""
    python = row["python"] or ""
    minor = ".".join(python.split(".")[:2])
    return (row["suite"] != "mwe", row["suite"], _version_key(minor),
            row["target"], _version_key(target_version(row)),
            _version_key(package_version(row, "numba") or ""), not row["sim"],
            _version_key(python.split("+")[0]), row["env"])


def requested_version(row: Row, name: str) -> str | None:
    """The version the row's requirements pin ``name`` to (``==``), or
    None."""
    for text in row["requirements"]:
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) == name:
            return next((s.version for s in requirement.specifier
                         if s.operator == "=="), None)
    return None


def package_version(row: Row, name: str) -> str | None:
    """A package's installed version, else the one its requirements pin,
    else None."""
    return row["packages"].get(name) or requested_version(row, name)


def package_cell(row: Row, name: str) -> str:
    """A package's installed version; for an environment that was never
    built, the version it asked for (``==X``); else a dash."""
    requested = requested_version(row, name)
    return row["packages"].get(name) or (f"=={requested}" if requested
                                         else "–")


def target_version(row: Row) -> str:
    """The version of the row's CUDA target: installed, else requested."""
    return package_version(row, row["target"]) or "?"


def column_key(row: Row) -> tuple[str, Version]:
    return (row["target"], version_or_zero(target_version(row)))


def python_minor(row: Row) -> str:
    text = row["python"] or row["env"].split("-")[0][2:]
    return ".".join(text.split(".")[:2])


def kind_rate(row: Row, kind: str) -> dict | None:
    """A test kind's counts in the row (``kinds`` of its raw record), or
    None where the record has none."""
    counts = (row.get("kinds") or {}).get(kind)
    if not counts or not counts.get("runs"):
        return None
    return {"runs": counts["runs"], "failures": counts["failures"],
            "rate": round(counts["failures"] / counts["runs"], 4)}


def kind_cell(row: Row, kind: str) -> str:
    data = kind_rate(row, kind)
    return "–" if data is None else \
        f"{data['failures']}/{data['runs']} ({percent(data['rate'])})"


def format_launch(record: dict | None) -> str:
    """One cell: ``median / p95 / max s`` of the launch-time workload, with
    the launches past its limit; a dash where it was not measured."""
    if not record or not record.get("n"):
        return "–" if not record or not record.get("error") else \
            f"not measured: {record['error']}"[:120]
    limit = record.get("limit") or float("inf")
    text = " / ".join(f">= {limit:.2f}" if record[key] >= limit - 1e-9
                      else f"{record[key]:.2f}" for key in ("median", "p95", "max"))
    if record.get("past_limit"):
        text += (f" ({record['past_limit']} of {record['n']} past "
                 f"{record['limit']:g} s)")
    return text


def reason_cell(row: Row) -> str:
    attempt = row["last_attempt"]
    return row["reason"] if not attempt else (
        f"{row['reason']}; last attempt failed "
        f"({attempt['when'][:16].replace('T', ' ')}): {attempt['why']}")


@dataclass(frozen=True)
class Column:
    """One column of the failure-rate table: its CSV and JSON name and
    value (None: an empty CSV cell), and its Markdown header (None: not in
    the Markdown table) and cell text (default: the value)."""
    name: str
    header: str | None
    value: Callable[[Row], Any]
    text: Callable[[Row], str] | None = None

    def cell(self, row: Row) -> str:
        return self.text(row) if self.text else str(self.value(row))


def _get(*keys: str) -> Callable[[Row], Any]:
    """The value at ``row[keys[0]][keys[1]]...``, None where absent."""
    def value(row: Row) -> Any:
        found: Any = row
        for key in keys:
            found = (found or {}).get(key)
        return found
    return value


def _kind_columns(kind: str) -> tuple[Column, Column]:
    return (Column(f"{kind}_runs", None,
                   lambda r: (kind_rate(r, kind) or {}).get("runs")),
            Column(f"{kind}_failures", "controls" if kind == "control"
                   else kind, lambda r: (kind_rate(r, kind) or {}).get(
                       "failures"), lambda r: kind_cell(r, kind)))


COLUMNS = (
    Column("env", None, _get("env")),
    Column("suite", None, _get("suite")),
    Column("python", "Python", _get("python")),
    Column("target", "target", _get("target")),
    Column("numba", "numba", lambda r: r["packages"].get("numba", ""),
           lambda r: package_cell(r, "numba")),
    Column("numba_cuda", "numba-cuda",
           lambda r: r["packages"].get("numba-cuda", ""),
           lambda r: package_cell(r, "numba-cuda")),
    Column("numpy", "numpy", lambda r: r["packages"].get("numpy", ""),
           lambda r: r["packages"].get("numpy", "–")),
    Column("asked", "asked", lambda r: " ".join(r["requirements"]) or "–"),
    Column("patch", "patch", lambda r: r["patch"] or "",
           lambda r: r["patch"] or "none"),
    Column("sim", "sim", lambda r: int(r["sim"]),
           lambda r: "on" if r["sim"] else "off"),
    Column("runs", "runs", _get("runs")),
    Column("failures", "failures", _get("failures")),
    Column("other_errors", "other", _get("other_errors")),
    Column("hangs", "hung", _get("hangs")),
    Column("failure_rate", "all tests", _get("failure_rate"),
           lambda r: percent(r["failure_rate"])),
    Column("ci95_low", None, lambda r: r["ci95"][0]),
    Column("ci95_high", "95% CI", lambda r: r["ci95"][1],
           lambda r: f"{100 * r['ci95'][0]:.1f}–{100 * r['ci95'][1]:.1f}%"
           if r["runs"] else "–"),
    *(column for kind in KINDS for column in _kind_columns(kind)),
    Column("launch_n", None, _get("launch_seconds", "n")),
    Column("launch_median", None, _get("launch_seconds", "median")),
    Column("launch_p95", None, _get("launch_seconds", "p95")),
    Column("launch_max", "launch s: median / p95 / max",
           _get("launch_seconds", "max"),
           lambda r: format_launch(r["launch_seconds"])),
    Column("launch_past_limit", None, _get("launch_seconds", "past_limit")),
    Column("seconds", None, _get("seconds")),
    Column("concurrency", None, _get("concurrency")),
    Column("machine", None, _get("machine")),
    Column("install_way", None, lambda r: r["resolution_way"] or ""),
    Column("last_attempt_failed", None, lambda r: _get(
        "last_attempt", "why")(r) or ""),
    Column("verdict", "verdict", _get("verdict")),
    Column("reason", "reason", _get("reason"), reason_cell),
)
MARKDOWN = tuple(c for c in COLUMNS if c.header)
TABLE_COLUMNS = tuple(c.header for c in MARKDOWN)


def table_cells(row: Row) -> tuple[str, ...]:
    return tuple(column.cell(row) for column in MARKDOWN)


def markdown_lines(rows: list[Row]) -> list[str]:
    """The long table: the Markdown columns, with ``suite`` and ``patch``
    only where some row needs them."""
    shown = [c for c in MARKDOWN
             if c.name != "patch" or any(r["patch"] for r in rows)]
    if any(r["suite"] != "mwe" for r in rows):
        shown.insert(0, Column("suite", "suite", _get("suite")))
    return table([str(c.header) for c in shown],
                 ([c.cell(row) for c in shown] for row in rows))


def json_rows(rows: list[Row]) -> list[dict[str, Any]]:
    """The rows as ``failure_rates.json`` has them: every column's value."""
    return [{c.name: c.value(row) for c in COLUMNS} for row in rows]


def render_csv(rows: list[Row]) -> str:
    stream = io.StringIO()
    writer = csv.DictWriter(stream, [c.name for c in COLUMNS],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(json_rows(rows))
    return stream.getvalue()


def grid(rows: list[Row]) -> dict:
    """Python x release: one line per (simulator, target, version, numba),
    a cell per Python with the row's counts and per-kind rates."""
    pythons = sorted({python_minor(r) for r in rows}, key=version_or_zero)
    lines: dict[tuple, dict] = defaultdict(dict)
    for row in rows:
        key = (not row["sim"], row["target"],
               version_or_zero(target_version(row)),
               package_cell(row, "numba"), asked_note(row))
        lines[key][python_minor(row)] = row
    return {"pythons": pythons, "lines": [
        {"sim": not key[0], "target": key[1],
         "version": target_version(next(iter(cells.values()))) + key[4],
         "numba": key[3],
         "cells": {p: cell(cells[p]) if p in cells else None for p in pythons}}
        for key, cells in sorted(lines.items())]}


def cell(row: Row) -> dict:
    return {"verdict": row["verdict"], "runs": row["runs"],
            "failures": row["failures"], "rate": row["failure_rate"],
            **{kind: kind_rate(row, kind) for kind in KINDS}}


def asked_note(row: Row) -> str:
    """`` (asked ...)`` where the requirement set is more than exact pins
    (a range, a direct reference, a marker), else nothing."""
    asked = row["requirements"]
    if all(re.fullmatch(r"[a-z0-9._-]+(\[[^\]]*\])?==[\w.!+]+", text)
           for text in asked):
        return ""
    return f" (asked {' '.join(asked)})"


def verdict_counts(rows: list[Row]) -> str:
    counts = Counter(row["verdict"] for row in rows)
    return ", ".join(f"{counts[verdict]} {verdict}" for verdict in Verdict
                     if counts[verdict]) or "none"


def summarize_machines(records: Records) -> str:
    seen: dict[str, dict] = {}
    for _, record in records:
        seen.setdefault(machine_label(record), record["machine"])
    return "; ".join(
        f"{label} ({m.get('os', '?')}, {m.get('cores', '?')} cores)"
        for label, m in sorted(seen.items())) or "none"


def write_tables(raw_dirs: list, out_dir: str | Path, command: str,
                 pool: bool = False, left_out: list[dict] | None = None,
                 configured: Iterable[EnvSpec] = ()
                 ) -> tuple[list[Row], Records]:
    """Regenerate the three tables in ``out_dir`` from the raw records in
    ``raw_dirs``, with a `skipped` row for each of the ``configured``
    environments that has none (``not_run``); returns (rows, records). The
    files left out are named in the tables, and added to ``left_out``
    where given."""
    left_out = [] if left_out is None else left_out
    records = load_raw_dirs(raw_dirs, left_out)
    if not records:
        raise NoUsableResults(
            f"no usable raw result in {', '.join(map(str, raw_dirs))} (see "
            f"the warnings above, if any); nothing was written: run `nox -s "
            f"matrix` first, or point --raw at folders of raw results")
    rows = merge_records(records, pool, left_out)
    rows = sorted([*rows, *not_run(configured, rows)], key=row_sort_key)
    # The newest result's time, not the clock: same raw files, same tables.
    generated = max(r["finished"] for _, r in records)
    provenance = {"generated": generated, "command": command,
                  "raw_files": len(records),
                  "machines": summarize_machines(records),
                  "python_builds": "; ".join(sorted(
                      {r["python_build"] for _, r in records
                       if r["python_build"]})) or "none",
                  "left_out": left_out}
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / "failure_rates.json", {
        "generated": generated, "provenance": provenance,
        "rows": json_rows(rows)})
    write_text_atomic(out_dir / "failure_rates.csv", render_csv(rows))
    write_text_atomic(out_dir / "failure_rates.md", render(
        "failure_rates.md", provenance=provenance, rows=rows,
        grid=grid([r for r in rows if r["suite"] == "mwe" and not r["patch"]
                   and r["verdict"] != Verdict.SKIPPED]),
        verdicts=verdict_counts(rows), long_table=markdown_lines(rows)))
    return rows, records
