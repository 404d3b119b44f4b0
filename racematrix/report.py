"""``results/REPORT.md``, the paste-ready bug report, and everything
rewritten with it from the raw results: the tables, the bisect folder's
Markdown and the pictures. Every figure in them is computed from those
files; the session drivers call ``build_report`` once per run."""
import json
import warnings
from pathlib import Path

from .bisect_files import load_bisects, rerender_bisects
from .client_report import cubie_section
from .fix_report import fix_section, patches_in, render_slowdown
from .fileio import write_text_atomic
from .markdown import table
from .plots import draw_all
from .rawresult import RawResultWarning, machine_label
from .report_sections import (PIVOT_OVER, boundary_side, condensed_rows,
                              environment_table,
                              evidence, first_error, knob_lines, price_of_fix,
                              summary_sentences)
from .tables import left_out_lines, reason_cell, write_tables

PROJECT = Path(__file__).resolve().parent.parent
MAX_REPORT_CHARS = 65_000


def load_figures(path):
    """The MWE's figures (``nox -s mwe_figures``), or None."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        warnings.warn(f"left out {path}: not readable JSON ({error})",
                      RawResultWarning, stacklevel=2)
        return None


def render_report(rows, records, bisects, bug_source, table_link,
                  pivot_over=PIVOT_OVER, figures=None, out_dir=None,
                  time_bisects=(), left_out=()):
    # The MWE's rows make the main sections; other suites have their own.
    all_rows, all_records = rows, records
    # Patched rows have their own section ("A fix without the price").
    rows = [r for r in rows if r.get("suite", "mwe") == "mwe"
            and not r.get("patch")]
    records = [(p, r) for p, r in records if r.get("suite", "mwe") == "mwe"
               and not (r.get("spec") or {}).get("patch")]
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
             ] + left_out_lines(left_out) + environment_table(shown, pivot_over)
    lines += last_attempt_lines(all_rows)
    for reason, group in sorted(skipped.items()):
        lines.append(f"\nSkipped, {reason}: {len(group)} environment(s) "
                     f"({', '.join(sorted(r['env'] for r in group)[:8])}"
                     f"{', …' if len(group) > 8 else ''}).")
    lines += ["", "## Bisect", ""]
    if bisects:
        lines += table(
            ("package", "Python", "extra requirements", "range",
             "last before", "first after", "probes", "result"),
            ((b["package"], b["python"], " ".join(b.get("with") or []) or "–",
              f"{(b.get('releases') or ['–'])[0]}–"
              f"{(b.get('releases') or ['–'])[-1]}",
              boundary_side((b.get("boundary") or {}).get("before", {})),
              boundary_side((b.get("boundary") or {}).get("after", {})),
              b["decisive_probes"],
              ("**partial**: " if b.get("partial") else "") + b["summary"])
             for b in bisects))
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
    for patch in patches_in(all_rows):
        lines += fix_section(all_rows, all_records, patch)
    lines += cubie_section([r for r in all_rows if r.get("suite") == "cubie"],
                           [r for _, r in all_records])
    records = all_records
    machines = {machine_label(r): r.get("machine", {})
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


def last_attempt_lines(rows):
    """A line per row whose last attempt measured nothing: the row keeps
    its figures, and the reader learns the rerun failed."""
    failed = [row for row in rows if row.get("last_attempt")]
    if not failed:
        return []
    return ["", f"Last attempt failed for {len(failed)} environment(s); "
                f"their figures are from the last run that measured:", "",
            *(f"- {row['env']}: {reason_cell(row)}" for row in failed)]


def build_report(raw_dirs, out_dir, bisect_dir, command, plot=True,
                 pool=False):
    """Tables, REPORT.md and the heatmap in ``out_dir`` from ``raw_dirs``."""
    out_dir = Path(out_dir)
    left_out = []
    rows, records = write_tables(raw_dirs, out_dir, command, pool, left_out)
    rerender_bisects(bisect_dir)
    bisects = load_bisects(bisect_dir)
    bug_source = (PROJECT / "mwe" / "bug.py").read_text()
    text = render_report(rows, records, bisects, bug_source,
                         "failure_rates.md",
                         figures=load_figures(out_dir / "mwe_figures.json"),
                         out_dir=out_dir,
                         time_bisects=load_bisects(bisect_dir, "launch-time"),
                         left_out=left_out)
    write_text_atomic(out_dir / "REPORT.md", text)
    write_text_atomic(out_dir / "SLOWDOWN.md", render_slowdown(
        rows, records, load_bisects(bisect_dir, "launch-time"), out_dir,
        (PROJECT / "mwe" / "bug_slowdown.py").read_text()))
    if plot:
        draw_all(rows, out_dir)
    return rows, records
