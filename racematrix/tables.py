"""failure_rates.md/.csv/.json: a row per environment and machine, one column spec."""
from __future__ import annotations

import csv
import io
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .envspec import EnvSpec
from .fileio import write_json_atomic, write_text_atomic
from .markdown import percent, render, seconds
from .rawresult import (NoUsableResults, RawResult, RawResultWarning, Verdict,
                        load_raw_dirs, machine_label, make_raw)
from .stats import wilson_interval

Row = dict[str, Any]
Records = list[tuple[Any, RawResult]]
KINDS = ("pattern", "trigger", "control")


def merge_records(records: Records,
                  left_out: list[dict] | None = None) -> list[Row]:
    """One row per environment and machine; of two differing copies, the newer."""
    kept: dict[tuple[str, str], tuple[Any, RawResult]] = {}
    for path, record in sorted(records, key=lambda f: f[1]["finished"]):
        key = (record["env"], machine_label(record))
        if key in kept and kept[key][1] != record:
            warnings.warn(f"conflicting results for {record['env']} on {key[1]}:"
                          f" kept {path}, left out {kept[key][0]}",
                          RawResultWarning, stacklevel=2)
            (left_out if left_out is not None else []).append({
                "path": str(kept[key][0]), "reason": f"conflicts with {path} "
                "(same environment and machine; the newer was kept)"})
        kept[key] = (path, record)
    several = len({key[1] for key in kept}) > 1
    return sorted((make_row(record, several) for _, record in kept.values()),
                  key=row_sort_key)


def make_row(record: RawResult, show_machine: bool = False) -> Row:
    """A record with its rate, Wilson interval and the keys the tables read."""
    runs, failures, label = record["runs"], record["failures"], \
        machine_label(record)
    attempts = record.get("attempts") or [{"when": ""}]
    return {
        **record, "machine": label, "suite": record.get("suite", "mwe"),
        "env": f"{record['env']}@{label}" if show_machine else record["env"],
        "python": record["python"] or record["spec"]["python"],
        "failure_rate": round(failures / runs, 4) if runs else None,
        "ci95": [round(end, 4) for end in wilson_interval(failures, runs)],
        "requirements": record["spec"]["requirements"],
        "patch": record["spec"].get("patch"),
        **{kind: kind_rate(record, kind) for kind in KINDS},
        # An attempt after the results that measured nothing: the row stays.
        "last_attempt": {k: attempts[-1][k] for k in ("when", "why")}
        if attempts[-1]["when"] > record["finished"] else None}


def not_run(envs: Iterable[EnvSpec], rows: Iterable[Row]) -> list[Row]:
    """A `skipped` row for each configured environment no machine recorded."""
    recorded = {row["env"].split("@", 1)[0] for row in rows}
    return [make_row(make_raw(spec, skip_reason=(
        "not run here: no CUDA GPU (simulator off needs one)" if not spec.sim
        else "not run here: no row recorded (its Python may be missing: see "
        "`nox -s matrix`'s output)"))) for spec in envs
        if spec.env_id not in recorded]


def version_key(text: str | None) -> Version:
    """A release's version; 0 where it is none or not a version."""
    try:
        return Version(text or "0")
    except InvalidVersion:
        return Version("0")


def row_sort_key(row: Row) -> tuple:
    """Suite, Python (X.Y), target, its version, simulator on first, env."""
    return (row["suite"] != "mwe", row["suite"], version_key(python_minor(row)),
            row["target"], version_key(target_version(row)), not row["sim"],
            row["env"])


def requested_version(row: Row, name: str) -> str | None:
    """The version the row's requirements pin ``name`` to (``==``)."""
    return next((s.version for r in map(Requirement, row["requirements"])
                 if canonicalize_name(r.name) == name
                 for s in r.specifier if s.operator == "=="), None)


def package_cell(row: Row, name: str) -> str:
    """Installed version; never built: the one asked for (``==X``); or –."""
    requested = requested_version(row, name)
    return row["packages"].get(name) or (f"=={requested}" if requested
                                         else "–")


def target_version(row: Row) -> str:
    """The version of the row's CUDA target: installed, else requested."""
    return row["packages"].get(row["target"]) or requested_version(
        row, row["target"]) or "?"


def python_minor(row: Row) -> str:
    text = row["python"] or row["env"].split("-")[0][2:]
    return ".".join(text.split(".")[:2])


def kind_rate(record: RawResult | Row, kind: str) -> dict | None:
    """A test kind's runs, failures and rate (None: the record has none)."""
    counts = (record.get("kinds") or {}).get(kind) or {}
    return {"runs": counts["runs"], "failures": counts["failures"],
            "rate": round(counts["failures"] / counts["runs"], 4)} \
        if counts.get("runs") else None


def format_launch(record: dict | None) -> str:
    """``median / p95 / max s``, ``>=`` where cut at the limit."""
    if not record or not record.get("n"):
        return "–" if not record or not record.get("error") else \
            f"not measured: {record['error']}"[:120]
    limit = record.get("limit") or float("inf")
    text = " / ".join(seconds(record[key], record[key] >= limit)
                      for key in ("median", "p95", "max"))
    if record.get("past_limit"):
        text += f" ({record['past_limit']} of {record['n']} past {limit:g} s)"
    return text


class Column(NamedTuple):
    """CSV/JSON name and value; Markdown header (None: not shown) and text."""
    name: str
    header: str | None = None
    value: Callable[[Row], Any] | None = None
    text: Callable[[Row], str] | None = None

    def get(self, row: Row) -> Any:
        return self.value(row) if self.value else row.get(self.name)

    def cell(self, row: Row) -> str:
        return self.text(row) if self.text else str(self.get(row))


def _at(part: str, key: str) -> Callable[[Row], Any]:
    return lambda r: (r.get(part) or {}).get(key)


def _kind_text(kind: str) -> Callable[[Row], str]:
    return lambda r: "–" if not (d := r[kind]) else \
        f"{d['failures']}/{d['runs']} ({percent(d['rate'])})"


def _package(name: str) -> Column:
    return Column(name.replace("-", "_"), name,
                  lambda r: r["packages"].get(name, ""),
                  lambda r: package_cell(r, name))


COLUMNS = (
    Column("env"), Column("suite", "suite"), Column("python", "Python"),
    Column("target", "target"),
    *map(_package, ("numba", "numba-cuda", "numpy")),
    Column("asked", "asked", lambda r: " ".join(r["requirements"]) or "–"),
    Column("patch", "patch", lambda r: r["patch"] or "",
           lambda r: r["patch"] or "none"),
    Column("sim", "sim", lambda r: int(r["sim"]),
           lambda r: "on" if r["sim"] else "off"),
    Column("runs", "runs"), Column("failures", "failures"),
    Column("other_errors", "other"), Column("hangs", "hung"),
    Column("failure_rate", "all tests",
           text=lambda r: percent(r["failure_rate"])),
    Column("ci95_low", None, lambda r: r["ci95"][0]),
    Column("ci95_high", "95% CI", lambda r: r["ci95"][1],
           lambda r: f"{100 * r['ci95'][0]:.1f}–{100 * r['ci95'][1]:.1f}%"
           if r["runs"] else "–"),
    *(column for kind in KINDS for column in (
        Column(f"{kind}_runs", None, _at(kind, "runs")),
        Column(f"{kind}_failures", "controls" if kind == "control" else kind,
               _at(kind, "failures"), _kind_text(kind)))),
    *(Column(f"launch_{key}", None, _at("launch_seconds", key))
      for key in ("n", "median", "p95")),
    Column("launch_max", "launch s: median / p95 / max",
           _at("launch_seconds", "max"),
           lambda r: format_launch(r.get("launch_seconds"))),
    Column("seconds"), Column("machine"), Column("verdict", "verdict"),
    Column("reason", "reason", text=lambda r: r["reason"] + (
        "; last attempt failed ({}): {}".format(
            r["last_attempt"]["when"][:16].replace("T", " "),
            r["last_attempt"]["why"]) if r["last_attempt"] else "")),
)
MARKDOWN = tuple(c for c in COLUMNS if c.header)
TABLE_COLUMNS = tuple(str(c.header) for c in MARKDOWN)


def table_cells(row: Row) -> tuple[str, ...]:
    return tuple(column.cell(row) for column in MARKDOWN)


def grid(rows: list[Row]) -> dict:
    """The MWE's unpatched rows that ran: Python x (sim, target, version, numba)."""
    rows = [r for r in rows if r["suite"] == "mwe" and not r["patch"]
            and r["verdict"] != Verdict.SKIPPED]
    pythons = sorted({python_minor(r) for r in rows}, key=version_key)
    lines: dict[tuple, dict] = defaultdict(dict)
    for row in rows:
        # `` (asked ...)`` where the requirements are more than exact pins.
        asked = "" if all(re.fullmatch(
            r"[a-z0-9._-]+(\[[^\]]*\])?==[\w.!+]+", text)
            for text in row["requirements"]) else \
            f" (asked {' '.join(row['requirements'])})"
        lines[(not row["sim"], row["target"], version_key(target_version(
            row)), package_cell(row, "numba"), asked)][python_minor(row)] = row
    return {"pythons": pythons, "lines": [
        {"sim": not key[0], "target": key[1],
         "version": target_version(next(iter(cells.values()))) + key[4],
         "numba": key[3], "cells": {p: cells.get(p) for p in pythons}}
        for key, cells in sorted(lines.items())]}


def verdict_counts(rows: list[Row]) -> str:
    counts = Counter(row["verdict"] for row in rows)
    return ", ".join(f"{counts[v]} {v}" for v in Verdict if counts[v]) or "none"


def write_tables(raw_dirs: list, out_dir: str | Path, command: str,
                 configured: Iterable[EnvSpec] = ()
                 ) -> tuple[list[Row], Records]:
    """The three tables in ``out_dir`` from the raw records; (rows, records)."""
    left_out: list[dict] = []
    records = load_raw_dirs(raw_dirs, left_out)
    if not records:
        raise NoUsableResults(
            f"report: no usable raw result in {', '.join(map(str, raw_dirs))}"
            " (see the warnings above, if any); nothing was written: run `nox"
            " -s matrix` first, or point --raw at folders of raw results")
    rows = merge_records(records, left_out)
    loads = [load for row in rows for load in row.get("load") or ()]
    unknown = sum(not row.get("load") for row in rows)
    rows = sorted([*rows, *not_run(configured, rows)], key=row_sort_key)
    machines = {machine_label(r): r["machine"] for _, r in reversed(records)}
    # The newest result's time, not the clock: same raw files, same tables.
    generated = max(r["finished"] for _, r in records)
    provenance = {"generated": generated, "command": command,
                  "raw_files": len(records), "machines": "; ".join(
                      f"{label} ({m.get('os', '?')}, {m.get('cores', '?')} "
                      f"cores)" for label, m in sorted(machines.items())),
                  "python_builds": "; ".join(sorted(
                      {r["python_build"] for _, r in records
                       if r["python_build"]})) or "none",
                  # the 1-minute load average at each row's start and end
                  "load": f"{min(loads)} to {max(loads)}" + (
                      f" ({unknown} rows: not recorded)" if unknown else "")
                  if loads else "not recorded",
                  "left_out": left_out}
    out_dir, data = Path(out_dir), [{c.name: c.get(row) for c in COLUMNS}
                                    for row in rows]
    write_json_atomic(out_dir / "failure_rates.json", {
        "generated": generated, "provenance": provenance, "rows": data})
    stream = io.StringIO()
    writer = csv.DictWriter(stream, [c.name for c in COLUMNS],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(data)
    write_text_atomic(out_dir / "failure_rates.csv", stream.getvalue())
    write_text_atomic(out_dir / "failure_rates.md", render(
        "failure_rates.md", provenance=provenance, grid=grid(rows),
        verdicts=verdict_counts(rows), columns=TABLE_COLUMNS,
        rows=map(table_cells, rows)))
    return rows, records
