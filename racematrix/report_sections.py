"""The report's sections on the MWE's rows: the summary, the environment
table, what the controls measured, the knobs, and the price of the fix.
Each returns Markdown lines computed from rows, raw records and bisect
files; nothing here writes a file."""
import re
from collections import Counter, defaultdict
from pathlib import Path

from .markdown import table
from .tables import (TABLE_COLUMNS, column_key, format_launch, format_rate,
                     package_cell, python_minor, table_cells, target_version,
                     version_or_zero)

PIVOT_OVER = 24  # environments; a longer table becomes one row per release
# The full table's columns that the report's short table keeps.
REPORT_COLUMNS = ("Python", "target", "numba", "numba-cuda", "numpy", "asked",
                  "sim", "runs", "failures", "rate", "95% CI",
                  "launch s: median / p95 / max", "verdict")


CONTROL_TESTS = {
    "trigger": "test_syncthreads_trigger",
    "kernel_module": "test_control_allocator_in_kernel_module",
    "did_work": "test_control_failing_threads_did_work",
}


def condensed_rows(rows):
    """Rows for the report: every environment that ran, plus one line per
    group of environments skipped for the same reason."""
    shown, skipped = [], defaultdict(list)
    for row in rows:
        if row["verdict"] == "skipped":
            skipped[row["reason"]].append(row)
        else:
            shown.append(row)
    return shown, skipped


def evidence(records):
    """What the MWE's controls measured, added up over the raw records."""
    totals = {name: {"runs": 0, "target": 0, "other": 0, "envs": 0}
              for name in CONTROL_TESTS}
    failing, early = 0, 0
    for _, record in records:
        if record["verdict"] != "reproduced":
            continue
        tests = record.get("summary", {}).get("tests", {})
        for name, test in CONTROL_TESTS.items():
            # Parametrized tests count together: "test[1-2-3]" is "test".
            cases = [c for n, c in tests.items() if n.split("[")[0] == test]
            if not cases:
                continue
            total = totals[name]
            total["envs"] += 1
            for counts in cases:
                total["runs"] += sum(counts[k] for k in ("target", "other",
                                                         "hang", "pass"))
                total["target"] += counts["target"]
                total["other"] += counts["other"] + counts["hang"]
        for thread in record.get("summary", {}).get("failing_threads", []):
            failing += 1
            early += thread["index"] >= thread["n_threads"]
    return totals, failing, early


def first_error(records):
    for _, record in records:
        message = record.get("summary", {}).get("first_target_message")
        if message:
            return message
    return None


def summary_sentences(rows, bisects):
    ran = [r for r in rows if r["verdict"] in ("reproduced", "not-reproduced")]
    bad = [r for r in ran if r["verdict"] == "reproduced"]
    by_target = defaultdict(lambda: [0, 0])
    for row in ran:
        by_target[row["target"]][0] += row["verdict"] == "reproduced"
        by_target[row["target"]][1] += 1
    parts = ", ".join(f"{n} of {m} {target} environments"
                      for target, (n, m) in sorted(by_target.items()))
    first = (f"Numba's CUDA simulator intermittently raises `AttributeError: "
             f"module 'numba.cuda' has no attribute 'local'` when threads "
             f"of a block call device functions defined outside the "
             f"kernel's module; our MWE reproduced it in {len(bad)} of "
             f"{len(ran)} environments that ran ({parts})."
             + _not_placed(rows))
    if bisects:
        second = "Bisect: " + "; ".join(
            f"{b['package']} on Python {b['python']}{_pins(b)}: {b['summary']}"
            for b in bisects) + "."
    else:
        second = "No bisect result is available yet."
    return f"{first} {second}"


def _not_placed(rows):
    """The rows that ran but have no verdict on the race, counted apart:
    hangs (the slowdown's symptom) and environment errors."""
    counts = Counter(r["verdict"] for r in rows)
    parts = [f"{counts['hung']} hung (runs past the timeout, no race "
             f"failure)" if counts["hung"] else "",
             f"{counts['error']} could not be built or failed another way"
             if counts["error"] else ""]
    parts = [p for p in parts if p]
    return f" Not counted either way: {'; '.join(parts)}." if parts else ""


def environment_table(rows, pivot_over=PIVOT_OVER):
    """The environment table: one row per environment while that is short,
    else one row per target release with a column per Python."""
    if len(rows) <= pivot_over:
        return table(REPORT_COLUMNS, (
            [dict(zip(TABLE_COLUMNS, table_cells(row)))[column]
             for column in REPORT_COLUMNS] for row in rows))
    pythons = sorted({python_minor(r) for r in rows}, key=version_or_zero)
    groups = defaultdict(dict)
    for row in rows:
        # What was asked is part of the key: a range that resolved to a
        # pinned row's versions is a row of its own.
        key = (not row["sim"], row["target"], version_or_zero(target_version(row)),
               package_cell(row, "numba"), asked_note(row))
        groups[key][python_minor(row)] = row
    body = []
    for key in sorted(groups):
        cells = groups[key]
        sample = next(iter(cells.values()))
        verdicts = sorted({r["verdict"] for r in cells.values()})
        body.append(("on" if sample["sim"] else "off", sample["target"],
                     target_version(sample) + key[4], key[3],
                     *(_pivot_cell(cells.get(p)) for p in pythons),
                     ", ".join(verdicts)))
    return ["Cells: race failures / test runs (rate); the full table has "
            "numpy versions and intervals.", "",
            *table(("sim", "target", "version", "numba",
                    *(f"Python {p}" for p in pythons), "verdict"), body)]


def asked_note(row):
    """`` (asked ...)`` where the requirement set is more than exact pins
    (a range, a direct reference, a marker), else nothing."""
    asked = row.get("requirements") or []
    if all(re.fullmatch(r"[a-z0-9._-]+(\[[^\]]*\])?==[\w.!+]+", text)
           for text in asked):
        return ""
    return f" (asked {' '.join(asked)})"


def _pivot_cell(row):
    if row is None:
        return "–"
    if row["verdict"] in ("reproduced", "not-reproduced"):
        return f"{row['failures']}/{row['runs']} ({format_rate(row)})"
    return row["verdict"]


def _guess_note(bisect):
    """Where a bisect probed first, and whether it ended there."""
    guess = bisect.get("guess")
    if not guess or guess.get("held") is None:
        return ""
    where = "at the race's flip" if guess["source"] != "--guess" else \
        f"at {' and '.join(guess['versions'])} (`--guess`)"
    return (f"; probed first {where}, "
            + ("and the jump is there" if guess["held"] else
               "but the jump is elsewhere"))


def _pins(bisect):
    return f" (with {' '.join(bisect['with'])})" if bisect.get("with") else ""


def boundary_side(side):
    return f"{side['version']} ({side['verdict']})" if side else "–"


def knob_lines(figures):
    """What the MWE's own figures say about how often the race strikes, or
    nothing when ``nox -s mwe_figures`` has not been run."""
    if not figures or not figures.get("sweep"):
        return []
    faithful, fixed = figures["faithful"], figures["fixed"]
    blocked = figures["trigger_faithful"]
    versions = figures["sweep_versions"]
    return [
        f"How often it strikes (`{figures['command']}`, finished "
        f"{figures['finished']}): with Python's default switch interval and "
        f"one allocation per thread (the MWE's `faithful` preset) "
        f"{faithful['failures']} of {faithful['runs']} runs failed (numba "
        f"{faithful['numba']}); the race needs frequent preemption and many "
        f"device-function calls per thread. Each knob moved alone, the others "
        f"at the MWE's defaults (numba {versions['numba']}, Python "
        f"{versions['python']}):", "", *sweep_table(figures["sweep"]), "",
        f"A thread blocked inside the device function needs none of that: "
        f"with the trigger's `cuda.syncthreads()`, {blocked['failures']} of "
        f"{blocked['runs']} launches failed under the faithful preset.", "",
        f"The newest numba-cuda ({fixed['numba-cuda']}): {fixed['failures']} "
        f"of {fixed['runs']} runs of the whole suite failed.", ""]


def sweep_table(points):
    """Markdown lines: one row per knob, its values and rates across."""
    by_knob = {}
    for point in points:
        by_knob.setdefault(point["knob"], []).append(
            f"{point['value']}: {point['failures']}/{point['runs']} "
            f"({100 * point['failure_rate']:.0f}%)")
    return table(("knob", "value: race failures / runs (rate)"),
                 ((f"`--{knob}`", "; ".join(cells))
                  for knob, cells in by_knob.items()))


def price_of_fix(rows, out_dir=None, time_bisects=()):
    """The report's section on what the fix costs: launch times of the
    environments with the race against those without, from the rows of
    one run, and the stacks of a launch past the limit where one was
    caught."""
    timed = [r for r in rows if (r.get("launch_seconds") or {}).get("n")
             and r["verdict"] in ("reproduced", "not-reproduced")]
    if not timed:
        return []
    calls = sorted({(r["launch_seconds"].get("workload") or {}).get(
        "device_calls") for r in timed} - {None})
    locations = sorted({(r["launch_seconds"].get("workload") or {}).get(
        "location", "local") for r in timed})
    where = {"persistent": "a slice of the kernel's persistent array: the "
                           "same swap of `cuda` on every call, without the "
                           "read the race breaks",
             "local": "`cuda.local.array`"}
    lines = ["## The price of the fix", "",
             "Every environment also times launches of `mwe/launch_time.py`'s "
             "kernel once its tests have run (each launch in a fork of the "
             "tests' own process, so that they never change the tests' "
             "rates): one block whose threads each call a device function of "
             "another module "
             f"{' or '.join(f'{c:,}' for c in calls) or 'many'} times, at "
             "Python's default switch interval; the device function hands "
             "out " + " or ".join(where.get(l, l) for l in locations) + ". "
             "At least three launches, "
             "more while the row can be neither told apart from nor matched "
             "to the rows with the race on its Python (README: launch time). "
             "A launch past the limit is counted at the limit and named.",
             ""]
    groups = [("with the race", [r for r in timed
                                  if r["verdict"] == "reproduced"]),
              ("without it", [r for r in timed
                              if r["verdict"] == "not-reproduced"])]
    summary = []
    for label, group in groups:
        if not group:
            continue
        launch = [r["launch_seconds"] for r in group]
        medians = sorted(x["median"] for x in launch)
        summary.append((label, len(group), sum(x["n"] for x in launch),
                        f"{medians[len(medians) // 2]:.2f}",
                        f"{max(x['p95'] for x in launch):.2f}",
                        f"{max(x['max'] for x in launch):.2f}",
                        sum(x.get("past_limit", 0) for x in launch)))
    lines += table(("simulator", "environments", "launches",
                    "median of medians s", "largest p95 s", "largest max s",
                    "launches past the limit"), summary)
    racy = defaultdict(list)
    for row in groups[0][1]:
        racy[python_minor(row)].append(row["launch_seconds"]["median"])
    lines += ["", "Per release (Python, target and version, then the "
              "launch times; *x race* is the median over the median of the "
              "rows with the race on that Python; *load*, the matrix "
              "sessions running beside it; *rule*, where the row's "
              "sequential rule stopped):", ""]
    lines += table(("Python", "target", "version", "verdict", "launches",
                    "median / p95 / max s", "x race", "load", "rule"),
                   ((python_minor(row), row["target"], target_version(row),
                     row["verdict"], row["launch_seconds"]["n"],
                     format_launch(row["launch_seconds"]),
                     _times(row, racy), row["launch_seconds"].get(
                         "concurrency", "–"),
                     row["launch_seconds"].get("decision", "–"))
                    for row in sorted(timed, key=lambda r: (python_minor(r),)
                                      + column_key(r))))
    lines += [""] + stack_evidence(timed, out_dir)
    if time_bisects:
        lines += ["Bisect on launch time (`--metric launch-time`: the "
                  "launches of each release against those of both ends, "
                  "by the rule each file states):", ""]
        lines += [f"- {b['package']} on Python {b['python']}{_pins(b)}: "
                  f"{b['summary']} ({b['decisive_probes']} decisive probes, "
                  f"{b['seconds']} s{_guess_note(b)})." for b in time_bisects]
        lines.append("")
    lines += ["Why: the fix makes every device-function call take a lock of "
              "its module in `swapped_cuda_module` on entry and again on "
              "exit, shared by all threads of the block. A simulated thread "
              "that is handed the lock must then win the GIL, which the "
              "other threads and the block manager's polling loop hold for "
              "up to one switch interval at a time; once threads queue, "
              "every hand-over pays that wait. The stacks above show where "
              "the threads wait; the per-release table, what it costs.", ""]
    return lines


def _times(row, racy):
    """The row's median launch over the median of the race's rows' medians
    on its Python."""
    medians = sorted(racy.get(python_minor(row), []))
    if not medians:
        return "–"
    return f"{row['launch_seconds']['median'] / medians[len(medians) // 2]:.1f}"


def stack_evidence(rows, out_dir):
    """Where the time goes: the threads of the first launch caught past
    the limit, counted by the simulator frame they were in, and one
    thread's frames quoted (site-packages paths shortened)."""
    if out_dir is None:
        return []
    # A row's own stacks first; else the newest kept beside the tables
    # (`python -m racematrix.timing` keeps them there too).
    named = [(row.get("launch_seconds") or {}).get("stack_file")
             for row in rows]
    kept = sorted(Path(out_dir).glob("launch_time_stacks/*.stack.txt"),
                  key=lambda p: p.stat().st_mtime, reverse=True)
    candidates = [Path(out_dir) / name for name in named if name] + kept
    path = next((p for p in candidates if p.is_file()), None)
    if path is None:
        return []
    name = path.relative_to(out_dir).as_posix()
    threads = [block for block in path.read_text().split("\n\n")
               if block.strip().startswith(("Thread", "Current thread"))]
    tops = Counter()
    for block in threads:
        frames = [line.strip() for line in block.splitlines()[1:]
                  if line.strip().startswith("File")]
        if frames:
            tops[_short_frame(frames[0])] += 1
    quoted = "\n".join(_short_frame(line.strip())
                       for line in threads[0].splitlines()[1:8]) \
        if threads else ""
    env = path.name.removesuffix(".stack.txt")
    lines = [f"A launch of {env} was caught past the limit; "
             f"`faulthandler` dumped its {len(threads)} threads "
             f"([stacks]({name})). Where they were:", ""]
    lines += [f"- {count} at `{frame}`" for frame, count in tops.most_common(4)]
    lines += ["", "One of them:", "", "```", quoted, "```", ""]
    return lines


def _short_frame(line):
    return re.sub(r'File ".*?/site-packages/', 'File "', line)
