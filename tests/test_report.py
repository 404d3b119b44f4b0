import json
import re

import pytest

from racematrix import (plots, rawresult, report, report_sections,
                        report_session, tables)

pytest.importorskip("matplotlib")

SECTIONS = ["## The error", "## Reproducer", "## Environments", "## Bisect",
            "## Root cause", "## System", "## Reproduce everything"]


@pytest.fixture
def built(tmp_path, data_dir):
    report.build_report([data_dir / "raw"], tmp_path, tmp_path / "bisect",
                        "nox -s report")
    return tmp_path


def raw_records(*folders):
    records = {}
    for folder in folders:
        for path in folder.glob("*.json"):
            data = json.loads(path.read_text())
            records[data["env"]] = data
    return records


def test_sections_in_order_and_size(built):
    text = (built / "REPORT.md").read_text()
    positions = [text.index(section) for section in SECTIONS]
    assert positions == sorted(positions)
    assert len(text) < 65_000
    assert "```python\n\"\"\"Reproducer" in text
    assert "NUMBA_ENABLE_CUDASIM=1 python bug.py" in text


def test_every_table_value_traces_to_a_raw_file(built, data_dir):
    records = raw_records(data_dir / "raw")
    text = (built / "REPORT.md").read_text()
    table = text.split("## Environments")[1].split("## Bisect")[0]
    rows = [line.split("|")[1:-1] for line in table.splitlines()
            if re.match(r"\| 3\.\d", line)]
    assert rows, "the table has rows"
    ran = {env: r for env, r in records.items() if r["verdict"] != "skipped"}
    assert len(rows) == len(ran)
    for cells in rows:
        (python, target, numba, numba_cuda, numpy, asked, sim, runs, failures,
         rate, _, launch, verdict) = (c.strip() for c in cells)
        matches = [r for r in ran.values()
                   if r["python"] == python and r["target"] == target
                   and r["packages"].get("numba", "–") == numba
                   and r["packages"].get("numba-cuda", "–") == numba_cuda
                   and r["sim"] == (sim == "on")]
        assert len(matches) == 1, cells
        raw = matches[0]
        assert asked == " ".join(raw["spec"]["requirements"])
        assert (int(runs), int(failures), verdict) == (
            raw["runs"], raw["failures"], raw["verdict"])
        assert rate == f"{100 * raw['failures'] / raw['runs']:.1f}%"
        assert launch == tables.format_launch(raw.get("launch_seconds"))
    skipped = [r for r in records.values() if r["verdict"] == "skipped"]
    for raw in skipped:
        assert raw["env"] in text and raw["reason"] in text


def test_evidence_is_counted_from_raw(built, data_dir):
    records = raw_records(data_dir / "raw")
    threads = [t for r in records.values() if r["verdict"] == "reproduced"
               for t in r["summary"]["failing_threads"]]
    text = (built / "REPORT.md").read_text()
    assert f"of {len(threads)} failing threads" in text
    assert "0 had returned early" in text


def test_same_raw_files_same_report(built, tmp_path, data_dir):
    again = tmp_path / "again"
    report.build_report([data_dir / "raw"], again, again / "bisect",
                        "nox -s report")
    for name in ("REPORT.md", "failure_rates.md", "failure_rates.csv",
                 "failure_rates.json", "failure_rates.png"):
        assert (built / name).read_bytes() == (again / name).read_bytes(), name
    assert (built / "failure_rates.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_merging_two_machines_keeps_them_apart(tmp_path, data_dir):
    rows, records = report.build_report(
        [data_dir / "raw", data_dir / "raw-machine-b"], tmp_path,
        tmp_path / "bisect", "nox -s report -- --raw a b")
    envs = [row["env"] for row in rows]
    for env in raw_records(data_dir / "raw-machine-b"):
        assert f"{env}@machine-b" in envs and f"{env}@vm" in envs
    machines = (tmp_path / "REPORT.md").read_text().split("## System")[1]
    assert "- machine-b:" in machines and "- vm:" in machines


def test_corrupt_file_is_named_in_merge(tmp_path, data_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.json").write_text("{")
    with pytest.warns(UserWarning, match="x.json"):
        rows, _ = report.build_report([data_dir / "raw", broken],
                                      tmp_path / "out", tmp_path / "bisect",
                                      "nox -s report")
    assert len(rows) == len(list((data_dir / "raw").glob("*.json")))


def test_pooling_adds_up_only_identical_environments(tmp_path, data_dir):
    rows, _ = report.build_report(
        [data_dir / "raw", data_dir / "raw-machine-b"], tmp_path,
        tmp_path / "bisect", "nox -s report", pool=True)
    records_a = raw_records(data_dir / "raw")
    records_b = raw_records(data_dir / "raw-machine-b")
    for env, b in records_b.items():
        a = records_a[env]
        same = (a["python"], a["packages"]) == (b["python"], b["packages"])
        pooled = [r for r in rows if r["env"] == env]
        if same:
            assert len(pooled) == 1
            assert pooled[0]["runs"] == a["runs"] + b["runs"]
            assert pooled[0]["failures"] == a["failures"] + b["failures"]
            assert "pooled from 2 machines" in pooled[0]["reason"]
        else:
            assert len([r for r in rows if r["env"].startswith(env)]) == 2


def test_different_versions_are_not_pooled(tmp_path, data_dir):
    other = tmp_path / "other"
    other.mkdir()
    record = json.loads((data_dir / "raw-machine-b" /
                         "py3.11-numba-0.60.0-sim1.json").read_text())
    record["packages"]["numpy"] = "1.26.4"
    (other / "x.json").write_text(json.dumps(record))
    with pytest.warns(UserWarning, match="not pooled"):
        rows, _ = report.build_report([data_dir / "raw", other], tmp_path / "o",
                                      tmp_path / "bisect", "r", pool=True)
    assert {"py3.11-numba-0.60.0-sim1@vm",
            "py3.11-numba-0.60.0-sim1@machine-b"} <= {r["env"] for r in rows}


def test_long_matrices_become_one_row_per_release(data_dir):
    records = rawresult.load_raw_dirs([data_dir / "raw"])
    rows = [r for r in tables.merge_records(records)
            if r["verdict"] != "skipped"]
    lines = report_sections.environment_table(rows, pivot_over=0)
    body = [line for line in lines if line.startswith("| on") or
            line.startswith("| off")]
    pythons = sorted({tables.python_minor(r) for r in rows})
    assert lines[2].count("Python ") == len(pythons)
    cells = [c.strip() for line in body for c in line.split("|")[5:-2]]
    expected = sorted(f"{r['failures']}/{r['runs']} "
                      f"({100 * r['failures'] / r['runs']:.1f}%)" for r in rows)
    assert sorted(c for c in cells if c != "–") == expected


def test_mwe_figures_are_quoted_from_their_file(tmp_path, data_dir):
    figures = json.loads((data_dir / "mwe_figures.json").read_text())
    (tmp_path / "mwe_figures.json").write_text(json.dumps(figures))
    report.build_report([data_dir / "raw"], tmp_path, tmp_path / "bisect",
                        "nox -s report", plot=False)
    text = (tmp_path / "REPORT.md").read_text()
    root_cause = text.split("## Root cause")[1].split("## System")[0]
    for point in figures["sweep"]:
        assert (f"{point['value']}: {point['failures']}/{point['runs']} "
                f"({100 * point['failure_rate']:.0f}%)") in root_cause
    faithful = figures["faithful"]
    assert f"{faithful['failures']} of {faithful['runs']} runs failed" in root_cause
    trigger = figures["trigger_faithful"]
    assert f"{trigger['failures']} of {trigger['runs']} launches failed" in root_cause
    assert figures["command"] in text.split("## Reproduce everything")[1]


def test_report_without_mwe_figures_says_nothing_of_them(built):
    assert "How often it strikes" not in (built / "REPORT.md").read_text()


def test_heatmap_names_a_flag_whose_environments_were_all_skipped(data_dir):
    rows = tables.merge_records(rawresult.load_raw_dirs([data_dir / "raw"]))
    skipped = [r for r in rows if not r["sim"]]
    assert skipped and all(r["verdict"] == "skipped" for r in skipped)
    note = plots._not_drawn_note(rows, [True])
    assert note == (f"\nsimulator off: all {len(skipped)} environments "
                    f"skipped: {skipped[0]['reason']}")
    assert plots._not_drawn_note(rows, [True, False]) == ""


def test_a_mistyped_option_is_one_line(capsys):
    with pytest.raises(SystemExit) as exited:
        report_session.main(["--rwa", "x"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "unrecognized arguments: --rwa x" in error


def test_report_with_only_bad_inputs_writes_nothing(tmp_path, capsys):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.json").write_text('{"env": 5}')
    out = tmp_path / "out"
    with pytest.warns(rawresult.RawResultWarning):
        with pytest.raises(SystemExit) as exited:
            report_session.main(["--raw", str(tmp_path / "junk"), "--out", str(out),
                         "--bisect", str(tmp_path / "bisect")])
    assert exited.value.code == 2
    assert "nothing was written" in capsys.readouterr().err
    assert not out.exists() or list(out.iterdir()) == []


def timed_rows(data_dir):
    """Real raw records of a buggy and a fixed simulator with their
    launch-time workload, measured here."""
    folder = data_dir / "raw-launch"
    return tables.merge_records(rawresult.load_raw_dirs([folder]))


def test_price_of_fix_compares_launch_times_from_the_rows(data_dir, tmp_path):
    rows = timed_rows(data_dir)
    lines = report_sections.price_of_fix(rows, tmp_path)
    text = "\n".join(lines)
    assert lines[0] == "## The price of the fix"
    for row in rows:
        launch = row["launch_seconds"]
        assert f"{launch['median']:.2f} / {launch['p95']:.2f} / " \
               f"{launch['max']:.2f}" in text
    assert "| with the race | 1 |" in text and "| without it | 1 |" in text


def test_launch_cells_and_plot(data_dir, tmp_path):
    rows = timed_rows(data_dir)
    assert tables.format_launch(None) == "–"
    cells = dict(zip(tables.TABLE_COLUMNS, tables.table_cells(rows[0])))
    assert cells["launch s: median / p95 / max"] != "–"
    plots.plot_launch_times(rows, tmp_path / "launch.png")
    assert (tmp_path / "launch.png").stat().st_size > 0
    plots.plot_launch_times([], tmp_path / "launch.png")
    assert not (tmp_path / "launch.png").exists()


def test_stack_evidence_counts_the_frames_threads_were_in(data_dir, tmp_path):
    rows = timed_rows(data_dir)
    stacks = tmp_path / "launch_time_stacks"
    stacks.mkdir()
    (stacks / "x.stack.txt").write_text(
        (data_dir / "launch-stack.txt").read_text())
    rows[1]["launch_seconds"]["stack_file"] = "launch_time_stacks/x.stack.txt"
    text = "\n".join(report_sections.stack_evidence(rows, tmp_path))
    assert "in swapped_cuda_module" in text and "site-packages" not in text
