"""The failure-rate tables (``failure_rates.md``/``.csv``/``.json``),
merged from every raw result and never edited: one row per environment and
machine."""
from __future__ import annotations

import csv
import io
import json
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .fileio import write_json_atomic, write_text_atomic
from .markdown import render, table
from .rawresult import (VERDICTS, NoUsableResults, RawResultWarning,
                        current_verdict, decide_verdict, load_raw_dirs,
                        machine_label)
from .stats import wilson_interval


def merge_records(records: list[tuple[object, dict]], pool: bool = False,
                  left_out: list[dict] | None = None) -> list[dict]:
    """Merge raw records into table rows.

    One row per environment and machine. Records of the same environment
    from different machines stay separate rows, labelled by machine. Two
    records of one environment from the same machine (two copies of one
    result gathered twice) are a conflict unless identical: the newer one
    is kept and the other named in a warning.
    """
    by_key: dict[tuple[str, str], tuple[object, dict]] = {}
    for path, record in records:
        key = (record["env"], machine_label(record))
        if key in by_key:
            old_path, old = by_key[key]
            if old == record:
                continue
            keep, drop = ((path, record), (old_path, old)) if (
                record.get("finished", "") >= old.get("finished", "")
            ) else ((old_path, old), (path, record))
            warnings.warn(f"conflicting results for {record['env']} on "
                          f"{key[1]}: kept {keep[0]}, left out {drop[0]}",
                          RawResultWarning, stacklevel=2)
            if left_out is not None:
                left_out.append({"path": str(drop[0]), "reason": (
                    f"conflicts with {keep[0]} (same environment and "
                    f"machine; the newer was kept)")})
            by_key[key] = keep
        else:
            by_key[key] = (path, record)
    machines = {key[1] for key in by_key}
    kept = [record for _, record in by_key.values()]
    if pool:
        kept = pool_records(kept)
    rows = [make_row(record, show_machine=len(machines) > 1
                     and not record.get("pooled"))
            for record in kept]
    return sorted(rows, key=row_sort_key)


def pool_records(records: list[dict]) -> list[dict]:
    """Pool one environment's records from several machines into one, but
    only where the Python build and every package version match; otherwise
    they stay apart, with a warning that says why."""
    by_env: dict[str, list[dict]] = {}
    for record in records:
        by_env.setdefault(record["env"], []).append(record)
    pooled = []
    for env, group in by_env.items():
        identities = {(r["python"], json.dumps(r["packages"], sort_keys=True))
                      for r in group}
        if len(group) == 1 or len(identities) > 1:
            if len(group) > 1:
                warnings.warn(f"not pooled: {env} ran with different "
                              f"versions on {', '.join(map(machine_label, group))}",
                              RawResultWarning, stacklevel=3)
            pooled.extend(group)
            continue
        counts = {"target": sum(r["failures"] for r in group),
                  "other": sum(r["other_errors"] for r in group),
                  "hang": sum(r.get("hangs", 0) for r in group),
                  "pass": sum(r["runs"] - r["failures"] - r["other_errors"]
                              - r.get("hangs", 0) for r in group),
                  "skip": sum(r.get("skips", 0) for r in group)}
        labels = sorted(machine_label(r) for r in group)
        verdicts = {r["verdict"] for r in group}
        verdict, reason = decide_verdict(counts)
        if verdicts & {"error", "skipped"}:
            verdict, reason = group[0]["verdict"], group[0]["reason"]
        merged = dict(group[0], runs=sum(r["runs"] for r in group),
                      failures=counts["target"], other_errors=counts["other"],
                      hangs=counts["hang"], verdict=verdict,
                      seconds=round(sum(r["seconds"] for r in group), 2),
                      pooled=labels,
                      machine={"label": "+".join(labels)},
                      reason=f"{reason}; pooled from {len(group)} machines "
                             f"({', '.join(labels)}) with identical versions")
        pooled.append(merged)
    return pooled


def make_row(record: dict, show_machine: bool = False) -> dict:
    runs, failures = record["runs"], record["failures"]
    low, high = wilson_interval(failures, runs)
    env = record["env"]
    if show_machine:
        env = f"{env}@{machine_label(record)}"
    return {
        "env": env,
        "suite": record.get("suite", "mwe"),
        "python": record["python"] or record.get("spec", {}).get("python", ""),
        "target": record["target"],
        "sim": record["sim"],
        "packages": record["packages"],
        "runs": runs,
        "failures": failures,
        "other_errors": record["other_errors"],
        "hangs": record.get("hangs", 0),
        "failure_rate": round(failures / runs, 4) if runs else None,
        "ci95": [round(low, 4), round(high, 4)],
        "verdict": current_verdict(record)[0],
        "reason": current_verdict(record)[1],
        "seconds": record["seconds"],
        "concurrency": record.get("concurrency", 1),
        "machine": machine_label(record),
        "requirements": record.get("spec", {}).get("requirements", []),
        "launch_seconds": record.get("launch_seconds"),
        "resolution_way": (record.get("resolution") or {}).get("way"),
        "patch": (record.get("spec") or {}).get("patch"),
        "patch_record": record.get("patch"),
        "last_attempt": last_failed_attempt(record),
        "finished": record.get("finished"),
        **({"kinds": record["kinds"]} if record.get("kinds") else {}),
    }


def last_failed_attempt(record: dict) -> dict | None:
    """The attempt that measured nothing after the row's results were
    taken, as {when, why}, or None: the row stays, and says so."""
    attempts = record.get("attempts") or []
    if not attempts or attempts[-1]["when"] <= record.get("finished", ""):
        return None
    return {"when": attempts[-1]["when"], "why": attempts[-1]["why"]}


def asked_cell(row: dict) -> str:
    """The requirement set as asked (a range, a direct reference), beside
    the versions it resolved to."""
    return " ".join(row.get("requirements") or ()) or "–"


def reason_cell(row: dict) -> str:
    attempt = row.get("last_attempt")
    if not attempt:
        return row["reason"]
    return (f"{row['reason']}; last attempt failed "
            f"({attempt['when'][:16].replace('T', ' ')}): {attempt['why']}")


def _version_key(text):
    try:
        return (0, Version(text))
    except (InvalidVersion, TypeError):
        return (1, str(text))


def row_sort_key(row: dict) -> tuple:
    """Python (X.Y), then target, then the target's version, then simulator
    on before off; environments that were never built sort among the
    others by what they asked for."""
    python = row["python"] or ""
    minor = ".".join(python.split(".")[:2])
    suite = row.get("suite", "mwe")
    return (suite != "mwe", suite, _version_key(minor), row["target"],
            _version_key(target_version(row)),
            _version_key(package_version(row, "numba") or ""),
            not row["sim"], _version_key(python.split("+")[0]), row["env"])


def requested_version(row: dict, name: str) -> str | None:
    """The version the row's requirements pin ``name`` to (``==``), or
    None."""
    for text in row.get("requirements", []):
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) == name:
            return next((s.version for s in requirement.specifier
                         if s.operator == "=="), None)
    return None


def package_version(row: dict, name: str) -> str | None:
    """A package's installed version, else the one its requirements pin,
    else None."""
    return row["packages"].get(name) or requested_version(row, name)


def package_cell(row: dict, name: str) -> str:
    """A package's installed version; for an environment that was never
    built, the version it asked for (``==X``); else a dash."""
    installed = row["packages"].get(name)
    if installed:
        return installed
    requested = requested_version(row, name)
    return f"=={requested}" if requested else "–"


def target_version(row: dict) -> str:
    """The version of the row's CUDA target: installed, else requested."""
    return package_version(row, row["target"]) or "?"


def version_or_zero(text: str | None) -> Version:
    try:
        return Version(text)
    except (InvalidVersion, TypeError):
        return Version("0")


def column_key(row: dict) -> tuple[str, Version]:
    return (row["target"], version_or_zero(target_version(row)))


def python_minor(row: dict) -> str:
    text = row["python"] or row["env"].split("-")[0][2:]
    return ".".join(text.split(".")[:2])


KINDS = ("pattern", "trigger", "control")


def kind_rate(row: dict, kind: str) -> dict | None:
    """A test kind's counts in the row (``kinds`` of its raw record), or
    None where the record has none."""
    counts = (row.get("kinds") or {}).get(kind)
    if not counts or not counts.get("runs"):
        return None
    return {"runs": counts["runs"], "failures": counts["failures"],
            "rate": round(counts["failures"] / counts["runs"], 4)}


def kind_cell(row: dict, kind: str) -> str:
    data = kind_rate(row, kind)
    if data is None:
        return "–"
    return f"{data['failures']}/{data['runs']} ({100 * data['rate']:.1f}%)"


def format_rate(row: dict) -> str:
    if row["failure_rate"] is None:
        return "–"
    return f"{100 * row['failure_rate']:.1f}%"


def format_ci(row: dict) -> str:
    if not row["runs"]:
        return "–"
    low, high = row["ci95"]
    return f"{100 * low:.1f}–{100 * high:.1f}%"


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


@dataclass(frozen=True)
class Column:
    """One column of the failure-rate table: its CSV/JSON name, its
    Markdown header (None: not in the Markdown table) and its value."""
    name: str
    header: str | None
    value: Callable[[dict], object]
    text: Callable[[dict], str] | None = None

    def cell(self, row: dict) -> str:
        return self.text(row) if self.text else str(self.value(row))


def _launch(key):
    return lambda row: "" if (row.get("launch_seconds") or {}).get(key) is None \
        else row["launch_seconds"][key]


def _kind_text(kind: str) -> Callable[[dict], str]:
    return lambda row: kind_cell(row, kind)


def _kind(kind, key):
    return lambda row: (kind_rate(row, kind) or {}).get(key, "")


COLUMNS = (
    Column("env", None, lambda r: r["env"]),
    Column("suite", None, lambda r: r.get("suite", "mwe")),
    Column("python", "Python", lambda r: r["python"]),
    Column("target", "target", lambda r: r["target"]),
    Column("numba", "numba", lambda r: r["packages"].get("numba", ""),
           lambda r: package_cell(r, "numba")),
    Column("numba_cuda", "numba-cuda",
           lambda r: r["packages"].get("numba-cuda", ""),
           lambda r: package_cell(r, "numba-cuda")),
    Column("numpy", "numpy", lambda r: r["packages"].get("numpy", ""),
           lambda r: r["packages"].get("numpy", "–")),
    Column("asked", "asked", asked_cell),
    Column("patch", "patch", lambda r: r.get("patch") or "",
           lambda r: r.get("patch") or "none"),
    Column("sim", "sim", lambda r: int(r["sim"]),
           lambda r: "on" if r["sim"] else "off"),
    Column("runs", "runs", lambda r: r["runs"]),
    Column("failures", "failures", lambda r: r["failures"]),
    Column("other_errors", "other", lambda r: r["other_errors"]),
    Column("hangs", "hung", lambda r: r["hangs"]),
    Column("failure_rate", "all tests",
           lambda r: "" if r["failure_rate"] is None else r["failure_rate"],
           format_rate),
    Column("ci95_low", None, lambda r: r["ci95"][0]),
    Column("ci95_high", "95% CI", lambda r: r["ci95"][1], format_ci),
    *(column for kind in KINDS for column in (
        Column(f"{kind}_runs", None, _kind(kind, "runs")),
        Column(f"{kind}_failures", kind if kind != "control" else "controls",
               _kind(kind, "failures"), _kind_text(kind)))),
    Column("launch_n", None, _launch("n")),
    Column("launch_median", None, _launch("median")),
    Column("launch_p95", None, _launch("p95")),
    Column("launch_max", "launch s: median / p95 / max", _launch("max"),
           lambda r: format_launch(r.get("launch_seconds"))),
    Column("launch_past_limit", None, _launch("past_limit")),
    Column("seconds", None, lambda r: r["seconds"]),
    Column("concurrency", None, lambda r: r["concurrency"]),
    Column("machine", None, lambda r: r["machine"]),
    Column("install_way", None, lambda r: r.get("resolution_way") or ""),
    Column("last_attempt_failed", None,
           lambda r: (r.get("last_attempt") or {}).get("why", "")),
    Column("verdict", "verdict", lambda r: r["verdict"]),
    Column("reason", "reason", lambda r: r["reason"], reason_cell),
)
MARKDOWN = tuple(c for c in COLUMNS if c.header)
TABLE_COLUMNS = tuple(c.header for c in MARKDOWN)


def table_cells(row: dict) -> tuple[str, ...]:
    return tuple(column.cell(row) for column in MARKDOWN)


def markdown_lines(rows: list[dict]) -> list[str]:
    """The long table: the Markdown columns, with ``suite`` and ``patch``
    only where some row needs them."""
    shown = [c for c in MARKDOWN
             if c.name != "patch" or any(r.get("patch") for r in rows)]
    if any(r.get("suite", "mwe") != "mwe" for r in rows):
        shown.insert(0, Column("suite", "suite", lambda r: r.get("suite", "mwe")))
    return table([c.header or c.name for c in shown],
                 ([c.cell(row) for c in shown] for row in rows))


def grid(rows: list[dict]) -> dict:
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


def cell(row: dict) -> dict:
    return {"verdict": row["verdict"], "runs": row["runs"],
            "failures": row["failures"], "rate": row["failure_rate"],
            **{kind: kind_rate(row, kind) for kind in KINDS}}


def asked_note(row: dict) -> str:
    """`` (asked ...)`` where the requirement set is more than exact pins
    (a range, a direct reference, a marker), else nothing."""
    asked = row.get("requirements") or []
    if all(re.fullmatch(r"[a-z0-9._-]+(\[[^\]]*\])?==[\w.!+]+", text)
           for text in asked):
        return ""
    return f" (asked {' '.join(asked)})"


def verdict_counts(rows: list[dict]) -> str:
    counts = Counter(row["verdict"] for row in rows)
    return ", ".join(f"{counts[verdict]} {verdict}" for verdict in VERDICTS
                     if counts[verdict]) or "none"


def render_csv(rows: list[dict]) -> str:
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow([c.name for c in COLUMNS])
    writer.writerows([c.value(row) for c in COLUMNS] for row in rows)
    return stream.getvalue()


def summarize_machines(records: list[tuple[object, dict]]) -> str:
    seen: dict[str, dict] = {}
    for _, record in records:
        machine = record.get("machine") or {}
        seen.setdefault(machine_label(record), machine)
    return "; ".join(
        f"{label} ({m.get('os', '?')}, {m.get('cores', '?')} cores)"
        for label, m in sorted(seen.items())) or "none"


def write_tables(raw_dirs: list, out_dir, command: str, pool: bool = False,
                 left_out: list[dict] | None = None
                 ) -> tuple[list[dict], list[tuple[object, dict]]]:
    """Regenerate the three tables in ``out_dir`` from the raw records in
    ``raw_dirs``; returns (rows, records). The files left out are named in
    the tables, and added to ``left_out`` where given."""
    left_out = [] if left_out is None else left_out
    records = load_raw_dirs(raw_dirs, left_out)
    if not records:
        raise NoUsableResults(
            f"no usable raw result in {', '.join(map(str, raw_dirs))} (see "
            f"the warnings above, if any); nothing was written: run `nox -s "
            f"matrix` first, or point --raw at folders of raw results")
    rows = merge_records(records, pool, left_out)
    # The newest result's time, not the clock: same raw files, same tables.
    generated = max((r.get("finished", "") for _, r in records), default="")
    provenance = {"generated": generated or "no results", "command": command,
                  "raw_files": len(records),
                  "machines": summarize_machines(records),
                  "python_builds": "; ".join(sorted(
                      {r["python_build"] for _, r in records
                       if r.get("python_build")})) or "none",
                  "left_out": left_out}
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / "failure_rates.json",
                      {"generated": generated,
                       "provenance": provenance, "rows": rows})
    write_text_atomic(out_dir / "failure_rates.csv", render_csv(rows))
    write_text_atomic(out_dir / "failure_rates.md", render(
        "failure_rates.md", provenance=provenance, rows=rows,
        grid=grid([r for r in rows if r.get("suite", "mwe") == "mwe"
                   and not r.get("patch") and r["verdict"] != "skipped"]),
        verdicts=verdict_counts(rows), long_table=markdown_lines(rows)))
    return rows, records
