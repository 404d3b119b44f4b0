"""The failure-rate tables (``failure_rates.md``/``.csv``/``.json``),
merged from every raw result and never edited: one row per environment and
machine."""
import csv
import io
import json
import warnings
from collections import Counter
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .fileio import write_json_atomic, write_text_atomic
from .markdown import table
from .rawresult import (VERDICTS, NoUsableResults, RawResultWarning,
                        current_verdict, decide_verdict, load_raw_dirs,
                        machine_label)
from .stats import wilson_interval


def merge_records(records, pool=False, left_out=None):
    """Merge raw records into table rows.

    One row per environment and machine. Records of the same environment
    from different machines stay separate rows, labelled by machine. Two
    records of one environment from the same machine (two copies of one
    result gathered twice) are a conflict unless identical: the newer one
    is kept and the other named in a warning.
    """
    by_key = {}
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


def pool_records(records):
    """Pool one environment's records from several machines into one, but
    only where the Python build and every package version match; otherwise
    they stay apart, with a warning that says why."""
    by_env = {}
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


def make_row(record, show_machine=False):
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
    }


def last_failed_attempt(record):
    """The attempt that measured nothing after the row's results were
    taken, as {when, why}, or None: the row stays, and says so."""
    attempts = record.get("attempts") or []
    if not attempts or attempts[-1]["when"] <= record.get("finished", ""):
        return None
    return {"when": attempts[-1]["when"], "why": attempts[-1]["why"]}


def asked_cell(row):
    """The requirement set as asked (a range, a direct reference), beside
    the versions it resolved to."""
    return " ".join(row.get("requirements") or ()) or "–"


def reason_cell(row):
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


def row_sort_key(row):
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


def requested_version(row, name):
    """The version the row's requirements pin ``name`` to (``==``), or
    None."""
    for text in row.get("requirements", []):
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) == name:
            return next((s.version for s in requirement.specifier
                         if s.operator == "=="), None)
    return None


def package_version(row, name):
    """A package's installed version, else the one its requirements pin,
    else None."""
    return row["packages"].get(name) or requested_version(row, name)


def package_cell(row, name):
    """A package's installed version; for an environment that was never
    built, the version it asked for (``==X``); else a dash."""
    installed = row["packages"].get(name)
    if installed:
        return installed
    requested = requested_version(row, name)
    return f"=={requested}" if requested else "–"


def target_version(row):
    """The version of the row's CUDA target: installed, else requested."""
    return package_version(row, row["target"]) or "?"


def version_or_zero(text):
    try:
        return Version(text)
    except (InvalidVersion, TypeError):
        return Version("0")


def column_key(row):
    return (row["target"], version_or_zero(target_version(row)))


def python_minor(row):
    text = row["python"] or row["env"].split("-")[0][2:]
    return ".".join(text.split(".")[:2])


def format_rate(row):
    if row["failure_rate"] is None:
        return "–"
    return f"{100 * row['failure_rate']:.1f}%"


def format_ci(row):
    if not row["runs"]:
        return "–"
    low, high = row["ci95"]
    return f"{100 * low:.1f}–{100 * high:.1f}%"


TABLE_COLUMNS = ("Python", "target", "numba", "numba-cuda", "numpy", "asked",
                 "sim", "runs", "failures", "other", "hung", "rate", "95% CI",
                 "launch s: median / p95 / max", "verdict", "reason")


def table_cells(row):
    packages = row["packages"]
    return (row["python"],
            row["target"],
            package_cell(row, "numba"),
            package_cell(row, "numba-cuda"),
            packages.get("numpy", "–"),
            asked_cell(row),
            "on" if row["sim"] else "off",
            str(row["runs"]), str(row["failures"]),
            str(row["other_errors"]), str(row["hangs"]),
            format_rate(row), format_ci(row),
            format_launch(row.get("launch_seconds")), row["verdict"],
            reason_cell(row))


def format_launch(record):
    """One cell: ``median / p95 / max s`` of the launch-time workload, with
    the launches past its limit; a dash where it was not measured."""
    if not record or not record.get("n"):
        return "–" if not record or not record.get("error") else \
            f"not measured: {record['error']}"[:120]
    text = (f"{record['median']:.2f} / {record['p95']:.2f} / "
            f"{record['max']:.2f}")
    if record.get("past_limit"):
        text += (f" ({record['past_limit']} of {record['n']} past "
                 f"{record['limit']:g} s)")
    return text


def with_suite_column(rows, columns, cells):
    """The columns and cells with a leading ``suite`` column where the rows
    come from more than the MWE's suite."""
    if all(row.get("suite", "mwe") == "mwe" for row in rows):
        return columns, cells
    return ("suite", *columns), lambda row: (row.get("suite", "mwe"),
                                             *cells(row))


def with_patch_column(rows, columns, cells):
    """The columns and cells with a ``patch`` column after the target's
    versions where some row ran under a patch."""
    if not any(row.get("patch") for row in rows):
        return columns, cells
    at = columns.index("sim")
    return ((*columns[:at], "patch", *columns[at:]),
            lambda row: (*cells(row)[:at], row.get("patch") or "none",
                         *cells(row)[at:]))


def render_markdown(rows, provenance, columns=TABLE_COLUMNS, cells=table_cells):
    columns, cells = with_suite_column(
        rows, *with_patch_column(rows, columns, cells))
    lines = ["# Failure rates", "",
             f"Generated {provenance['generated']} by `{provenance['command']}` "
             f"from {provenance['raw_files']} raw result files. "
             f"Machine(s): {provenance['machines']}. Python builds: "
             f"{provenance['python_builds']}.", "",
             "A *run* is one execution of one MWE test; *failures* are runs "
             "that failed with the race's `AttributeError`; *other* are runs "
             "that failed any other way; *hung* are runs past the timeout "
             "(a row whose only failures are hangs is `hung`, never the "
             "race). *asked* is the requirement set as written; the version "
             "columns are what it resolved to. The interval is Wilson's. "
             "A version written `==X` is what an environment that was never "
             "built asked for.", "",
             f"Verdicts: {verdict_counts(rows)}.", "",
             *left_out_lines(provenance.get("left_out")),
             *table(columns, (cells(row) for row in rows))]
    return "\n".join(lines) + "\n"


def verdict_counts(rows):
    counts = Counter(row["verdict"] for row in rows)
    return ", ".join(f"{counts[verdict]} {verdict}" for verdict in VERDICTS
                     if counts[verdict]) or "none"


def left_out_lines(left_out):
    """Markdown lines naming each raw file left out of the tables, with
    the reason, so that a reader knows a row is missing."""
    if not left_out:
        return []
    return [f"**Left out: {len(left_out)} raw file(s)**, so their rows are "
            f"missing:", "", *(f"- `{item['path']}`: {item['reason']}"
                               for item in left_out), ""]


def render_csv(rows):
    stream = io.StringIO()
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["env", "suite", "python", "target", "numba", "numba_cuda", "numpy",
                     "sim", "runs", "failures", "other_errors", "hangs",
                     "failure_rate", "ci95_low", "ci95_high", "verdict",
                     "reason", "seconds", "concurrency", "machine",
                     "launch_n", "launch_median", "launch_p95", "launch_max",
                     "launch_past_limit", "install_way", "asked",
                     "last_attempt_failed", "patch"])
    for row in rows:
        packages = row["packages"]
        writer.writerow([row["env"], row.get("suite", "mwe"), row["python"], row["target"],
                         packages.get("numba", ""), packages.get("numba-cuda", ""),
                         packages.get("numpy", ""), int(row["sim"]), row["runs"],
                         row["failures"], row["other_errors"], row["hangs"],
                         "" if row["failure_rate"] is None else row["failure_rate"],
                         row["ci95"][0], row["ci95"][1], row["verdict"],
                         row["reason"], row["seconds"], row["concurrency"],
                         row["machine"], *launch_fields(row),
                         row.get("resolution_way") or "", asked_cell(row),
                         (row.get("last_attempt") or {}).get("why", ""),
                         row.get("patch") or ""])
    return stream.getvalue()


def launch_fields(row):
    launch = row.get("launch_seconds") or {}
    return [launch.get(key, "") if launch.get(key) is not None else ""
            for key in ("n", "median", "p95", "max", "past_limit")]


def summarize_machines(records):
    seen = {}
    for _, record in records:
        machine = record.get("machine") or {}
        seen.setdefault(machine_label(record), machine)
    return "; ".join(
        f"{label} ({m.get('os', '?')}, {m.get('cores', '?')} cores)"
        for label, m in sorted(seen.items())) or "none"


def write_tables(raw_dirs, out_dir, command, pool=False, left_out=None):
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
    write_text_atomic(out_dir / "failure_rates.md",
                      render_markdown(rows, provenance))
    return rows, records
