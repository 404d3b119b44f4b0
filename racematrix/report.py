"""``results/REPORT.md`` and ``results/failure_rates.png`` from the raw
results: every figure in them is computed here from those files."""
import argparse
import json
import os
import re
import sys
import warnings
from collections import Counter, defaultdict
from pathlib import Path

from packaging.version import InvalidVersion, Version

from . import results
from .bisect import rerender_bisects, widest_bisects
from .results import format_rate, package_cell, target_version

PROJECT = Path(__file__).resolve().parent.parent
MAX_REPORT_CHARS = 65_000
PIVOT_OVER = 24  # environments; a longer table becomes one row per release
ZERO_COLOUR = "#c7e9c0"  # ran and never failed: unlike any failure rate
# The full table's columns that the report's short table keeps.
REPORT_COLUMNS = ("Python", "target", "numba", "numba-cuda", "numpy", "sim",
                  "runs", "failures", "rate", "95% CI",
                  "launch s: median / p95 / max", "verdict")
CONTROL_TESTS = {
    "trigger": "test_syncthreads_trigger",
    "kernel_module": "test_control_allocator_in_kernel_module",
    "did_work": "test_control_failing_threads_did_work",
}


def _version(text):
    try:
        return Version(text)
    except (InvalidVersion, TypeError):
        return Version("0")


def column_key(row):
    return (row["target"], _version(target_version(row)))


def python_minor(row):
    text = row["python"] or row["env"].split("-")[0][2:]
    return ".".join(text.split(".")[:2])


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


def load_bisects(folder, metric="failure"):
    """The widest bisect of each search in ``folder`` on ``metric``
    ("failure": the race; "launch-time": the price of the fix)."""
    found = []
    for path in sorted(Path(folder).glob("*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError) as error:
            warnings.warn(f"left out {path}: not readable JSON ({error})",
                          results.RawResultWarning, stacklevel=2)
    found = [data for data in found
             if data.get("metric", "failure") == metric]
    # A narrower search never hides the full one: one bisect per search.
    return widest_bisects(found)


def load_figures(path):
    """The MWE's figures (``nox -s mwe_figures``), or None."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        warnings.warn(f"left out {path}: not readable JSON ({error})",
                      results.RawResultWarning, stacklevel=2)
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
             f"{len(ran)} environments that ran ({parts}).")
    if bisects:
        second = "Bisect: " + "; ".join(
            f"{b['package']} on Python {b['python']}{_pins(b)}: {b['summary']}"
            for b in bisects) + "."
    else:
        second = "No bisect result is available yet."
    return f"{first} {second}"


def environment_table(rows, pivot_over=PIVOT_OVER):
    """The environment table: one row per environment while that is short,
    else one row per target release with a column per Python."""
    if len(rows) <= pivot_over:
        lines = ["| " + " | ".join(REPORT_COLUMNS) + " |",
                 "|" + "---|" * len(REPORT_COLUMNS)]
        for row in rows:
            cells = dict(zip(results.TABLE_COLUMNS, results.table_cells(row)))
            lines.append("| " + " | ".join(cells[c] for c in REPORT_COLUMNS)
                         + " |")
        return lines
    pythons = sorted({python_minor(r) for r in rows}, key=_version)
    groups = defaultdict(dict)
    for row in rows:
        key = (not row["sim"], row["target"], _version(target_version(row)),
               package_cell(row, "numba"))
        groups[key][python_minor(row)] = row
    lines = ["Cells: race failures / test runs (rate); the full table has "
             "numpy versions and intervals.", "",
             "| sim | target | version | numba | " + " | ".join(
                 f"Python {p}" for p in pythons) + " | verdict |",
             "|---|---|---|---|" + "---|" * len(pythons) + "---|"]
    for key in sorted(groups):
        cells = groups[key]
        sample = next(iter(cells.values()))
        verdicts = sorted({r["verdict"] for r in cells.values()})
        lines.append(
            f"| {'on' if sample['sim'] else 'off'} | {sample['target']} | "
            f"{target_version(sample)} | {key[3]} | " + " | ".join(
                _pivot_cell(cells.get(p)) for p in pythons) +
            f" | {', '.join(verdicts)} |")
    return lines


def _pivot_cell(row):
    if row is None:
        return "–"
    if row["verdict"] in ("reproduced", "not-reproduced"):
        return f"{row['failures']}/{row['runs']} ({format_rate(row)})"
    return row["verdict"]


def _pins(bisect):
    return f" (with {' '.join(bisect['with'])})" if bisect.get("with") else ""


def _side(side):
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
    lines = ["| knob | value: race failures / runs (rate) |", "|---|---|"]
    by_knob = {}
    for point in points:
        by_knob.setdefault(point["knob"], []).append(
            f"{point['value']}: {point['failures']}/{point['runs']} "
            f"({100 * point['failure_rate']:.0f}%)")
    for knob, cells in by_knob.items():
        lines.append(f"| `--{knob}` | {'; '.join(cells)} |")
    return lines


def price_of_fix(rows, out_dir=None, time_bisects=()):
    """The report's section on what the fix costs: launch times of the
    environments with the race against those without, from the rows of
    one run, and the stacks of a launch past the limit where one was
    caught."""
    timed = [r for r in rows if (r.get("launch_seconds") or {}).get("n")
             and r["verdict"] in ("reproduced", "not-reproduced")]
    if not timed:
        return []
    lines = ["## The price of the fix", "",
             "Every environment also runs a timing workload after its tests "
             "(`mwe/launch_time.py`, in processes of its own so that it "
             "never changes their rates): launches of one block whose "
             "threads each call a device function of another module many "
             "times, at Python's default switch interval. A launch past the "
             "limit is counted at the limit and named.", ""]
    groups = [("with the race", [r for r in timed
                                  if r["verdict"] == "reproduced"]),
              ("without it", [r for r in timed
                              if r["verdict"] == "not-reproduced"])]
    lines += ["| simulator | environments | launches | median of medians s "
              "| largest p95 s | largest max s | launches past the limit |",
              "|---|---|---|---|---|---|---|"]
    for label, group in groups:
        if not group:
            continue
        launch = [r["launch_seconds"] for r in group]
        medians = sorted(x["median"] for x in launch)
        lines.append(
            f"| {label} | {len(group)} | {sum(x['n'] for x in launch)} | "
            f"{medians[len(medians) // 2]:.2f} | "
            f"{max(x['p95'] for x in launch):.2f} | "
            f"{max(x['max'] for x in launch):.2f} | "
            f"{sum(x.get('past_limit', 0) for x in launch)} |")
    lines += ["", "Per release (Python, target and version, then the "
              "launch times):", "",
              "| Python | target | version | verdict | launches | median / "
              "p95 / max s |", "|---|---|---|---|---|---|"]
    for row in sorted(timed, key=lambda r: (python_minor(r),) + column_key(r)):
        lines.append(f"| {python_minor(row)} | {row['target']} | "
                     f"{target_version(row)} | {row['verdict']} | "
                     f"{row['launch_seconds']['n']} | "
                     f"{results.format_launch(row['launch_seconds'])} |")
    lines += [""] + stack_evidence(timed, out_dir)
    if time_bisects:
        lines += ["Bisect on launch time (`--metric launch-time`: the "
                  "launches of each release against those of both ends, "
                  "by the rule each file states):", ""]
        lines += [f"- {b['package']} on Python {b['python']}{_pins(b)}: "
                  f"{b['summary']} ({b['decisive_probes']} decisive probes, "
                  f"{b['seconds']} s)." for b in time_bisects]
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


def render_report(rows, records, bisects, bug_source, table_link,
                  pivot_over=PIVOT_OVER, figures=None, out_dir=None,
                  time_bisects=()):
    # The MWE's rows make the main sections; other suites have their own.
    all_rows, all_records = rows, records
    rows = [r for r in rows if r.get("suite", "mwe") == "mwe"]
    records = [(p, r) for p, r in records if r.get("suite", "mwe") == "mwe"]
    shown, skipped = condensed_rows(rows)
    error = first_error(records) or "(no target failure recorded)"
    lines = ["# CUDA simulator: `module 'numba.cuda' has no attribute 'local'` "
             "under concurrent device-function calls", "",
             summary_sentences(rows, bisects), "",
             "## The error", "", "```", error, "```", "",
             "## Reproducer", "",
             "Run with `NUMBA_ENABLE_CUDASIM=1 python bug.py` (exit status 1: "
             "bug present; 0: not reproduced in 100 launches).", "",
             "```python", bug_source.rstrip(), "```", "",
             "## Environments", "",
             f"One *run* is one execution of one MWE test; the interval is "
             f"Wilson's 95%. Full table: [{table_link}]({table_link}).", "",
             ] + environment_table(shown, pivot_over)
    for reason, group in sorted(skipped.items()):
        lines.append(f"\nSkipped, {reason}: {len(group)} environment(s) "
                     f"({', '.join(sorted(r['env'] for r in group)[:8])}"
                     f"{', …' if len(group) > 8 else ''}).")
    lines += ["", "## Bisect", ""]
    if bisects:
        lines += ["| package | Python | extra requirements | range | last "
                  "before | first after | probes | result |",
                  "|---|---|---|---|---|---|---|---|"]
        for b in bisects:
            boundary = b.get("boundary") or {}
            before = boundary.get("before", {})
            after = boundary.get("after", {})
            releases = b.get("releases") or ["–"]
            lines.append(
                f"| {b['package']} | {b['python']} | "
                f"{' '.join(b.get('with') or []) or '–'} | {releases[0]}–"
                f"{releases[-1]} | {_side(before)} | {_side(after)} | "
                f"{b['decisive_probes']} | {b['summary']} |")
    else:
        lines.append("No bisect has been run (`nox -s bisect`).")
    lines += ["", "## Root cause", "",
              "Each simulated CUDA thread is a Python thread. Every call of a "
              "device function runs inside `swapped_cuda_module(fn, "
              "fake_cuda)` (`numba/cuda/simulator/kernelapi.py`), which "
              "replaces the globals of `fn`'s module that are `numba.cuda` "
              "with the kernel's fake module and restores them on exit. With "
              "two threads inside device functions of one module that is not "
              "the kernel's, the second finds the fake already in place and "
              "saves nothing; when the first exits it restores the real "
              "`numba.cuda`, and the second thread's `cuda.local` fails. "
              "numba-cuda now counts entries per module under a lock, so that "
              "the last thread out restores (numba-cuda PR 690; numba PR "
              "1844).", "", "Evidence, added up over the environments that "
              "reproduced the bug:", ""]
    totals, failing, early = evidence(records)
    kernel_module = totals["kernel_module"]
    trigger = totals["trigger"]
    lines += [
        f"- **Same allocator in the kernel's module** "
        f"(`test_control_allocator_in_kernel_module`): "
        f"{kernel_module['target']} race failures and "
        f"{kernel_module['other']} other failures in {kernel_module['runs']} "
        f"runs over {kernel_module['envs']} environments. The race needs the "
        f"device function in another module.",
        f"- **Failing threads did work**: of {failing} failing threads "
        f"recorded by `test_control_failing_threads_did_work` (half the grid "
        f"working), {failing - early} had index < n_threads and {early} had "
        f"returned early. Threads that return early never enter a device "
        f"function, so they are not what keeps running.",
        f"- **Deterministic trigger** (`cuda.syncthreads()` inside the "
        f"allocator): {trigger['target']} of {trigger['runs']} runs failed "
        f"with the race over {trigger['envs']} environments.", ""]
    lines += knob_lines(figures)
    lines += price_of_fix(rows, out_dir, time_bisects)
    from .client_report import cubie_section
    lines += cubie_section([r for r in all_rows if r.get("suite") == "cubie"],
                           [r for _, r in all_records])
    records = all_records
    machines = {results.machine_label(r): r.get("machine", {})
                for _, r in records}
    builds = sorted({r["python_build"] for _, r in records
                     if r.get("python_build")})
    finished = sorted(r.get("finished", "") for _, r in records)
    lines += ["## System", ""]
    for label, machine in sorted(machines.items()):
        lines.append(f"- {label}: {machine.get('distribution') or ''} "
                     f"{machine.get('os', '?')}, {machine.get('arch', '?')}, "
                     f"{machine.get('cores', '?')} cores, GPU: "
                     f"{machine.get('gpu') or 'none'}")
    lines += [f"- Python builds: {'; '.join(builds) or 'none'}",
              f"- Results from {finished[0] if finished else '–'} to "
              f"{finished[-1] if finished else '–'}", "",
              "## Reproduce everything", "", "```",
              "python3 -m pip install nox uv",
              "nox -s matrix -j auto    # the tables",
              *[b["provenance"]["command"] for b in bisects],
              *[b["provenance"]["command"] for b in time_bisects],
              *([figures["command"]] if figures else []),
              "nox -s report            # this report and the plot",
              "```", ""]
    text = "\n".join(lines)
    if len(text) > MAX_REPORT_CHARS:
        raise ValueError(f"report is {len(text)} characters, over GitHub's "
                         f"{MAX_REPORT_CHARS}")
    return text


def plot_launch_times(rows, path):
    """Launch time per environment that was timed: the median as a dot,
    a bar to the p95, a cross at the max; red where the race was
    reproduced, green where not; log scale. Nothing is drawn (and an old
    picture is removed) where no row was timed."""
    timed = sorted((r for r in rows if (r.get("launch_seconds") or {}).get("n")
                    and r["verdict"] in ("reproduced", "not-reproduced")),
                   key=lambda r: (python_minor(r),) + column_key(r))
    path = Path(path)
    if not timed:
        path.unlink(missing_ok=True)
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401
    figure, axis = plt.subplots(figsize=(max(6, 0.2 * len(timed) + 2), 4))
    for x, row in enumerate(timed):
        launch = row["launch_seconds"]
        colour = "#c0392b" if row["verdict"] == "reproduced" else "#27ae60"
        axis.plot([x, x], [launch["median"], launch["p95"]], color=colour)
        axis.plot(x, launch["median"], "o", color=colour)
        axis.plot(x, launch["max"], "x", color=colour)
        if launch.get("past_limit"):
            axis.annotate(f"{launch['past_limit']} past {launch['limit']:g} s",
                          (x, launch["max"]), fontsize=6, rotation=90,
                          textcoords="offset points", xytext=(0, 6))
    axis.set_yscale("log")
    axis.set_xticks(range(len(timed)))
    axis.set_xticklabels([f"{python_minor(r)} {r['target']} "
                          f"{target_version(r)}" for r in timed],
                         rotation=90, fontsize=7)
    axis.set_ylabel("seconds per launch")
    low, high = axis.get_ylim()
    axis.set_yticks([t for t in (0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200)
                     if low <= t <= high])
    axis.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axis.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axis.grid(axis="y", which="both", color="#eeeeee")
    axis.set_title("Launch time per environment: median (dot), p95 (bar "
                   "end), max (x)\nred: race reproduced; green: not",
                   fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_heatmap(rows, path):
    """Failure rate per Python (down) and target version (across), one panel
    per simulator flag that ran."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LinearSegmentedColormap
    from matplotlib.patches import Patch, Rectangle

    flags = [flag for flag in (True, False)
             if any(r["sim"] is flag and r["verdict"] != "skipped"
                    for r in rows)] or [True]
    columns = sorted({column_key(r) for r in rows})
    pythons = sorted({python_minor(r) for r in rows}, key=_version)
    cmap = LinearSegmentedColormap.from_list(
        "rate", ["#fee6ce", "#fdae6b", "#d94801", "#7f2704"])
    width = max(8, 0.55 * len(columns) + 2)
    height = 1.0 + (0.55 * len(pythons) + 1.6) * len(flags)
    figure, axes = plt.subplots(len(flags), 1, figsize=(width, height),
                                squeeze=False)
    for axis, flag in zip(axes[:, 0], flags):
        cells = {(python_minor(r), column_key(r)): r for r in rows
                 if r["sim"] is flag}
        for y, python in enumerate(pythons):
            for x, column in enumerate(columns):
                row = cells.get((python, column))
                _draw_cell(axis, x, y, row, cmap, Rectangle)
        for x in range(1, len(columns)):
            if columns[x][0] != columns[x - 1][0]:  # between the two targets
                axis.axvline(x, color="black", linewidth=2)
        axis.set_xlim(0, len(columns))
        axis.set_ylim(len(pythons), 0)
        axis.set_xticks([x + 0.5 for x in range(len(columns))])
        axis.set_xticklabels([f"{t} {v}" for t, v in columns], rotation=60,
                             ha="right", fontsize=8)
        axis.set_yticks([y + 0.5 for y in range(len(pythons))])
        axis.set_yticklabels([f"Python {p}" for p in pythons], fontsize=9)
        axis.set_title(f"Simulator {'on' if flag else 'off'}: share of test "
                       f"runs failing with the race"
                       + _not_drawn_note(rows, flags), fontsize=10)
        axis.tick_params(length=0)
    figure.legend(handles=[
        Patch(facecolor=ZERO_COLOUR, edgecolor="#999",
              label="0%: ran, never failed"),
        Patch(facecolor=cmap(0.0), label="> 0%"),
        Patch(facecolor=cmap(1.0), label="100%"),
        Patch(facecolor="#e0e0e0", hatch="///", edgecolor="#999",
              label="skip: not built"),
        Patch(facecolor="#5a5a5a", label="err: environment error"),
        Patch(facecolor="white", edgecolor="#999", label="blank: not in matrix")],
        loc="lower center", ncol=6, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)


def _not_drawn_note(rows, flags):
    """A second title line naming a simulator flag whose environments were
    all skipped (so it has no panel), with the commonest reason."""
    notes = []
    for flag in (True, False):
        skipped = [r for r in rows if r["sim"] is flag]
        if skipped and flag not in flags:
            reason = Counter(r["reason"] for r in skipped).most_common(1)[0][0]
            notes.append(f"simulator {'on' if flag else 'off'}: all "
                         f"{len(skipped)} environments skipped: {reason}")
    return "".join(f"\n{note}" for note in notes)


def _draw_cell(axis, x, y, row, cmap, Rectangle):
    if row is None:
        axis.add_patch(Rectangle((x, y), 1, 1, facecolor="white",
                                 edgecolor="#cccccc"))
        return
    if row["verdict"] == "skipped":
        axis.add_patch(Rectangle((x, y), 1, 1, facecolor="#e0e0e0",
                                 hatch="///", edgecolor="#aaaaaa"))
        label, colour = "skip", "#555555"
    elif row["verdict"] == "error":
        axis.add_patch(Rectangle((x, y), 1, 1, facecolor="#5a5a5a",
                                 edgecolor="white"))
        label, colour = "err", "white"
    else:
        rate = row["failure_rate"] or 0.0
        axis.add_patch(Rectangle((x, y), 1, 1, edgecolor="white",
                                 facecolor=cmap(rate) if row["failures"]
                                 else ZERO_COLOUR))
        label = f"{100 * rate:.0f}%"
        colour = "white" if rate > 0.5 else "black"
    axis.text(x + 0.5, y + 0.5, label, ha="center", va="center",
              fontsize=7.5, color=colour)


def build_report(raw_dirs, out_dir, bisect_dir, command, plot=True,
                 pool=False):
    """Tables, REPORT.md and the heatmap in ``out_dir`` from ``raw_dirs``."""
    out_dir = Path(out_dir)
    rows, records = results.write_tables(raw_dirs, out_dir, command, pool)
    rerender_bisects(bisect_dir)
    bisects = load_bisects(bisect_dir)
    bug_source = (PROJECT / "mwe" / "bug.py").read_text()
    text = render_report(rows, records, bisects, bug_source,
                         "failure_rates.md",
                         figures=load_figures(out_dir / "mwe_figures.json"),
                         out_dir=out_dir,
                         time_bisects=load_bisects(bisect_dir, "launch-time"))
    results.write_text_atomic(out_dir / "REPORT.md", text)
    if plot:
        mwe_rows = [r for r in rows if r.get("suite", "mwe") == "mwe"]
        plot_heatmap(mwe_rows, out_dir / "failure_rates.png")
        plot_launch_times(mwe_rows, out_dir / "launch_times.png")
    return rows, records


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        """One line, not argparse's usage block."""
        self.exit(2, f"report: {message} (see `nox -s report -- --help`)\n")


def main(argv=None):
    home = os.environ.get("RACEMATRIX_RESULTS", "results")
    parser = ArgumentParser(prog="nox -s report --")
    parser.add_argument("--raw", nargs="+", default=[f"{home}/raw"],
                        metavar="DIR", help="folders (or files) of raw "
                        f"results to merge (default: {home}/raw)")
    parser.add_argument("--out", default=home,
                        help=f"where the tables and report go (default: {home})")
    parser.add_argument("--bisect", default=f"{home}/bisect",
                        help=f"folder of bisect results (default: {home}/bisect)")
    parser.add_argument("--pool", action="store_true",
                        help="pool one environment's results from several "
                             "machines where every version matches")
    args = parser.parse_args(argv)
    missing = [d for d in args.raw if not Path(d).exists()]
    if missing:
        parser.exit(2, f"report: no such folder or file: "
                       f"{', '.join(missing)}\n")
    warnings.simplefilter("always", results.RawResultWarning)
    warnings.formatwarning = lambda message, *_: f"warning: {message}\n"
    command = "nox -s report" + (f" -- --raw {' '.join(args.raw)}"
                                 if args.raw != [f"{home}/raw"] else "")
    if args.pool:
        command += " --pool"
    try:
        rows, records = build_report(args.raw, args.out, args.bisect, command,
                                     pool=args.pool)
    except results.NoUsableResults as error:
        parser.exit(2, f"report: {error}\n")
    print(f"report: {len(rows)} rows from {len(records)} raw files -> "
          f"{args.out}/REPORT.md, {args.out}/failure_rates.png")


if __name__ == "__main__":
    main(sys.argv[1:])
