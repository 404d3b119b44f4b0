"""The candidate fixes side by side: each patch of the axis against the
unpatched releases, in one table, from the raw rows and one interleaved
launch-time run.

``--launches`` first times them in turn (``racematrix.fix_launches``,
``fix_launch_time.json``). The table reads the raw rows and that file
and writes ``fix_compare.md`` and ``fix_compare.json``: race failures on the releases with the race, launch
time against the reference release (same Python, same run), CuBIE's
``solve_ivp``, numba-cuda's own tests, the semantics suite's cases that
differ from the unpatched release, and the Pythons each was run on.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from .errors import BadInput
from .fileio import write_json_atomic, write_text_atomic
from .fix_launches import LAUNCH_FILE, LAUNCH_LIMIT, NONE, run_launches
from .provenance import now_iso, stamp
from .rawresult import load_raw_dirs

# Issue 28's goals for a fix: launch time against the reference release
# (median and p95 ratios, same Python, interleaved), and the MWE runs of
# every base without a race failure.
MEDIAN_GOAL = 1.2
P95_GOAL = 1.5
RACE_FREE_RUNS = 1000
# -- the table -----------------------------------------------------------

def row_base(record) -> tuple[str, str]:
    """(package, version) of the CUDA target a row ran on."""
    target = record.get("target", "numba")
    return target, record.get("packages", {}).get(target, "?")


def row_patch(record) -> str:
    return (record.get("patch") or {}).get("name") or NONE


def race_by_base(records) -> dict:
    """Per patch, per base release: MWE runs, race failures, other
    failures and hangs, and the Pythons, over every simulator row that
    ran."""
    mwe = [r for r in records if r.get("suite", "mwe") == "mwe"
           and r.get("sim") and r.get("runs")]
    found = {}
    for r in mwe:
        base = row_base(r)
        entry = found.setdefault(row_patch(r), {}).setdefault(
            f"{base[0]} {base[1]}", {"runs": 0, "failures": 0, "other": 0,
                                     "hangs": 0, "pythons": []})
        entry["runs"] += r.get("runs", 0)
        entry["failures"] += r.get("failures", 0)
        entry["other"] += r.get("other_errors", 0)
        entry["hangs"] += r.get("hangs", 0)
        python = ".".join(r["python"].split(".")[:2])
        if python not in entry["pythons"]:
            entry["pythons"] = sorted(entry["pythons"] + [python])
    return found


def client_rows(records, suite) -> dict:
    """Per patch, the rows of ``suite`` by (spec text, Python X.Y)."""
    found = {}
    for r in records:
        if r.get("suite") != suite:
            continue
        key = (" ".join(r["spec"]["requirements"]),
               ".".join(r["python"].split(".")[:2]))
        found.setdefault(row_patch(r), {})[key] = r
    return found


def cubie_solve(records) -> dict:
    """Per patch and spec: CuBIE's solve_ivp median and largest seconds,
    race failures and hangs."""
    found = {}
    for patch, rows in client_rows(records, "cubie").items():
        for (spec, python), r in rows.items():
            summary = r.get("summary", {})
            solve = summary.get("test_seconds", {}).get("test_solve_ivp", {})
            # A solve skipped once the suite's budget was spent counts 0 s
            # in the durations: the median is then no figure.
            ran = sum(counts.get("pass", 0) + counts.get("other", 0) +
                      counts.get("target", 0) + counts.get("hang", 0)
                      for name, counts in summary.get("tests", {}).items()
                      if name.startswith("test_solve_ivp"))
            whole = ran == solve.get("n", 0)
            found.setdefault(patch, {})[f"{spec} (py{python})"] = {
                "solve_median": solve.get("median") if whole else None,
                "solve_max": solve.get("max"), "solves": solve.get("n", 0),
                "solves_ran": ran,
                "runs": r.get("runs", 0), "failures": r.get("failures", 0),
                "hangs": r.get("hangs", 0), "verdict": r.get("verdict")}
    return found


def test_key(name: str) -> str:
    """A test's name without the environment's folder: a module skipped
    whole is named by its dotted path under the environment
    (``.nox.<env>.lib.python3.12.site-packages.numba_cuda...test_analysis``)
    in one row and by its module alone in another."""
    if ".site-packages." in name:
        return name.rsplit(".", 1)[-1]
    return name


def test_outcomes(record) -> dict:
    """Each test's outcome in a row (the most frequent where repeated)."""
    tests = record.get("summary", {}).get("tests", {})
    return {test_key(name): max(counts, key=counts.get)
            for name, counts in tests.items() if any(counts.values())}


def numba_cuda_tests(records) -> dict:
    """Per patch and spec: passed / failed / skipped of numba-cuda's own
    tests, and the tests whose outcome differs from the unpatched row."""
    rows = client_rows(records, "numba-cuda-tests")
    found = {}
    for patch, by_key in rows.items():
        for key, r in by_key.items():
            failed = r.get("failures", 0) + r.get("other_errors", 0) + \
                r.get("hangs", 0)
            entry = {"passed": r.get("runs", 0) - failed, "failed": failed,
                     "skipped": r.get("skips", 0), "differ": None}
            reference = rows.get(NONE, {}).get(key)
            if patch != NONE and reference is not None:
                mine, theirs = test_outcomes(r), test_outcomes(reference)
                entry["differ"] = sorted(
                    name for name in mine.keys() | theirs.keys()
                    if mine.get(name) != theirs.get(name))
            found.setdefault(patch, {})[f"{key[0]} (py{key[1]})"] = entry
    return found


def semantics_differences(records) -> dict:
    """Per patch and spec: the semantics suite's cases whose outcome or
    observed value differs from the unpatched row of the same spec and
    Python, each with both observations; the unpatched rows' own failures
    are listed under ``none``."""
    rows = client_rows(records, "semantics")
    found = {}
    for patch, by_key in rows.items():
        for key, r in by_key.items():
            name = f"{key[0]} (py{key[1]})"
            mine = test_outcomes(r)
            observed = r.get("summary", {}).get("observed", {})
            if patch == NONE:
                found.setdefault(NONE, {})[name] = {
                    "cases": len(mine), "differ": [
                        {"case": case, "outcome": outcome,
                         "observed": observed.get(case)}
                        for case, outcome in sorted(mine.items())
                        if outcome != "pass"]}
                continue
            reference = rows.get(NONE, {}).get(key)
            if reference is None:
                continue
            theirs = test_outcomes(reference)
            their_observed = reference.get("summary", {}).get("observed", {})
            differ = [{"case": case, "outcome": mine.get(case),
                       "reference_outcome": theirs.get(case),
                       "observed": observed.get(case),
                       "reference_observed": their_observed.get(case)}
                      for case in sorted(mine.keys() | theirs.keys())
                      if mine.get(case) != theirs.get(case)
                      or observed.get(case) != their_observed.get(case)]
            found.setdefault(patch, {})[name] = {"cases": len(mine),
                                                 "differ": differ}
    return found


def launch_by_patch(launch_runs: dict) -> dict:
    """Per patch, per Python: each release's launch-time ratios to the
    reference of that Python's interleaved run."""
    found = {}
    for python, run in sorted(launch_runs.items()):
        for row in run["rows"]:
            if row["label"] == run["reference"]:
                continue
            found.setdefault(row["patch"], {}).setdefault(python, []).append(
                {key: row[key] for key in (
                    "release", "n", "median", "p95", "past_limit",
                    "median_ratio", "p95_ratio", "median_ratio_bound",
                    "p95_ratio_bound", "race_errors", "error")})
    return found


def compare(records, launch_runs) -> dict:
    """The comparison's data: every section, by patch."""
    return {"race": race_by_base(records),
            "launch": launch_by_patch(launch_runs),
            "launch_runs": {python: {key: run.get(key) for key in (
                "reference", "rounds", "limit", "finished", "seconds",
                "load_per_round", "missing", "machine", "environments")}
                for python, run in launch_runs.items()},
            "cubie": cubie_solve(records),
            "numba_cuda_tests": numba_cuda_tests(records),
            "semantics": semantics_differences(records)}


def patches_in(data) -> list[str]:
    names = set()
    for section in ("race", "launch", "cubie", "numba_cuda_tests",
                    "semantics"):
        names |= set(data[section])
    return [NONE] + sorted(names - {NONE})


def seconds_text(value, is_bound=False, digits=2) -> str:
    if value is None:
        return "–"
    return f"{'>= ' if is_bound else ''}{value:.{digits}f}"


def short_spec(key: str) -> str:
    """``cubie==0.14.2 numba-cuda==0.30.4 (py3.12)`` -> ``cubie 0.14.2,
    numba-cuda 0.30.4``: the pins, without the numba beside them."""
    pins = [word.replace("==", " ") for word in key.split()
            if "==" in word and not word.startswith("numba==")]
    return ", ".join(pins) or key


def race_cell(entry) -> str:
    if not entry:
        return "–"
    text = f"{entry['failures']}/{entry['runs']}"
    extra = [f"{entry[k]} {k}" for k in ("other", "hangs") if entry[k]]
    return text + (f" ({', '.join(extra)})" if extra else "")


def launch_cell(entries) -> str:
    """The worst release's median and p95 ratios over one Python's run."""
    if not entries:
        return "–"
    def worst(key):
        values = [e for e in entries if e[f"{key}_ratio"] is not None]
        if not values:
            return "–"
        top = max(values, key=lambda e: e[f"{key}_ratio"])
        return (f"{'>= ' if top[f'{key}_ratio_bound'] else ''}"
                f"{top[f'{key}_ratio']:.2f}x ({top['release']})")
    return f"{worst('median')} / {worst('p95')}"


def render(data, command) -> str:
    patches = patches_in(data)
    # The bases some patch ran on: the unpatched rows of the others say
    # nothing about a fix.
    bases = sorted({base for patch, by in data["race"].items()
                    if patch != NONE for base in by})
    pythons = sorted({p for by in data["launch"].values() for p in by})
    lines = ["# Candidate fixes compared", "",
             f"Written by `{command}` on {now_iso()} from the raw rows and "
             f"`{LAUNCH_FILE}`; every figure is a row's or a launch's.", "",
             "Race failures: race-signature failures / MWE runs over every "
             "row of the base (all Pythons). Launch: the worst release's "
             "median / p95 over the reference release's, same Python, "
             "launches taken in turn in one run (`>=`: cut at the limit). "
             "numba-cuda tests: passed / failed / skipped, and the tests "
             "whose outcome differs from the unpatched row. Semantics: the "
             "cases that differ from the unpatched release.", ""]
    header = ["patch", *[f"race {b}" for b in bases],
              *[f"launch py{p}" for p in pythons], "CuBIE solve_ivp median",
              "numba-cuda tests", "semantics differ", "Pythons"]
    lines += ["| " + " | ".join(header) + " |",
              "|" + "---|" * len(header)]
    for patch in patches:
        race = data["race"].get(patch, {})
        cells = [patch, *[race_cell(race.get(b)) for b in bases],
                 *[launch_cell(data["launch"].get(patch, {}).get(p))
                   for p in pythons]]
        cubie = data["cubie"].get(patch, {})
        cells.append("; ".join(
            (f"{seconds_text(v['solve_median'])} s" if v["solve_median"]
             is not None else f"{v['solves_ran']} of {v['solves']} solves "
             f"ran, max {seconds_text(v['solve_max'])} s")
            + f" ({short_spec(k)})" for k, v in sorted(cubie.items())) or "–")
        tests = data["numba_cuda_tests"].get(patch, {})
        cells.append("; ".join(
            f"{v['passed']}/{v['failed']}/{v['skipped']}"
            + (f", {len(v['differ'])} differ" if v["differ"] is not None
               else "") + f" ({short_spec(k)})"
            for k, v in sorted(tests.items())) or "–")
        semantics = data["semantics"].get(patch, {})
        differing = sorted({d["case"] for v in semantics.values()
                            for d in v["differ"]})
        cells.append(", ".join(differing) if differing else
                     ("none" if semantics else "–"))
        seen = sorted({p for e in race.values() for p in e["pythons"]})
        cells.append(" ".join(seen) or "–")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Against issue 28's goals", ""]
    for patch in patches:
        if patch == NONE:
            continue
        lines.append(f"- **{patch}**")
        lines += [f"  - {line}" for line in goals(data, patch)]
    lines += ["", "## Launch time, release by release", ""]
    for python, run in sorted(data["launch_runs"].items()):
        loads = run.get("load_per_round") or []
        lines += [f"Python {python}: {run['rounds']} rounds, limit "
                  f"{run['limit']:g} s, against {run['reference']}, "
                  f"finished {run.get('finished')}, load "
                  f"{min(loads, default=0):.1f}-{max(loads, default=0):.1f} "
                  f"(1-minute average, {(run.get('machine') or {}).get('cores')} "
                  f"cores).", ""]
        builds = sorted({e["python_build"] for e in
                         (run.get("environments") or {}).values()})
        if builds:
            lines += [f"Python build: {'; '.join(builds)}; each "
                      f"environment's numba, numba-cuda, llvmlite and numpy "
                      f"in `{LAUNCH_FILE}`.", ""]
        lines += ["| patch | release | n | median s | p95 s | median ratio "
                  "| p95 ratio | past limit | race errors |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for patch in patches:
            for e in data["launch"].get(patch, {}).get(python, []):
                lines.append(
                    f"| {patch} | {e['release']} | {e['n']} | "
                    f"{seconds_text(e['median'], e['median_ratio_bound'], 3)}"
                    f" | {seconds_text(e['p95'], e['p95_ratio_bound'], 3)} | "
                    f"{seconds_text(e['median_ratio'], e['median_ratio_bound'])}"
                    f" | {seconds_text(e['p95_ratio'], e['p95_ratio_bound'])} "
                    f"| {e['past_limit']} | {e['race_errors']} |")
        for earlier in data.get("launch_earlier", {}).get(python, []):
            lines.append("")
            lines.append("An earlier run on this Python, kept in "
                         f"`{LAUNCH_FILE}`: " + "; ".join(
                             f"{patch} {launch_cell(by[python])}"
                             for patch, by in sorted(earlier.items())) +
                         " (worst median / p95 ratio).")
        for why in run.get("missing") or []:
            lines.append(f"\nNot timed: {why}.")
        lines.append("")
    lines += ["## Semantics: the cases that differ", "",
              "Each difference once, with the releases and Pythons it was "
              "seen on.", ""]
    for patch in patches:
        grouped = {}
        for spec, v in sorted(data["semantics"].get(patch, {}).items()):
            for d in v["differ"]:
                key = (d["case"], d["outcome"], d.get("reference_outcome"),
                       d["observed"], d.get("reference_observed"))
                grouped.setdefault(key, []).append(spec)
        for (case, outcome, ref_outcome, observed, ref_observed), specs \
                in sorted(grouped.items()):
            where = "; ".join(specs)
            if patch == NONE:
                lines.append(f"- unpatched, `{case}` {outcome}: {observed} "
                             f"({where})")
            else:
                lines.append(f"- {patch}, `{case}` {outcome} (unpatched "
                             f"{ref_outcome}): observed {observed}; "
                             f"unpatched {ref_observed} ({where})")
    lines += ["", "## CuBIE", "",
              "| patch | spec | solve_ivp median s | max s | solves ran | "
              "race failures / runs | hangs |", "|---|---|---|---|---|---|---|"]
    for patch in patches:
        for spec, v in sorted(data["cubie"].get(patch, {}).items()):
            lines.append(f"| {patch} | {spec} | "
                         f"{seconds_text(v['solve_median'])} | "
                         f"{seconds_text(v['solve_max'])} | "
                         f"{v['solves_ran']}/{v['solves']} | {v['failures']}/"
                         f"{v['runs']} | {v['hangs']} |")
    return "\n".join(lines) + "\n"


def goals(data, patch) -> list[str]:
    """Where ``patch`` stands against the goals, one line each: the bases
    race-free in ``RACE_FREE_RUNS`` runs or more on every Python it ran
    on, and its worst launch-time ratios against the goals."""
    lines = []
    race = data["race"].get(patch, {})
    for base, entry in sorted(race.items()):
        free = entry["failures"] == 0 and entry["other"] == 0 and \
            entry["hangs"] == 0
        lines.append(f"{base}: {entry['failures']} race failures in "
                     f"{entry['runs']} runs (Pythons "
                     f"{' '.join(entry['pythons'])})"
                     + (" – race-free" if free and entry["runs"] >=
                        RACE_FREE_RUNS else ""))
    for python, entries in sorted(data["launch"].get(patch, {}).items()):
        for key, goal in (("median", MEDIAN_GOAL), ("p95", P95_GOAL)):
            values = [e[f"{key}_ratio"] for e in entries
                      if e[f"{key}_ratio"] is not None]
            if not values:
                continue
            worst = max(values)
            bound = any(e[f"{key}_ratio_bound"] for e in entries)
            lines.append(f"launch py{python}: worst {key} "
                         f"{'>= ' if bound else ''}{worst:.2f}x "
                         f"(goal <= {goal}x: "
                         f"{'met' if worst <= goal and not bound else 'not met'})")
    return lines


def run_table(args, out_dir, command) -> dict:
    records = [data for _, data in load_raw_dirs(args.raw)]
    saved = _read_json(Path(args.launch_file), {})
    data = compare(records, saved.get("runs", {}))
    data["launch_earlier"] = {python: [launch_by_patch({python: run})
                                       for run in runs]
                              for python, runs in saved.get(
                                  "earlier", {}).items()}
    write_json_atomic(Path(out_dir) / "fix_compare.json",
                      {**data, **stamp(command)})
    write_text_atomic(Path(out_dir) / "fix_compare.md", render(data, command))
    return data


def _read_json(path, default):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def parse_args(argv, results_dir):
    parser = argparse.ArgumentParser(prog="nox -s fix_compare --")
    parser.add_argument("--launches", action="store_true",
                        help="time launches first (else only the table)")
    parser.add_argument("--python", default="3.12",
                        help="the Python X.Y of the launch-time run")
    parser.add_argument("--reference", default="0.24.0",
                        help="the numba-cuda release launches are compared "
                             "with")
    parser.add_argument("--releases", nargs="+",
                        default=["0.26.0", "0.28.2", "0.30.4"])
    parser.add_argument("--patches", nargs="*",
                        default=["private-globals", "launch-scoped",
                                 "unlocked-swap"])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--limit", type=float, default=LAUNCH_LIMIT)
    parser.add_argument("--raw", nargs="+", default=[f"{results_dir}/raw"],
                        help="folders of raw rows (default: the results' raw/)")
    parser.add_argument("--out", default=results_dir,
                        help="where the table goes (default: the results "
                             "folder)")
    args = parser.parse_args(argv)
    args.launch_file = f"{results_dir}/{LAUNCH_FILE}"
    if args.rounds < 1 or args.limit <= 0:
        parser.error("--rounds must be at least 1 and --limit positive")
    return args


def run(argv, envdir, results_dir, log, command) -> dict:
    """The session: an interleaved launch-time run where asked, then the
    table."""
    try:
        args = parse_args(argv, results_dir)
    except SystemExit as stop:
        if stop.code == 0:  # --help
            return {}
        raise BadInput("see `nox -s fix_compare -- --help`") from stop
    if args.launches:
        run_launches(args, envdir, results_dir, log, command)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    return run_table(args, args.out, command)
