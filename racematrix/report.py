"""REPORT.md and the upstream texts: one plain structure (``build``), templates."""
from __future__ import annotations

import json
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .bisect_files import load_bisects, rerender_bisects
from .envspec import EnvSpec, project_config
from .errors import BadInput, OneLineArgumentParser
from .fileio import folder_problem, write_text_atomic
from .markdown import render
from .suites import Patch, load_matrix, load_patches
from .plots import plot_heatmap
from .rawresult import NoUsableResults, RawResult, RawResultWarning
from .tables import grid, python_minor, target_version, version_key, write_tables

Data = dict[str, Any]
PROJECT = Path(__file__).resolve().parent.parent
CONTROL_TESTS = {"trigger": "test_syncthreads_trigger",
                 "kernel_module": "test_control_allocator_in_kernel_module"}
RACE_RATE_LABEL = re.compile(r"^numba-cuda-(?:(?P<main>main)"
                             r"(?:-(?P<commit>[0-9a-f]+))?|[\d.]+)(?P<change>\+series)?")


def load_json(path: str | Path) -> Any:
    """A result file the report quotes, or None where it was not made."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        if not isinstance(error, FileNotFoundError):
            warnings.warn(f"left out {path}: not readable JSON ({error})",
                          RawResultWarning, stacklevel=2)
    return None


def declared_patches() -> dict[str, Patch]:
    return load_patches(project_config(PROJECT), PROJECT)


def newest(items: Any, key: str = "version", **match: Any) -> Any:
    """The item of the highest version at ``key`` among those matching."""
    found = [i for i in items if all(i.get(k) == v for k, v in match.items())]
    return max(found, key=lambda i: version_key(i[key]), default=None)


def bisect_entry(data: Data) -> Data:
    """A bisect file; on time, its sides' and newest release's median launch."""
    timed = {t["version"]: t for t in data["tested"] if t.get("n")}
    ends = data["boundary"] or {"before": None, "after": None}
    return {**data, "end": timed.get((data["releases"] or [None])[-1]), **{
        side: found and {**timed.get(found["version"], {}), **found}
        for side, found in ends.items()}}


def status(mwe: list[Data], bisects: list[Data]) -> Data:
    """Per target: where the bisects placed the fix, the race before and after."""
    ran = [r for r in mwe if r["verdict"] in ("reproduced", "not-reproduced")]
    targets = {}
    for target in sorted({r["target"] for r in ran}):
        mine = [r for r in ran if r["target"] == target]
        racy = [target_version(r) for r in mine if r["verdict"] == "reproduced"]
        flips = [b for b in bisects if b["package"] == target and b["after"]]
        fixed_in = min((version_key(b["after"]["version"]) for b in flips),
                       default=None)
        before = [r for r in mine if fixed_in
                  and version_key(target_version(r)) < fixed_in]
        fixed = [r for r in mine if fixed_in and r not in before]
        targets[target] = {
            "environments": len(mine), "reproduced": len(racy),
            "newest_racy": max(racy, key=version_key, default=None),
            "before_environments": len(before), "before_reproduced": sum(
                r["verdict"] == "reproduced" for r in before),
            "before_releases": sorted({target_version(r) for r in before},
                                      key=version_key),
            "fixed_runs": sum(r["runs"] for r in fixed),
            "fixed_failures": sum(r["failures"] for r in fixed),
            "fixed_between": sorted({(b["before"]["version"],
                                      b["after"]["version"]) for b in flips}),
            "bisect_pythons": sorted({b["python"] for b in flips},
                                     key=version_key),
            "released": {v for b in flips for v in b["releases"]}}
    return targets


def evidence(records: list[Data]) -> Data:
    """The MWE's controls, over the records that reproduced the race."""
    found: dict[str, Counter] = {name: Counter()
                                 for name in (*CONTROL_TESTS, "failing_threads")}
    for record in (r for r in records if r["verdict"] == "reproduced"
                   and r.get("suite", "mwe") == "mwe"):
        summary = record.get("summary", {})
        for name, test in CONTROL_TESTS.items():
            cases = [c for n, c in summary.get("tests", {}).items()
                     if n.split("[")[0] == test]
            found[name]["envs"] += bool(cases)
            for c in cases:
                found[name].update(runs=sum(c.values()) - c["skip"],
                                   target=c["target"], other=c["other"] + c["hang"])
        found["failing_threads"].update(
            "early" if t["index"] >= t["n_threads"] else "working"
            for t in summary.get("failing_threads", []))
    return found


def launch_runs(data: Data | None) -> list[Data]:
    """Each Python's run of launches taken in turn (oldest Python first), with
    its reference's row (``ref``) and its newest release's with a ratio."""
    found, runs = [], (data or {}).get("runs") or {}
    for run in (runs[python] for python in sorted(runs, key=version_key)):
        envs = run["environments"]
        rows = [{**r, "patch": None if r["patch"] == "none" else r["patch"],
                 "numba": envs.get(r["label"], {}).get("packages", {})
                 .get("numba")} for r in run["rows"]]
        plain = [r for r in rows if not r["patch"]]
        found.append({**run, "rows": rows,
                      "ref": newest(plain, "release", release=run["reference"]),
                      "top": newest([r for r in plain if r.get("median_ratio")
                                     and r["release"] != run["reference"]],
                                    "release")})
    return found


def lock_share(timed: Data | None, name: str) -> Data | None:
    """The share of the rise over the reference patch ``name`` takes away."""
    rows = (timed or {}).get("rows") or []
    row = newest(rows, "release", patch=name)
    plain = row and newest(rows, "release", patch=None, release=row["release"])
    ref = timed and newest(rows, "release", label=timed["reference"])
    if not (plain and ref):
        return None
    rise = plain["median"] - ref["median"]
    exact = rise > 0 and not any(r["median_bound"] for r in (row, plain, ref))
    return {"with": row, "without": plain, "reference": ref, "share":
            (plain["median"] - row["median"]) / rise if exact else None}


def solve(record: Data) -> Data | None:
    """``solve_ivp``'s seconds; no median where solves were skipped (a bound)."""
    summary = record.get("summary") or {}
    data = next((v for k, v in (summary.get("test_seconds") or {}).items()
                 if "solve" in k), None)
    skipped = sum(c["skip"] for n, c in (summary.get("tests") or {}).items()
                  if "solve" in n)
    return data and {"median": None if skipped else data["median"],
                     "max": data["max"], "n": data["n"] - skipped,
                     "skipped": skipped}


def cubie_price(found: list[Data]) -> Data:
    """CuBIE's newest release on the newest racy and fixed numba-cuda."""
    mine = [c for c in found if c["numba_cuda"] and c["solve"]]
    top = (newest(mine, "cubie") or {}).get("cubie")
    before, after = (newest(mine, "numba_cuda", cubie=top, patch=None,
                            verdict=verdict)
                     for verdict in ("reproduced", "not-reproduced"))
    medians = [side and side["solve"]["median"] for side in (before, after)]
    return {"cubie": top, "before": before, "after": after,
            "ratio": medians[1] / medians[0] if all(medians) else None,
            "with": [c for c in mine if c["cubie"] == top and c["patch"]
                     and after and c["numba_cuda"] == after["numba_cuda"]]}


def spec_text(record: Data) -> str:
    return " ".join(record["spec"]["requirements"])


def cubie(records: list[Data]) -> list[Data]:
    """CuBIE's rows: versions, whose simulator, the race, ``solve_ivp``."""
    found = []
    for record in (r for r in records if r.get("suite") == "cubie"):
        settings = record.get("settings", {})
        known = {**settings, **record.get("packages", {})}
        found.append({
            "spec": spec_text(record), "solve": solve(record),
            "patch": record["spec"].get("patch"), "cubie": known.get("cubie"),
            "numba_cuda": known.get("numba-cuda"), "numba": known.get("numba"),
            "simulator": "vendored" if "vendored" in settings.get(
                "cuda_module", "") else "numba-cuda" if known.get("numba-cuda")
            else "numba", **{k: record[k] for k in (
                "python", "verdict", "runs", "failures", "hangs",
                "other_errors", "skips")}})
    return sorted(found, key=lambda c: (version_key(c["cubie"]), version_key(
        c["numba_cuda"]), c["patch"] or ""))


def own_tests(records: list[Data]) -> list[Data]:
    """numba-cuda's own tests per release and patch, and what a patch changes."""
    def release(record: Data) -> tuple:
        return python_minor(record), record["packages"].get("numba-cuda")
    mine = sorted((r for r in records if r.get("suite") == "numba-cuda-tests"),
                  key=lambda r: (release(r), r["spec"].get("patch") or ""))
    plain = {release(r): outcomes(r) for r in mine if not r["spec"].get("patch")}
    found = []
    for record in mine:
        (python, version), patch = release(record), record["spec"].get("patch")
        base, now = plain.get((python, version)), outcomes(record)
        failed = sum(record[k] for k in ("failures", "other_errors", "hangs"))
        found.append({
            "python": python, "numba_cuda": version, "patch": patch,
            "spec": spec_text(record), "failed": failed,
            "passed": record["runs"] - failed, "skipped": record["skips"],
            "differ": None if patch is None or base is None else sorted(
                n for n in base.keys() | now.keys() if base.get(n) != now.get(n))})
    return found


def outcomes(record: Data) -> dict[str, str]:
    """Each test's most frequent outcome (by module name where skipped whole)."""
    tests = (record.get("summary") or {}).get("tests") or {}
    return {name.rsplit(".", 1)[-1] if "site-packages." in name else name:
            max(counts, key=counts.get)
            for name, counts in tests.items() if any(counts.values())}


def patches(rows: list[Data], described: dict[str, str]) -> list[Data]:
    """Each patch: its description, race failures and runs in the MWE's rows."""
    found = []
    for name in sorted({r["patch"] for r in rows if r["patch"]}):
        mine = [r for r in rows if r["patch"] == name and r["suite"] == "mwe"]
        found.append({"name": name, "description": described.get(name),
                      "environments": len(mine),
                      "pythons": sorted({python_minor(r) for r in mine},
                                        key=version_key),
                      "race_failures": sum(r["failures"] for r in mine),
                      "runs": sum(r["runs"] for r in mine)})
    return found


def proposal(found: list[Data], timed: Data | None) -> Data | None:
    """The patch that never raced with the fastest median launch of the
    newest release in the run in turn (none without that run)."""
    clean = {p["name"]: p for p in found if p["runs"] and not p["race_failures"]}
    rows = [r for r in (timed or {}).get("rows", ()) if r["patch"] in clean]
    if not (timed and rows):
        return None
    top = newest(rows, "release")["release"]
    best = min((r for r in rows if r["release"] == top), key=lambda r: r["median"])
    return {**clean[best["patch"]], "newest": top, "python": timed["python"],
            "without": newest(timed["rows"], "release", release=top,
                              patch=None), "with": best}


def reproducer_runs(data: Data | None) -> Data | None:
    """The reproducers' recorded entries, each one's runs by script name."""
    loads = [load for e in (data or {}).get("entries", ()) for r in e["runs"]
             for load in r["load_average"]]
    return data and {**data, "load": [min(loads), max(loads)] if loads else None,
                     "entries": [{**e, "runs": {r["command"].split()[-1]: r
                                                for r in e["runs"]}}
                                 for e in data["entries"]]}


def regression_test(found: list[Data]) -> list[Data]:
    """The upstream series' ``race_rate`` runs: which numba-cuda, how they ended."""
    shown = []
    for data in found:
        named = RACE_RATE_LABEL.match(data["label"])
        part = named.groupdict() if named else {}
        shown.append({
            **data, **data["counts"], "commit": part.get("commit"),
            "main": bool(part.get("main")), "change": bool(part.get("change")),
            "release": next((p.split("==", 1)[1] for p in data["packages"]
                             if p.startswith("numba-cuda==")), None),
            "python": ".".join(data["python"].split()[0].split(".")[:2]),
            "fresh": len(data["processes"]) == data["runs"],
            "test": data["test"].rsplit(".", 1)[-1]})
    return sorted(shown, key=lambda r: (
        r["main"], version_key(r["release"]), r["fresh"], r["change"],
        version_key(r["python"])))


def build(rows: list[Data], records: list[Data], provenance: Data,
          bisect_dir: str | Path, out_dir: str | Path) -> Data:
    """The report's whole structure from the rows, records and the files
    recorded in ``bisect_dir`` and ``out_dir``."""
    mwe = [r for r in rows if r["suite"] == "mwe" and not r["patch"]]
    race, time = ([bisect_entry(b) for b in load_bisects(bisect_dir, metric)]
                  for metric in ("failure", "launch-time"))
    described = {name: p.description for name, p in declared_patches().items()}
    # the price: the bisect on time of the newest Python that timed its end,
    # and the run in turn of its Python (else of the newest)
    cost = newest([b for b in time if b["end"]], "python")
    runs = launch_runs(load_json(Path(out_dir) / "fix_launch_time.json"))
    timed = next((r for r in runs if r["python"] == (cost or {}).get("python")),
                 runs[-1] if runs else None)
    found = patches(rows, described)
    clients = cubie(records)
    chosen = proposal(found, timed)
    regression = regression_test([rate for path in sorted(
        (PROJECT / "patches" / "upstream" / "race_rate").glob("*.json"))
        if (rate := load_json(path))])
    # a patch taking out one part of a fix says so in its description
    attribution = sorted(name for name, text in described.items()
                         if text.startswith("attribution"))
    figures = load_json(Path(out_dir) / "mwe_figures.json")
    return {
        "provenance": provenance,
        "verdicts": dict(Counter(r["verdict"] for r in rows)),
        "grid": grid(rows),
        "skipped": Counter(r["reason"] for r in mwe
                           if r["verdict"] == "skipped"),
        "last_attempts": [r for r in rows if r["last_attempt"]],
        "error": next((m for r in records if (m := (r.get("summary") or {})
                       .get("first_target_message"))), None),
        "status": status(mwe, race),
        "bisects": race, "time_bisects": time, "price": cost,
        "cubie": clients, "cubie_price": cubie_price(clients),
        "own_tests": own_tests(records), "patches": found,
        "proposal": chosen, "interleaved": timed,
        "slowdown": [r for r in runs if r["top"]],
        "regression_test": regression,
        "attribution": attribution,
        "lock_share": {name: lock_share(timed, name) for name in attribution},
        # the changes the upstream texts name in words, not by patch name
        "upstream_changes": [p["name"] for p in [chosen] if p] + attribution,
        "evidence": evidence(records),
        "reproducers": reproducer_runs(
            load_json(Path(out_dir) / "reproducers.json")),
        "figures": figures,
        "commands": [b["provenance"]["command"] for b in race + time]
        + ([figures["command"]] if figures else []),
        "slowdown_source": (PROJECT / "mwe" / "bug_slowdown.py").read_text(),
    }


def build_report(raw_dirs: list, out_dir: str | Path, bisect_dir: str | Path,
                 command: str, plot: bool = True,
                 configured: Iterable[EnvSpec] = ()
                 ) -> tuple[list[Data], list[tuple[Any, RawResult]]]:
    """Every report file in ``out_dir`` (``configured``: see not_run)."""
    out_dir = Path(out_dir)
    rows, records = write_tables(raw_dirs, out_dir, command, configured)
    rerender_bisects(bisect_dir)
    provenance = load_json(out_dir / "failure_rates.json")["provenance"]
    model = build(rows, [dict(r) for _, r in records], provenance,
                  bisect_dir, out_dir)
    write_text_atomic(out_dir / "REPORT.md", render("REPORT.md", **model))
    for template in (Path(__file__).parent / "templates/upstream").glob("*.j2"):
        write_text_atomic(out_dir / "upstream" / template.stem,
                          render(f"upstream/{template.stem}", **model))
    if plot:
        plot_heatmap(model["grid"], out_dir / "failure_rates.png")
    return rows, records


def main(argv: list[str] | None = None) -> None:
    """``nox -s report``."""
    home = os.environ.get("RACEMATRIX_RESULTS", "results")
    own = [f"{home}/raw"]  # its configured rows never recorded: not run
    parser = OneLineArgumentParser(prog="nox -s report --", label="report",
                                   help_hint="nox -s report -- --help")
    parser.add_argument("--raw", nargs="+", action="extend", help="raw result "
                        f"folders or files, all merged (default: {own[0]})")
    parser.add_argument("--out", default=home,
                        help="tables and report (default: %(default)s)")
    parser.add_argument("--bisect", default=f"{home}/bisect",
                        help="bisect results (default: %(default)s)")
    try:
        args = parser.parse_args(argv)
        raw = list(dict.fromkeys(args.raw or own))
        missing = [d for d in raw if not Path(d).exists()]
        if problem := folder_problem(args.out) or missing and \
                f"no such folder or file: {', '.join(missing)}":
            raise BadInput(f"report: {problem}")
        warnings.simplefilter("always", RawResultWarning)
        warnings.formatwarning = lambda message, *_: f"warning: {message}\n"
        rows, records = build_report(
            raw, args.out, args.bisect, "nox -s report" + (
                f" -- --raw {' '.join(raw)}" if raw != own else ""),
            configured=[] if raw != own else load_matrix(
                project_config(PROJECT), os.environ, PROJECT).envs())
    except (BadInput, NoUsableResults) as error:
        parser.exit(2, f"{error}\n")
    print(f"report: {len(rows)} rows from {len(records)} raw files -> "
          f"{args.out}/REPORT.md, {args.out}/failure_rates.png")

if __name__ == "__main__":
    main()
