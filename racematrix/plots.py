"""failure_rates.png: the heatmap of ``tables.grid`` (matplotlib, imported to draw)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

# A cell that shows no rate: fill, label, legend (a hang is the fixed
# simulator's slowdown, not a broken environment).
CELLS = {"hung": ("#8e6bb5", "hung", "hung: runs past the timeout, no race"),
         "error": ("#5a5a5a", "err", "err: environment error"),
         None: ("white", "", "blank: skipped or not in the matrix")}
ZERO = "#c7e9c0"
RATES = ["#fee6ce", "#fdae6b", "#d94801", "#7f2704"]
LEGEND = [(ZERO, "0%: ran, never failed"), (RATES[0], "> 0%"),
          (RATES[-1], "100%"), *((c[0], c[2]) for c in CELLS.values()),
          ("white", "*: every test's rate (kinds not counted)")]


def cell_style(cell: dict | None, cmap: Any) -> tuple[Any, str, str]:
    """Fill, label and its colour: the pattern's rate, else every test's (*)."""
    if cell is None or cell["verdict"] in CELLS:
        fill, label, _ = CELLS[cell["verdict"] if cell else None]
        return fill, label, "white" if cell else "black"
    counted = cell["pattern"] or cell
    rate = counted["rate" if cell["pattern"] else "failure_rate"] or 0.0
    label = f"{100 * rate:.0f}%" + ("" if cell["pattern"] else "*")
    if not counted["failures"]:
        return ZERO, label, "black"
    return cmap(rate), label, "white" if rate > 0.5 else "black"


def plot_heatmap(grid: dict, path: str | Path) -> None:
    """A cell per line of the grid (simulator, target, version) and Python."""
    from matplotlib.colors import LinearSegmentedColormap
    from matplotlib.figure import Figure  # no pyplot: no backend, no state
    from matplotlib.patches import Patch, Rectangle
    lines, pythons = grid["lines"], grid["pythons"]
    cmap = LinearSegmentedColormap.from_list("rate", RATES)
    figure = Figure(figsize=(max(8, 3 + 1.2 * len(pythons)),
                             2 + 0.3 * len(lines)))
    axis = figure.subplots()
    for y, line in enumerate(lines):
        for x, python in enumerate(pythons):
            fill, label, colour = cell_style(line["cells"][python], cmap)
            axis.add_patch(Rectangle((x, y), 1, 1, facecolor=fill,
                                     edgecolor="white"))
            axis.text(x + 0.5, y + 0.5, label, ha="center", va="center",
                      fontsize=7.5, color=colour)
        if y and line["target"] != lines[y - 1]["target"]:
            axis.axhline(y, color="black", linewidth=2)
    axis.set(xlim=(0, max(len(pythons), 1)), ylim=(max(len(lines), 1), 0))
    axis.set_xticks([x + 0.5 for x in range(len(pythons))],
                    [f"Python {p}" for p in pythons], fontsize=9)
    axis.set_yticks([y + 0.5 for y in range(len(lines))], [
        f"{'' if line['sim'] else 'simulator off: '}{line['target']} "
        f"{line['version']}" + ("" if line["target"] == "numba" else
                                f" (numba {line['numba']})") for line in lines],
        fontsize=8)
    axis.set_title("Share of the pattern's test runs failing with the race",
                   fontsize=10)
    axis.tick_params(length=0)
    figure.legend(handles=[Patch(facecolor=fill, edgecolor="#999", label=text)
                           for fill, text in LEGEND],
                  loc="lower center", ncol=3, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0.1, 1, 1))
    figure.savefig(path, dpi=110, metadata={"Software": None})
