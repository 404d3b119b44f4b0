"""The report's section on CuBIE's own code (the ``cubie`` suite), and the
evidence its rows carry: where each race failure was raised, and how long
the tests took."""
import re
import statistics
import xml.etree.ElementTree as ElementTree
from collections import Counter

from .outcomes import RACE_SIGNATURE, TARGET

SUITE = "cubie"
ATTRIBUTE = re.compile(r"has no attribute '(\w+)'")


def race_sites(runs, mwe_signature=RACE_SIGNATURE):
    """Where the suite's target failures were raised, from the properties
    each failing test records (``raised_at``, ``raised_line``,
    ``raised_in``), most frequent first; ``mwe_signature`` says whether the
    message is also the MWE's signature, word for word."""
    sites = Counter()
    for run in runs:
        if run.outcome != TARGET:
            continue
        attribute = ATTRIBUTE.search(run.message)
        sites[(run.properties.get("raised_at", ""),
               run.properties.get("raised_line", ""),
               run.properties.get("raised_in", ""),
               attribute[1] if attribute else "",
               bool(mwe_signature.search(run.message)))] += 1
    return [{"raised_at": at, "line": line, "function": function,
             "attribute": attribute, "mwe_signature": mwe, "count": count}
            for (at, line, function, attribute, mwe), count
            in sites.most_common()]


def seconds_per_test(junit_path):
    """Per test function (parameters dropped): how many runs, and the
    median and largest of their durations from the JUnit XML."""
    root = ElementTree.parse(junit_path).getroot()
    times = {}
    for case in root.iter("testcase"):
        name = case.get("name", "").split("[", 1)[0]
        times.setdefault(name, []).append(float(case.get("time", 0)))
    return {name: {"n": len(values),
                   "median": round(statistics.median(values), 3),
                   "max": round(max(values), 3)}
            for name, values in sorted(times.items())}


def suite_evidence(runs, junit_path):
    """What a suite's raw record adds to its summary: where each race
    failure was raised, and the tests' durations. ``runs`` classified with
    the suite's own signature; call it while the JUnit file exists."""
    return {"race_sites": race_sites(runs),
            "test_seconds": seconds_per_test(junit_path)}


def simulator(record):
    """Whose simulator the row ran on, from the module CuBIE's code used."""
    module = record.get("settings", {}).get("cuda_module", "")
    if "vendored" in module:
        return "CuBIE's vendored copy"
    if _versions(record)[1] != "–":
        return "numba-cuda's"
    return "numba's" if module else "?"


def _versions(record):
    # The suite also records the versions among its settings.
    known = {**record.get("settings", {}), **record.get("packages", {})}
    return (known.get("cubie", "?"), known.get("numba-cuda", "–"),
            known.get("numba", "–"), record.get("python", "?"))


def _label(record):
    cubie, numba_cuda, numba, python = _versions(record)
    companion = (f"numba-cuda {numba_cuda}" if numba_cuda != "–"
                 else "its vendored simulator" if "vendored" in simulator(
                     record) else f"numba {numba}")
    return f"cubie {cubie} with {companion} (Python {python})"


def _rate(record):
    runs, failures = record.get("runs", 0), record.get("failures", 0)
    return f"{failures}/{runs}" + (f" ({failures / runs:.0%})" if runs else "")


def _solve_seconds(record):
    seconds = record.get("summary", {}).get("test_seconds", {}).get(
        "test_solve_ivp")
    return f"{seconds['median']:g} ({seconds['max']:g})" if seconds else "–"


def cubie_section(rows, records):
    """Markdown lines for the report: CuBIE's own code, where it fails with
    the race and where not, the rates, and whether it is the MWE's race.
    ``rows`` may be empty; the figures come from ``records`` (raw results
    with ``suite`` set)."""
    mine = [record for record in records if record.get("suite") == SUITE]
    if not mine:
        return []
    mine.sort(key=lambda record: tuple(
        _sort_version(part) for part in _versions(record)))
    failing = [r for r in mine if r.get("verdict") == "reproduced"]
    clean = [r for r in mine if r.get("verdict") == "not-reproduced"]
    unsure = [r for r in mine if r not in failing and r not in clean]
    lines = ["## CuBIE's own code", "",
             "The `cubie` suite (`clients/cubie/`) runs CuBIE's released "
             "code from the package index, copying none of it: a kernel "
             "whose threads call the allocators that CuBIE's buffer "
             "registry builds (`BufferGroup.register`, then "
             "`get_allocator`), and a small `solve_ivp` through CuBIE's "
             "public API.", ""]
    lines.append("It fails with the race with "
                 + (_join(f"{_label(r)}: {_rate(r)}" for r in failing)
                    if failing else "none of the environments run") + ".")
    lines.append("It does not fail with "
                 + (_join(f"{_label(r)}: {_rate(r)}" for r in clean)
                    if clean else "any of them") + ".")
    if unsure:
        lines.append("No verdict for " + _join(
            f"{_label(r)} ({r.get('verdict')}: {r.get('reason', '')})"
            for r in unsure) + ".")
    lines += ["", *_same_race(failing), "",
              "| cubie | numba-cuda | numba | simulator | Python | runs "
              "| race failures | other errors | hangs | skipped "
              "| solve s, median (max) "
              "| seconds | verdict |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for record in mine:
        cubie, numba_cuda, numba, python = _versions(record)
        lines.append(
            f"| {cubie} | {numba_cuda} | {numba} | {simulator(record)} "
            f"| {python} | {record.get('runs', 0)} | {_rate(record)} "
            f"| {record.get('other_errors', 0)} "
            f"| {record.get('hangs', 0)} | {record.get('skips', 0)} "
            f"| {_solve_seconds(record)} | {record.get('seconds', 0):g} "
            f"| {record.get('verdict', '?')} |")
    settings = mine[0].get("settings", {})
    lines += ["", "Settings: " + ", ".join(
        f"{name}={settings[name]}" for name in (
            "switch_interval", "threads_per_block", "blocks",
            "device_calls", "launches", "solves", "solve_runs", "budget")
        if name in settings) + "; a hang is a test past pytest-timeout's "
        "limit, and tests left when the budget is spent are skipped.", ""]
    return lines


def _same_race(failing):
    """The plain answer: is what CuBIE hits the MWE's race?"""
    sites = Counter()
    mwe_words = 0
    total = 0
    for record in failing:
        for site in record.get("summary", {}).get("race_sites", []):
            sites[(site["raised_at"], site["line"], site["function"],
                   site["attribute"])] += site["count"]
            mwe_words += site["count"] if site["mwe_signature"] else 0
            total += site["count"]
    if not total:
        return ["Whether this is the MWE's race cannot be said from these "
                "rows: none recorded a race failure with where it was "
                "raised."]
    where = _join(f"`{at}` (`{line}`, in `{function}`, attribute "
                  f"`{attribute}`): {count}"
                  for (at, line, function, attribute), count
                  in sites.most_common())
    in_registry = sum(count for (at, *_), count in sites.items()
                      if at.rsplit(":", 1)[0].endswith("buffer_registry.py"))
    answer = ("Yes, this is the MWE's race" if in_registry == total
              else "Partly: not every failure is at the registry's "
                   "allocators")
    others = total - mwe_words
    return [f"**Is it the MWE's race?** {answer}. Of {total} race failures "
            f"in CuBIE's code, {mwe_words} carry the MWE's signature word "
            f"for word"
            + (f" and {others} the same message for another attribute of "
               f"the simulator's fake `cuda` module" if others else "")
            + f"; {in_registry} were raised in CuBIE's buffer registry, at "
            + where + ". The simulator names the thread (`tid=[..] "
            "ctaid=[..]`), and the real `cuda` module, swapped back in by "
            "another thread, lacks the attribute: the mechanism the MWE "
            "copies."]


def _join(items):
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return "; ".join(items[:-1]) + "; and " + items[-1]


def _sort_version(text):
    from packaging.version import InvalidVersion, Version
    try:
        return (0, Version(text))
    except (InvalidVersion, TypeError):
        return (1, str(text))
