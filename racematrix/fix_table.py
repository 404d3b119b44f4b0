"""The candidate fixes' comparison as Markdown: one table of every patch
(race failures per base, launch time, CuBIE's solve, numba-cuda's tests,
semantics), each patch against issue 28's goals, then the launch times,
semantics differences and CuBIE's solves in detail. Rendered from
``fix_compare.compare``'s data, nothing read here."""
from __future__ import annotations

from .fix_launches import LAUNCH_FILE, NONE
from .provenance import now_iso

# Issue 28's goals for a fix: launch time against the reference release
# (median and p95 ratios, same Python, interleaved), and the MWE runs of
# every base without a race failure.
MEDIAN_GOAL = 1.2
P95_GOAL = 1.5
RACE_FREE_RUNS = 1000


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
