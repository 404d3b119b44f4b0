import json

from racematrix import mwe_figures
from racematrix.markdown import render


def test_render_shows_every_measurement(data_dir):
    figures = json.loads((data_dir / "mwe_figures.json").read_text())
    text = render("mwe_figures.md", figures=figures)
    tables = [line for line in text.splitlines() if line.startswith("| ")]
    # a header per table, a line per Python, per run of the suite, per knob
    runs = ("fixed", "faithful", "aggressive", "trigger", "trigger_faithful")
    assert len(tables) == 3 + len(figures["pythons"]) + len(runs) + len(
        mwe_figures.SWEEP)
    for name in runs:
        row = figures[name]
        assert f"| {row['runs']} | {row['failures']} | {row['other']} |" \
            in text
    for row in figures["pythons"]:
        assert f"| {row['python']} | {row['numba']} | {row['reproduced']} of " \
            f"{row['of']} |" in text

