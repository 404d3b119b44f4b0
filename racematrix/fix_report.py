"""The report's section "A fix without the price", and
``results/SLOWDOWN.md``, the paste-ready upstream issue about the price of
the upstream fix: both from the rows (patched rows beside their unpatched
twins), the bisects on time and the kept stacks."""
from collections import defaultdict
from pathlib import Path

from .markdown import table
from .report_sections import price_of_fix
from .tables import python_minor, target_version, version_or_zero

PROJECT = Path(__file__).resolve().parent.parent
# numba-cuda's own simulator tests run as this suite (pyproject.toml).
OWN_TESTS_SUITE = "numba-cuda-tests"


def twin_key(row):
    return (row.get("suite", "mwe"), python_minor(row), row["target"],
            target_version(row), row["sim"])


def pairs(rows, patch):
    """(unpatched row or None, patched row) for every row under ``patch``,
    in release order."""
    plain = {twin_key(r): r for r in rows if not r.get("patch")}
    found = [(plain.get(twin_key(r)), r) for r in rows
             if r.get("patch") == patch]
    return sorted(found, key=lambda p: (p[1].get("suite", "mwe"),
                                        version_or_zero(python_minor(p[1])),
                                        p[1]["target"],
                                        version_or_zero(target_version(p[1]))))


def _launch(row):
    launch = (row or {}).get("launch_seconds") or {}
    if not launch.get("n"):
        return "–"
    return f"{launch['median']:.2f} / {launch['p95']:.2f} ({launch['n']})"


def _race(row):
    if row is None:
        return "–"
    return f"{row['failures']} of {row['runs']}"


def race_baseline(rows):
    """Per (Python, target): the launch times of the newest release whose
    unpatched row reproduced the race, the simulator the fix must match."""
    newest = {}
    for row in rows:
        launch = row.get("launch_seconds") or {}
        if row.get("patch") or row.get("suite", "mwe") != "mwe" or \
                row["verdict"] != "reproduced" or not launch.get("n"):
            continue
        key = (python_minor(row), row["target"])
        if key not in newest or version_or_zero(target_version(row)) > \
                version_or_zero(target_version(newest[key])):
            newest[key] = row
    return newest


def _ratio(row, baseline):
    base = baseline.get((python_minor(row), row["target"]))
    launch = row.get("launch_seconds") or {}
    if not base or not launch.get("n"):
        return "–"
    mine, theirs = launch, base["launch_seconds"]
    return (f"{mine['median'] / theirs['median']:.2f} / "
            f"{mine['p95'] / theirs['p95']:.2f} vs {target_version(base)}")


def _solve(row):
    tests = ((row or {}).get("summary") or {}).get("test_seconds") or {}
    solve = next((v for k, v in tests.items() if "solve" in k), None)
    if not solve:
        return "–"
    return f"{solve['median']:.1f} ({solve['max']:.1f})"


def own_test_outcomes(records, patch):
    """numba-cuda's own tests, unpatched against patched: per pair of rows
    (Python, release), the tests run and those whose outcome differs."""
    by_key = defaultdict(dict)
    for record in records:
        if record.get("suite") != OWN_TESTS_SUITE:
            continue
        key = (record["python"][:4], record["packages"].get("numba-cuda"))
        by_key[key][(record.get("spec") or {}).get("patch")] = record
    found = []
    for key, sides in sorted(by_key.items()):
        if None not in sides or patch not in sides:
            continue
        outcome = {}
        for side in (None, patch):
            tests = (sides[side].get("summary") or {}).get("tests") or {}
            outcome[side] = {name: max(counts, key=counts.get)
                             for name, counts in tests.items()}
        differ = sorted(name for name in outcome[None].keys()
                        | outcome[patch].keys()
                        if outcome[None].get(name) != outcome[patch].get(name))
        found.append((key, len(outcome[None]), len(outcome[patch]), differ,
                      sides))
    return found


def fix_section(rows, records, patch):
    """Markdown lines: race failures, launch time, CuBIE's solve time and
    numba-cuda's own tests, each without and with ``patch``, and the
    diff."""
    found = pairs(rows, patch)
    if not found:
        return []
    baseline = race_baseline(rows)
    patched_records = [r for _, r in records
                       if (r.get("spec") or {}).get("patch") == patch]
    applied = next((r["patch"] for r in patched_records if r.get("patch")),
                   {})
    lines = [f"## A fix without the price: `{patch}`", "",
             "A candidate fix, applied to the installed package after install "
             "and before any test (`patches/`, GNU patch; every file it "
             "changes is first copied off uv's cache). Each row below is one "
             "environment run twice, unpatched and patched. *x newest with "
             "the race* is the patched row's median / p95 launch time over "
             "those of the newest release that reproduced the race on the "
             "same Python.", ""]
    mwe = [(old, new) for old, new in found if new.get("suite", "mwe") == "mwe"]
    if mwe:
        lines += table(
            ("Python", "target", "version", "race failures without",
             "with", "launch s without: median / p95 (n)", "with",
             "x newest with the race", "verdict with"),
            ((python_minor(new), new["target"], target_version(new),
              _race(old), _race(new), _launch(old), _launch(new),
              _ratio(new, baseline), new["verdict"]) for old, new in mwe))
        lines.append("")
    cubie = [(old, new) for old, new in found if new.get("suite") == "cubie"]
    if cubie:
        lines += ["CuBIE's own code (`clients/cubie/`): race failures, "
                  "hangs, and the `solve_ivp` test's duration, median (max):",
                  ""]
        lines += table(
            ("Python", "cubie", "numba-cuda", "race failures without",
             "with", "hangs without", "with", "solve s without", "with"),
            ((python_minor(new), new["packages"].get("cubie", "–"),
              new["packages"].get("numba-cuda", "–"), _race(old), _race(new),
              (old or {}).get("hangs", "–"), new.get("hangs", 0),
              _solve(old), _solve(new)) for old, new in cubie))
        lines.append("")
    own = own_test_outcomes(patched_records + [
        r for _, r in records if not (r.get("spec") or {}).get("patch")],
        patch)
    if own:
        lines += ["numba-cuda's own simulator tests (the `numba-cuda-tests` "
                  "suite), test by test:", ""]
        lines += table(
            ("Python", "numba-cuda", "tests without", "with",
             "outcomes that differ"),
            ((python, version, without, with_, ", ".join(differ[:10])
              + (" …" if len(differ) > 10 else "") if differ else "none")
             for (python, version), without, with_, differ, _ in own))
        lines.append("")
    diff_file = PROJECT / "patches" / applied.get("file", "")
    if applied.get("file") and diff_file.is_file():
        lines += [f"The diff for {applied['package']} {applied['releases']} "
                  f"(`patches/{applied['file']}`, sha256 "
                  f"`{applied['sha256'][:16]}…`), ready for a pull request; "
                  f"its header says why it is correct:", "", "```diff",
                  diff_file.read_text().rstrip(), "```", ""]
    return lines


def patches_in(rows):
    return sorted({r["patch"] for r in rows if r.get("patch")})


def render_slowdown(rows, records, time_bisects, out_dir, reproducer):
    """``SLOWDOWN.md``: an upstream issue about the fix's price."""
    plain = [r for r in rows if r.get("suite", "mwe") == "mwe"
             and not r.get("patch")]
    lines = ["# CUDA simulator: the device-function lock (PR 690) makes "
             "launches several times slower", "",
             "numba-cuda 0.26's fix for the `module 'numba.cuda' has no "
             "attribute 'local'` race takes a per-module lock and a "
             "reference count twice on every device-function call "
             "(`swapped_cuda_module`). Every simulated thread queues on that "
             "lock. The figures below come from the launch-time measurements "
             "of a reproduction matrix (one virtual environment per Python "
             "and release; `nox -s matrix`), the bisect on launch time, and "
             "the stacks of a launch caught past its limit.", ""]
    section = price_of_fix(plain, out_dir, time_bisects)
    lines += [line.replace("## The price of the fix", "## Launch time")
              for line in section]
    lines += ["## Reproducer", "",
              "`NUMBA_ENABLE_CUDASIM=1 python bug_slowdown.py` (exit status "
              "1 where launches stall):", "", "```python", reproducer.rstrip(),
              "```", ""]
    for patch in patches_in(rows):
        lines += [line.replace("## A fix without the price",
                               "## A candidate fix without the lock")
                  for line in fix_section(rows, records, patch)]
    return "\n".join(lines) + "\n"
