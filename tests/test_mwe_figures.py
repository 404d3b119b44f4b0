import json

from racematrix import mwe_figures


def test_render_traces_every_figure_to_the_measurement(data_dir):
    figures = json.loads((data_dir / "mwe_figures.json").read_text())
    text = mwe_figures.render(figures, figures["command"])
    for row in figures["pythons"]:
        assert (f"| {row['python']} | {row['numba']} | {row['reproduced']} of "
                f"{row['of']} | {row['by_pattern']} | "
                f"{row['median_x_seconds']} |") in text
    for name in ("fixed", "faithful", "aggressive", "trigger",
                 "trigger_faithful"):
        row = figures[name]
        assert (f"| {row['runs']} | {row['failures']} | {row['other']} | "
                f"{100 * row['failure_rate']:.2f}% |") in text
    assert f"at most {figures['suite_miss']['probability']:.1e}" in text
    assert text.count("| `--") == len(mwe_figures.SWEEP)


def test_suite_miss_bound_uses_the_lower_bound_for_every_case():
    bound = mwe_figures.suite_miss_bound(0.5, 16)
    assert bound == {"cases": 16, "per_case_rate_low": 0.5,
                     "probability": 0.5 ** 16}
