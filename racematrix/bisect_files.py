"""The files of the bisect folder (``results/bisect/``): their names, their
Markdown, which bisect of a search the report shows, and the install
survey's tables. The JSON of each is the source; its ``.md`` is rendered
from it, and can be rendered again at any time."""
import json
import warnings
from pathlib import Path

from packaging.utils import canonicalize_name

from .companions import WAYS, outcomes_by_way
from .fileio import write_json_atomic, write_text_atomic
from .markdown import table
from .race_search import USABLE
from .rawresult import RawResultWarning


def bisect_stem(package, python, sim, start=None, end=None):
    """The file name (without suffix) of a bisect: by package and Python,
    and by range where ``--from`` or ``--to`` narrowed it, so that a
    narrower search never replaces a wider one."""
    stem = f"{package}-py{python}"
    if start or end:
        stem += f"-{start or 'first'}-{end or 'last'}"
    return stem + ("" if sim else "-sim0")


def searched(data):
    """What a bisect file searched: package (PEP 503 name), Python,
    simulator flag and extra requirements. Bisects of different ranges or
    metrics can share it."""
    return (canonicalize_name(str(data.get("package"))), data.get("python"),
            bool(data.get("sim")), tuple(data.get("with") or ()))


def widest_bisects(bisects):
    """Of several bisects of the same package, Python, simulator flag and
    extra requirements, the one over the most releases (the newest among
    equals); others are dropped. For a report that shows one per search."""
    kept = {}
    for data in bisects:
        key = searched(data)
        # A finished bisect before an interrupted one, whatever its range.
        rank = (not data.get("partial"), len(data.get("releases") or ()),
                data.get("provenance", {}).get("finished", ""))
        if key not in kept or rank > kept[key][0]:
            kept[key] = (rank, data)
    return [data for _, data in kept.values()]


def render_bisect(data):
    pins = " ".join(data["with"]) or "none"
    lines = [f"# Bisect: {data['package']} on Python {data['python']} "
             f"(simulator {'on' if data['sim'] else 'off'})"
             f"{partial_title(data)}", "",
             f"**{data['summary']}.**", "",
             f"Releases in range: {len(data['releases'])} "
             f"({data['releases'][0] if data['releases'] else '–'} to "
             f"{data['releases'][-1] if data['releases'] else '–'}); "
             f"extra requirements: {pins}; decisive probes: "
             f"{data['decisive_probes']} (limit {data['probe_limit']}); "
             f"{data['seconds']} s.", ""]
    lines += guess_lines(data)
    excluded = data.get("excluded_by_requires_python") or []
    if excluded:
        lines += [f"Left out before the search: {len(excluded)} releases "
                  f"({_span(excluded)}) whose Requires-Python excludes "
                  f"Python {data['python']}.", ""]
    if data["rate_used"] is not None:
        lines += [f"A release counts as not reproduced after "
                  f"{data['runs_to_rule_out']} passing runs: the lower 95% "
                  f"bound of the failure rate at the reproducing end, "
                  f"{100 * data['rate_used']:.1f}% per run, misses the bug "
                  f"that often with probability below "
                  f"{data['miss_probability']:.1%}.", ""]
    shown = data.get("shown_packages", [])
    lines += table(
        ("version", "verdict", "runs", "failures", "installed", "reason"),
        ((first if count == 1 else f"{first} – {last} ({count} releases)",
          probe["verdict"], probe["runs"], probe["failures"],
          installed_cell(probe, shown), probe["reason"])
         for first, last, probe, count in condensed_probes(data["tested"])))
    provenance = data["provenance"]
    lines += ["", f"Command: `{provenance['command']}`; finished "
                  f"{provenance['finished']} on {provenance['machine']['os']}, "
                  f"{provenance['machine']['cores']} cores."]
    return "\n".join(lines) + "\n"


def guess_lines(data):
    """What the search probed first (``--guess``) and whether it ended
    there; nothing where it started from the middle."""
    guess = data.get("guess")
    if not guess:
        return []
    named = " and ".join(guess["versions"])
    source = "named with `--guess`" if guess["source"] == "--guess" else \
        f"where the race bisect `{guess['source']}` placed its flip"
    held = {True: "; the search ended at that same pair",
            False: "; the search ended elsewhere",
            None: ""}[guess.get("held")]
    return [f"Probed first: {named} ({source}){held}. Each was placed by "
            f"its own probe, as any other release.", ""]


def installed_cell(probe, shown):
    """How a probe's release was installed, for the table: the way, the
    index date, and the resolved versions of the packages in ``shown``."""
    if not probe.get("way"):
        tried = ", ".join(a["way"] for a in probe.get("attempts", []))
        return f"tried {tried}" if tried else ""
    date = f" as of {probe['exclude_newer'][:10]}" if probe.get("exclude_newer") else ""
    packages = probe.get("packages", {})
    versions = ", ".join(f"{name} {packages[name]}" for name in shown
                         if name in packages)
    return f"{probe['way']}{date}" + (f": {versions}" if versions else "")


def _span(versions):
    return versions[0] if len(versions) == 1 else \
        f"{versions[0]} to {versions[-1]}"


def condensed_probes(tested):
    """Consecutive releases that could not be tested for the same reason
    (no wheel for this Python, or one import error), as one entry each:
    (first, last, probe, count)."""
    groups = []
    for probe in tested:
        key = _untested_reason(probe)
        if key and groups and groups[-1][4] == key:
            first, _, kept, count, _ = groups[-1]
            groups[-1] = (first, probe["version"], kept, count + 1, key)
        else:
            groups.append((probe["version"], probe["version"], probe, 1, key))
    return [(first, last, dict(probe, reason=key) if count > 1 else probe,
             count) for first, last, probe, count, key in groups]


def _untested_reason(probe):
    """The reason a release could not be tested, without its version, or
    None for a release that was tested."""
    if probe["verdict"] in USABLE:
        return None
    reason = probe["reason"]
    if probe["verdict"] == "skipped" and reason.startswith("no wheel"):
        return "no wheel for " + reason.rsplit(" for ", 1)[-1]
    return reason


def render_time_bisect(data):
    releases = data["releases"]
    lines = [f"# Bisect on launch time: {data['package']} on Python "
             f"{data['python']} (simulator {'on' if data['sim'] else 'off'})"
             f"{partial_title(data)}",
             "", f"**{data['summary']}.**", "",
             f"Releases in range: {len(releases)} "
             f"({releases[0] if releases else '–'} to "
             f"{releases[-1] if releases else '–'}); extra requirements: "
             f"{' '.join(data['with']) or 'none'}; decisive probes: "
             f"{data['decisive_probes']} (limit {data['probe_limit']}); "
             f"{data['seconds']} s.", "",
             *guess_lines(data),
             f"Rule: {data['rule']['text']}."
             + (f" A launch past {data['limit']:g} s counts at that limit, "
                f"as a stall." if data.get("limit") else "")
             + (" Launches: `racematrix/launch_time.py` with " + ", ".join(
                 f"{name} = {value}" for name, value in
                 data["workload"].items()) + "; the rest as the matrix's."
                if data.get("workload") else ""), "",
             *table(("version", "verdict", "launches", "median s", "p95 s",
                     "past limit", "race errors", "seconds", "reason"),
                    ((probe["version"], probe["verdict"], probe["n"],
                      number_cell(probe["median"]), number_cell(probe["p95"]),
                      probe["past_limit"], probe["race_errors"],
                      probe["seconds"], probe["reason"])
                     for probe in data["tested"]))]
    return "\n".join(lines + ["", provenance_line(data)]) + "\n"


def provenance_line(data):
    provenance = data["provenance"]
    return (f"Command: `{provenance['command']}`; finished "
            f"{provenance['finished']} on {provenance['machine']['os']}, "
            f"{provenance['machine']['cores']} cores.")


def number_cell(value):
    return "–" if value is None else f"{value:.2f}"


def load_bisects(folder, metric="failure"):
    """The widest bisect of each search in ``folder`` on ``metric``
    ("failure": the race; "launch-time": the price of the fix)."""
    found = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError) as error:
            warnings.warn(f"left out {path}: not readable JSON ({error})",
                          RawResultWarning, stacklevel=2)
    found = [data for data in found
             if data.get("metric", "failure") == metric]
    for data in found:  # files written before names were normalised
        if isinstance(data.get("package"), str):
            data["package"] = canonicalize_name(data["package"])
    # A narrower search never hides the full one: one bisect per search.
    return widest_bisects(found)


def survey_counts(entries):
    """Per way: releases that work by that way alone, and by that way or
    an earlier one (what the ladder gets when it stops there)."""
    alone = {way: 0 for way in WAYS}
    ladder = {way: 0 for way in WAYS}
    for entry in entries:
        outcomes = outcomes_by_way(entry["attempts"])
        reached = False
        for way in WAYS:
            ok = outcomes.get(way) == "ok"
            reached = reached or ok
            alone[way] += ok
            ladder[way] += reached
    return {"releases": len(entries), "alone": alone, "by_ladder": ladder}


def render_survey_summary(data):
    counts = data["counts"]
    steps = "; ".join(f"{way}: {counts['by_ladder'][way]}" for way in WAYS)
    return (f"of {counts['releases']} releases, those whose own code imports "
            f"and runs the smoke launch, by the ladder up to each way: {steps}")


def render_survey(data):
    counts = data["counts"]
    lines = [f"# Install survey: {data['package']} on Python {data['python']}",
             "", f"{data['summary']}.", "",
             *table(("way", "works by this way alone",
                     "by this way or an earlier one"),
                    ((way, counts["alone"][way], counts["by_ladder"][way])
                     for way in WAYS))]
    lines += [""] + table(
        ("version", *WAYS, "reason"),
        ((entry["version"],
          *(outcomes_by_way(entry["attempts"]).get(way, "–") for way in WAYS),
          entry["reason"][:200]) for entry in data["surveyed"]))
    lines += ["", f"Command: `{data['provenance']['command']}`; "
                  f"{data['seconds']} s; finished "
                  f"{data['provenance']['finished']}."]
    return "\n".join(lines) + "\n"


def rerender_bisects(folder):
    """Rewrite every ``.md`` in ``folder`` from its ``.json``."""
    for path in sorted(Path(folder).glob("*.json")):
        data = json.loads(path.read_text())
        write_text_atomic(path.with_suffix(".md"), render(data))


def render(data):
    """The Markdown of a bisect file, by its metric."""
    if data.get("metric") == "launch-time":
        return render_time_bisect(data)
    return render_bisect(data)


def write_bisect(out_dir, stem, data):
    """``<stem>.json`` and its ``.md`` under ``out_dir``; a finished
    bisect replaces the partial file of its search."""
    out_dir = Path(out_dir)
    write_json_atomic(out_dir / f"{stem}.json", data)
    write_text_atomic(out_dir / f"{stem}.md", render(data))
    if not data.get("partial"):
        for suffix in (".json", ".md"):
            (out_dir / f"{stem}{PARTIAL}{suffix}").unlink(missing_ok=True)
    return data


def race_flip(folder, package, python, sim, extra, versions):
    """Where a finished race bisect in ``folder`` of the same package,
    Python, simulator flag and extra requirements placed its flip, when
    both releases of its pair are in ``versions``: ([before, after], file
    name) from the widest such bisect, or (None, None)."""
    key = searched({"package": package, "python": python, "sim": sim,
                    "with": extra})
    best = None
    for path in sorted(Path(folder).glob("*.json")):
        try:
            data = json.loads(path.read_text())
            found = [data["boundary"]["before"]["version"],
                     data["boundary"]["after"]["version"]]
        except (OSError, ValueError, TypeError, KeyError):
            continue
        if data.get("metric", "failure") != "failure" or \
                data.get("partial") or searched(data) != key or \
                not set(found) <= {str(v) for v in versions}:
            continue
        rank = len(data.get("releases") or ())
        if best is None or rank > best[0]:
            best = (rank, found, path.name)
    return (best[1], best[2]) if best else (None, None)


# An interrupted bisect's file: its probes so far, saved as each finished,
# beside (never over) a finished bisect of the same search.
PARTIAL = ".partial"


def partial_title(data):
    return " (partial: interrupted, rerun to resume)" if \
        data.get("partial") else ""


def search_key(data):
    """What makes two runs the same search: a saved probe is reused only
    by the same search (and, on launch time, the same workload)."""
    return (*searched(data), data.get("from"), data.get("to"),
            data.get("metric", "failure"),
            tuple(sorted((data.get("workload") or {}).items())))


def load_partial(out_dir, stem, key):
    """The saved probes of an interrupted run of the search ``key``
    (``search_key``), as (path, data), or (path, None)."""
    path = Path(out_dir) / f"{stem}{PARTIAL}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return path, None
    if not isinstance(data, dict) or search_key(data) != key or \
            not isinstance(data.get("tested"), list):
        return path, None
    return path, data


def write_partial(out_dir, stem, data):
    """Save an unfinished bisect's probes so far."""
    return write_bisect(out_dir, f"{stem}{PARTIAL}",
                        {**data, "partial": True})
