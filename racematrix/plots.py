"""The failure-rate heatmap and the launch times per environment
(matplotlib, imported when drawing: the rest of the package runs without)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from .tables import (column_key, kind_rate, python_minor, target_version,
                     version_key)

ZERO_COLOUR = "#c7e9c0"  # ran and never failed: unlike any failure rate
# A hang is the fixed simulator's slowdown, not a broken environment.
HUNG_COLOUR = "#8e6bb5"
# A cell without a rate, by verdict: fill, hatch, edge, label, its colour.
UNMEASURED = {"skipped": ("#e0e0e0", "///", "#aaaaaa", "skip", "#555555"),
              "hung": (HUNG_COLOUR, None, "white", "hung", "white"),
              "error": ("#5a5a5a", None, "white", "err", "white")}


def plot_launch_times(rows: list[dict], path: str | Path) -> None:
    """Median, p95 and max launch per timed environment; an old picture
    goes where no row was timed."""
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
    from matplotlib.ticker import FormatStrFormatter, NullFormatter
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
    axis.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    axis.yaxis.set_minor_formatter(NullFormatter())
    axis.grid(axis="y", which="both", color="#eeeeee")
    axis.set_title("Launch time per environment: median (dot), p95 (bar "
                   "end), max (x)\nred: race reproduced; green: not",
                   fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def plot_heatmap(rows: list[dict], path: str | Path) -> None:
    """Failure rate per Python and target version, a panel per simulator
    flag that ran."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LinearSegmentedColormap
    from matplotlib.patches import Patch, Rectangle

    flags = [flag for flag in (True, False)
             if any(r["sim"] is flag and r["verdict"] != "skipped"
                    for r in rows)] or [True]
    columns = sorted({column_key(r) for r in rows})
    pythons = sorted({python_minor(r) for r in rows}, key=version_key)
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
                _draw_cell(axis, x, y, cells.get((python, column)), cmap,
                           Rectangle)
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
        axis.set_title(f"Simulator {'on' if flag else 'off'}: share of the "
                       f"pattern's test runs failing with the race"
                       + _not_drawn_note(rows, flags), fontsize=10)
        axis.tick_params(length=0)
    figure.legend(handles=[
        Patch(facecolor=ZERO_COLOUR, edgecolor="#999",
              label="0%: ran, never failed"),
        Patch(facecolor=cmap(0.0), label="> 0%"),
        Patch(facecolor=cmap(1.0), label="100%"),
        Patch(facecolor="#e0e0e0", hatch="///", edgecolor="#999",
              label="skip: not built"),
        Patch(facecolor=HUNG_COLOUR, label="hung: runs past the timeout, "
              "no race"),
        Patch(facecolor="#5a5a5a", label="err: environment error"),
        Patch(facecolor="white", edgecolor="#999", label="blank: not in matrix"),
        Patch(facecolor="white", edgecolor="white",
              label="*: every test's rate (kinds not counted)")],
        loc="lower center", ncol=4, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=110, metadata={"Software": None})
    plt.close(figure)


def _not_drawn_note(rows: list[dict], flags: list[bool]) -> str:
    """A title line for a simulator flag all skipped (so no panel)."""
    notes = []
    for flag in (True, False):
        skipped = [r for r in rows if r["sim"] is flag]
        if skipped and flag not in flags:
            reason = Counter(r["reason"] for r in skipped).most_common(1)[0][0]
            notes.append(f"simulator {'on' if flag else 'off'}: all "
                         f"{len(skipped)} environments skipped: {reason}")
    return "".join(f"\n{note}" for note in notes)


def _draw_cell(axis: Any, x: int, y: int, row: dict | None, cmap: Any,
               Rectangle: Any) -> None:
    if row is None:
        axis.add_patch(Rectangle((x, y), 1, 1, facecolor="white",
                                 edgecolor="#cccccc"))
        return
    if row["verdict"] in UNMEASURED:
        fill, hatch, edge, label, colour = UNMEASURED[row["verdict"]]
    else:
        # The pattern's cases are the rate where the row counted its kinds;
        # an older row's rate is every test's, marked with a star.
        pattern = kind_rate(row, "pattern")
        rate = pattern["rate"] if pattern else row["failure_rate"] or 0.0
        failed = pattern["failures"] if pattern else row["failures"]
        fill, hatch, edge = cmap(rate) if failed else ZERO_COLOUR, None, "white"
        label = f"{100 * rate:.0f}%" + ("" if pattern else "*")
        colour = "white" if rate > 0.5 else "black"
    axis.add_patch(Rectangle((x, y), 1, 1, facecolor=fill, hatch=hatch,
                             edgecolor=edge))
    axis.text(x + 0.5, y + 0.5, label, ha="center", va="center",
              fontsize=7.5, color=colour)


def draw_all(rows: list[dict], out_dir: str | Path) -> None:
    mwe_rows = [r for r in rows if r.get("suite", "mwe") == "mwe"
                and not r.get("patch")]
    plot_heatmap(mwe_rows, Path(out_dir) / "failure_rates.png")
    plot_launch_times(mwe_rows, Path(out_dir) / "launch_times.png")
