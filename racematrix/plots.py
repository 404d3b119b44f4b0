"""The failure-rate heatmap (matplotlib, imported only to draw)."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

from .tables import column_key, kind_rate, python_minor, version_key

# A cell by its verdict: fill, hatch, edge, label, label colour, legend (a
# rate's colour comes from RATES; 0%: ran and never failed, unlike any rate).
CELLS = {"none": ("white", None, "#cccccc", "", "black", "blank: not in matrix"),
         "zero": ("#c7e9c0", None, "white", "0%", "black", "0%: ran, never failed"),
         "skipped": ("#e0e0e0", "///", "#aaaaaa", "skip", "#555555",
                     "skip: not built"),
         # A hang is the fixed simulator's slowdown, not a broken environment.
         "hung": ("#8e6bb5", None, "white", "hung", "white",
                  "hung: runs past the timeout, no race"),
         "error": ("#5a5a5a", None, "white", "err", "white",
                   "err: environment error")}
RATES = ["#fee6ce", "#fdae6b", "#d94801", "#7f2704"]
# The row keys the plots read (not its times: a row not run is stamped now);
# a PNG keeps their hash and this module's, and is not redrawn while equal.
PLOTTED = ("env", "sim", "python", "target", "packages", "requirements",
           "verdict", "reason", "runs", "failures", "failure_rate", "kinds")
DATA_KEY = "Data-SHA256"


def cell_style(row: dict | None, cmap: Any) -> tuple:
    """A heatmap cell: the pattern's rate where counted, else every test's (*)."""
    if row is None or row["verdict"] in CELLS:
        return CELLS["none" if row is None else row["verdict"]][:5]
    pattern = kind_rate(row, "pattern")
    rate = pattern["rate"] if pattern else row["failure_rate"] or 0.0
    label = f"{100 * rate:.0f}%" + ("" if pattern else "*")
    if not (pattern["failures"] if pattern else row["failures"]):
        return CELLS["zero"][:3] + (label, "black")
    return (cmap(rate), None, "white", label,
            "white" if rate > 0.5 else "black")


def not_drawn(rows: list[dict], flags: list[bool]) -> str:
    """Title lines for a simulator flag all skipped (so no panel)."""
    return "".join(
        f"\nsimulator {'on' if flag else 'off'}: all {len(skipped)} "
        f"environments skipped: "
        f"{Counter(r['reason'] for r in skipped).most_common(1)[0][0]}"
        for flag in (True, False) if flag not in flags
        for skipped in [[r for r in rows if r["sim"] is flag]] if skipped)


def plot_heatmap(rows: list[dict], path: str | Path) -> None:
    """Failure rate per Python and target version, a panel per simulator flag."""
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
    cmap = LinearSegmentedColormap.from_list("rate", RATES)
    figure, axes = plt.subplots(len(flags), 1, squeeze=False, figsize=(
        max(8, 0.55 * len(columns) + 2),
        1.0 + (0.55 * len(pythons) + 1.6) * len(flags)))
    notes = not_drawn(rows, flags)
    for axis, flag in zip(axes[:, 0], flags):
        cells = {(python_minor(r), column_key(r)): r for r in rows
                 if r["sim"] is flag}
        for y, python in enumerate(pythons):
            for x, column in enumerate(columns):
                fill, hatch, edge, label, colour = cell_style(
                    cells.get((python, column)), cmap)
                axis.add_patch(Rectangle((x, y), 1, 1, facecolor=fill,
                                         hatch=hatch, edgecolor=edge))
                axis.text(x + 0.5, y + 0.5, label, ha="center", va="center",
                          fontsize=7.5, color=colour)
        for x in range(1, len(columns)):
            if columns[x][0] != columns[x - 1][0]:  # between the two targets
                axis.axvline(x, color="black", linewidth=2)
        axis.set_xlim(0, len(columns))
        axis.set_ylim(len(pythons), 0)
        axis.set_xticks([x + 0.5 for x in range(len(columns))],
                        [f"{t} {v}" for t, v in columns], rotation=60,
                        ha="right", fontsize=8)
        axis.set_yticks([y + 0.5 for y in range(len(pythons))],
                        [f"Python {p}" for p in pythons], fontsize=9)
        axis.set_title(f"Simulator {'on' if flag else 'off'}: share of the "
                       f"pattern's test runs failing with the race{notes}",
                       fontsize=10)
        axis.tick_params(length=0)
    legend: list[tuple[Any, ...]] = [CELLS["zero"], (cmap(0.0), *[None] * 4, "> 0%"),
              (cmap(1.0), *[None] * 4, "100%"),
              *(CELLS[k] for k in ("skipped", "hung", "error", "none"))]
    figure.legend(handles=[
        *(Patch(facecolor=c[0], hatch=c[1], edgecolor="#999", label=c[5])
          for c in legend),
        Patch(facecolor="white", edgecolor="white",
              label="*: every test's rate (kinds not counted)")],
        loc="lower center", ncol=4, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.06, 1, 1))
    figure.savefig(path, dpi=110, metadata={"Software": None,
                                            DATA_KEY: data_key(rows)})
    plt.close(figure)


def data_key(rows: list[dict]) -> str:
    text = json.dumps([[r.get(k) for k in PLOTTED] for r in rows],
                      default=str) + Path(__file__).read_text()
    return hashlib.sha256(text.encode()).hexdigest()


def drawn_key(path: Path) -> str | None:
    """The data hash a PNG was drawn from (Pillow: matplotlib's own)."""
    from PIL import Image
    try:
        with Image.open(path) as image:
            return image.text.get(DATA_KEY)  # type: ignore[attr-defined]
    except OSError:
        return None


def draw_all(rows: list[dict], out_dir: str | Path) -> None:
    """The heatmap of the MWE's unpatched rows, unless drawn from them."""
    mwe_rows = [r for r in rows if r["suite"] == "mwe" and not r["patch"]]
    path = Path(out_dir) / "failure_rates.png"
    if drawn_key(path) != data_key(mwe_rows):
        plot_heatmap(mwe_rows, path)
