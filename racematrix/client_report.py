"""The report's section on CuBIE's own code (the ``cubie`` suite): where it
fails with the race and where not, and whether it is the MWE's race (from
the evidence ``suite_evidence`` put in its raw records)."""
from collections import Counter

from packaging.version import InvalidVersion, Version

from .markdown import table
from .rawresult import current_verdict

SUITE = "cubie"


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
    mine = [dict(record, **dict(zip(("verdict", "reason"),
                                     current_verdict(record))))
            for record in records if record.get("suite") == SUITE
            and not (record.get("spec") or {}).get("patch")]
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
    lines += ["", *_same_race(failing), ""]
    lines += table(
        ("cubie", "numba-cuda", "numba", "simulator", "Python", "runs",
         "race failures", "other errors", "hangs", "skipped",
         "solve s, median (max)", "seconds", "verdict"),
        ((*_versions(record)[:3], simulator(record), _versions(record)[3],
          record.get("runs", 0), _rate(record),
          record.get("other_errors", 0), record.get("hangs", 0),
          record.get("skips", 0), _solve_seconds(record),
          f"{record.get('seconds', 0):g}", record.get("verdict", "?"))
         for record in mine))
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
    try:
        return (0, Version(text))
    except (InvalidVersion, TypeError):
        return (1, str(text))
