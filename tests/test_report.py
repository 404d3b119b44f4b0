"""The report's structure (``report.build``) traced to the raw
files it came from, and the files rendered from it."""
import json
import shutil
import sys
from collections import Counter

import pytest

from racematrix import (markdown, rawresult, report,
                        reproducers, tables)
from racematrix.errors import BadInput

pytest.importorskip("matplotlib")
pytest.importorskip("jinja2")

WRITTEN = ("REPORT.md", "failure_rates.md", "failure_rates.csv",
           "failure_rates.json", *(f"upstream/{name}.md" for name in (
               "numba-cuda-issue", "numba-cuda-pr", "numba-cuda-690-comment",
               "cubie-issue")))


@pytest.fixture
def built(tmp_path, data_dir):
    report.build_report([data_dir / "raw"], tmp_path, tmp_path / "bisect",
                        "nox -s report")
    return tmp_path


def model_of(data_dir):
    """The structure of tests/data/raw alone (no bisect, no recorded file)."""
    records = rawresult.load_raw_dirs([data_dir / "raw"])
    rows = tables.merge_records(records)
    return rows, report.build(rows, [r for _, r in records],
                              {"machines": "vm"}, data_dir / "-", data_dir / "-")


def raw_records(*folders):
    return {data["env"]: data for folder in folders
            for data in map(json.loads, map(lambda p: p.read_text(),
                                            folder.glob("*.json")))}


def test_every_file_is_written_and_the_same_from_the_same_raw_files(
        built, tmp_path, data_dir):
    again = tmp_path / "again"
    report.build_report([data_dir / "raw"], again, again / "bisect",
                        "nox -s report")
    for name in (*WRITTEN, "failure_rates.png"):
        assert (built / name).read_bytes() == (again / name).read_bytes(), name
    assert (built / "failure_rates.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # GitHub's limit for an issue's body
    assert len((built / "REPORT.md").read_text()) < 65_000


def test_every_grid_cell_traces_to_a_raw_file(data_dir):
    rows, model = model_of(data_dir)
    ran = {(tables.python_minor(r), r["target"], tables.target_version(r)): r
           for r in rows if r["verdict"] != "skipped"}
    cells = {(python, line["target"], line["version"]): cell
             for line in model["grid"]["lines"]
             for python, cell in line["cells"].items() if cell}
    assert cells.keys() == ran.keys()
    for key, cell in cells.items():
        row = ran[key]
        assert (cell["runs"], cell["failures"], cell["verdict"]) == (
            row["runs"], row["failures"], row["verdict"])
    assert model["skipped"] == Counter(r["reason"] for r in rows
                                       if r["verdict"] == "skipped")


def test_test_kinds_are_their_own_columns_and_the_pattern_is_the_rate(
        data_dir, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(data_dir / "raw", raw)
    path = raw / "py3.11-numba-0.60.0-sim1.json"
    record = json.loads(path.read_text())
    record["kinds"] = {
        "pattern": {"runs": 16, "failures": 9, "other": 0, "hangs": 0},
        "trigger": {"runs": 1, "failures": 1, "other": 0, "hangs": 0},
        "control": {"runs": 5, "failures": 0, "other": 0, "hangs": 0}}
    path.write_text(json.dumps(record))
    rows, _ = tables.write_tables([raw], tmp_path, "test")
    row = next(r for r in rows if r["env"] == record["env"])
    assert tables.kind_rate(row, "pattern") == {"runs": 16, "failures": 9,
                                                "rate": 0.5625}
    others = [r for r in rows if r["env"] != record["env"]]
    assert all(tables.kind_rate(r, "pattern") is None for r in others)
    cells = dict(zip(tables.TABLE_COLUMNS, tables.table_cells(row)))
    assert (cells["pattern"], cells["trigger"], cells["controls"]) == (
        "9/16 (56.2%)", "1/1 (100.0%)", "0/5 (0.0%)")
    assert dict(zip(tables.TABLE_COLUMNS, tables.table_cells(others[0])))[
        "pattern"] == "–"
    header = (tmp_path / "failure_rates.csv").read_text().splitlines()[0]
    written = next(line for line in (tmp_path / "failure_rates.csv")
                   .read_text().splitlines()
                   if line.startswith(record["env"] + ","))
    csv = dict(zip(header.split(","), written.split(",")))
    assert (csv["pattern_runs"], csv["pattern_failures"]) == ("16", "9")
    grid = tables.grid(rows)
    cell = next(line["cells"]["3.11"] for line in grid["lines"]
                if line["version"] == "0.60.0" and line["sim"])
    assert cell["pattern"]["failures"] == 9 and cell["control"]["runs"] == 5


def test_one_column_spec_makes_the_csv_and_the_markdown(data_dir, tmp_path):
    rows, _ = tables.write_tables([data_dir / "raw"], tmp_path, "test")
    csv_lines = (tmp_path / "failure_rates.csv").read_text().splitlines()
    assert csv_lines[0].split(",") == [c.name for c in tables.COLUMNS]
    assert len(csv_lines) == len(rows) + 1
    lines = (tmp_path / "failure_rates.md").read_text().splitlines()
    header = lines.index("| " + " | ".join(tables.TABLE_COLUMNS) + " |")
    assert len(lines) == header + len(rows) + 2


def test_the_tables_give_the_load_the_rows_ran_under(data_dir, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(data_dir / "raw", raw)
    loads = {"py3.11-numba-0.60.0-sim1.json": [0.5, 1.75],
             "py3.12-numba-0.56.4-sim1.json": [2.0, 0.25]}
    for name, load in loads.items():
        record = json.loads((raw / name).read_text())
        (raw / name).write_text(json.dumps({**record, "load": load}))
    tables.write_tables([raw], tmp_path, "test")
    provenance = json.loads((tmp_path / "failure_rates.json").read_text())[
        "provenance"]
    unknown = len(list(raw.glob("*.json"))) - len(loads)
    assert provenance["load"] == f"0.25 to 2.0 ({unknown} rows: not recorded)"
    tables.write_tables([data_dir / "raw"], tmp_path, "test")
    assert "start and end: not recorded." in (
        tmp_path / "failure_rates.md").read_text()


def test_evidence_is_counted_from_raw(data_dir):
    records = raw_records(data_dir / "raw")
    _, model = model_of(data_dir)
    threads = [t for r in records.values() if r["verdict"] == "reproduced"
               for t in r["summary"]["failing_threads"]]
    counted = model["evidence"]["failing_threads"]
    assert sum(counted.values()) == len(threads)
    assert counted.get("early", 0) == sum(
        t["index"] >= t["n_threads"] for t in threads)
    assert model["error"] == next(
        r["summary"]["first_target_message"] for r in records.values()
        if r["summary"].get("first_target_message"))


def test_a_launch_cut_at_the_limit_is_a_bound():
    assert markdown.seconds(2.7, True) == ">= 2.70"
    assert tables.format_launch({"n": 3, "median": 0.87, "p95": 5.71,
                                 "max": 5.71, "limit": 5.71, "past_limit": 2}
                                ) == "0.87 / >= 5.71 / >= 5.71 (2 of 3 past 5.71 s)"


def test_the_price_is_the_bisect_on_time_with_its_newest_launches(
        tmp_path, data_dir):
    def ends(python, n):
        return {"package": "numba-cuda", "python": python,
                "decisive_probes": 2, "summary": "rose",
                "metric": "launch-time", "releases": ["0.24.0", "0.30.4"],
                "boundary": {"before": {"version": "0.24.0", "verdict": "fast"},
                             "after": {"version": "0.30.4", "verdict": "slow"}},
                "tested": [{"version": "0.24.0", "n": 7, "median": 0.9,
                            "p95": 1.0, "past_limit": 0},
                           {"version": "0.30.4", "n": n, "median": 5.0,
                            "p95": 5.0, "past_limit": 6}],
                "provenance": {"command": "nox -s bisect"}}
    entries = [report.bisect_entry(ends(*given))
               for given in (("3.10", 7), ("3.12", 7), ("3.13", 0))]
    assert entries[1]["end"]["median"] == 5.0
    assert entries[1]["before"]["median"] == 0.9
    assert entries[2]["end"] is None
    assert report.build([], [], {}, tmp_path, tmp_path)["price"] is None
    (tmp_path / "bisect").mkdir()
    shutil.copy(data_dir / "launch_time" / "bisect-numba-cuda-py3.12.json",
                tmp_path / "bisect")
    cost = report.build([], [], {}, tmp_path / "bisect", tmp_path)["price"]
    assert cost["python"] == "3.12" and cost["end"]["n"]


def test_cubie_rows_say_whose_simulator_and_solve_time(data_dir):
    records = list(raw_records(data_dir / "raw-cubie").values())
    found = report.cubie(records)
    assert len(found) == len(records)
    for entry in found:
        raw = next(r for r in records if r["packages"].get("cubie")
                   == entry["cubie"] and r["packages"].get("numba-cuda")
                   == entry["numba_cuda"])
        assert (entry["runs"], entry["failures"]) == (raw["runs"],
                                                      raw["failures"])
        seconds = raw["summary"]["test_seconds"].get("test_solve_ivp")
        assert (entry["solve"] or {}).get("max") == (seconds or {}).get("max")


def test_a_solve_skipped_once_the_budget_is_spent_is_a_bound():
    record = {"summary": {
        "test_seconds": {"test_solve_ivp": {"median": 0.0, "max": 61.7,
                                            "n": 3}},
        "tests": {"test_solve_ivp[solve0]": {"pass": 1, "skip": 0},
                  "test_solve_ivp[solve1]": {"pass": 0, "skip": 1},
                  "test_solve_ivp[solve2]": {"pass": 0, "skip": 1}}}}
    solve = report.solve(record)
    assert solve == {"median": None, "max": 61.7, "n": 1, "skipped": 2}
    shown = markdown.environment().from_string(
        '{% import "_upstream.j2" as u %}{{ u.solve(s) }}').render(s=solve)
    assert shown.startswith(">= 61.7 s (2 of 3 solves")


def test_merging_two_machines_keeps_them_apart(tmp_path, data_dir):
    rows, _ = report.build_report(
        [data_dir / "raw", data_dir / "raw-machine-b"], tmp_path,
        tmp_path / "bisect", "nox -s report -- --raw a b")
    envs = [row["env"] for row in rows]
    for env in raw_records(data_dir / "raw-machine-b"):
        assert f"{env}@machine-b" in envs and f"{env}@vm" in envs
    machines = json.loads((tmp_path / "failure_rates.json").read_text())[
        "provenance"]["machines"].split("; ")
    assert sorted(m.split(" (")[0] for m in machines) == ["machine-b", "vm"]


def test_corrupt_file_is_named_in_merge(tmp_path, data_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.json").write_text("{")
    with pytest.warns(UserWarning, match="x.json"):
        rows, _ = report.build_report([data_dir / "raw", broken],
                                      tmp_path / "out", tmp_path / "bisect",
                                      "nox -s report")
    assert len(rows) == len(list((data_dir / "raw").glob("*.json")))


def test_a_mistyped_option_is_one_line(capsys):
    with pytest.raises(SystemExit) as exited:
        report.main(["--rwa", "x"])
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "unrecognized arguments: --rwa x" in error


def test_report_with_only_bad_inputs_writes_nothing(tmp_path, capsys):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.json").write_text('{"env": 5}')
    out = tmp_path / "out"
    with pytest.warns(rawresult.RawResultWarning):
        with pytest.raises(SystemExit) as exited:
            report.main(["--raw", str(tmp_path / "junk"), "--out",
                                 str(out), "--bisect", str(tmp_path / "b")])
    assert exited.value.code == 2
    assert "nothing was written" in capsys.readouterr().err
    assert not out.exists() or list(out.iterdir()) == []


def test_the_reproducers_are_shown_for_the_bisects_ends(data_dir):
    bisect = json.loads((data_dir / "bisect-numba-cuda-py3.12.json")
                        .read_text())
    shown = reproducers.releases_to_show(bisect)
    tested = {t["version"]: t for t in bisect["tested"]}
    versions = [bisect["boundary"]["before"]["version"],
                bisect["releases"][-1]]
    assert [label for label, _ in shown] == [f"numba-cuda {v}"
                                             for v in versions]
    for (_, requirements), version in zip(shown, versions):
        assert requirements == [f"numba-cuda=={version}", "numba=="
                                + tested[version]["packages"]["numba"]]


def test_a_reproducer_runs_as_a_reader_runs_it(tmp_path, monkeypatch):
    script = tmp_path / "bug.py"
    script.write_text("import os, sys\n"
                      "print(os.environ.get('NUMBA_ENABLE_CUDASIM', 'unset'))\n"
                      "sys.exit(3)\n")
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    run = reproducers.run_script(sys.executable, script, timeout=60)
    assert (run["command"], run["exit"], run["stdout"]) == (
        "python bug.py", 3, "unset\n")
    folded = report.reproducer_runs({
        "finished": "t", "machine": {}, "command": "c", "entries": [
            {"label": "numba-cuda 0.30.4", "patch": None, "python": "3.12.1",
             "packages": {}, "runs": [run]}]})
    assert folded["entries"][0]["runs"]["bug.py"] is run
    assert folded["load"] == [min(run["load_average"]),
                              max(run["load_average"])]


def test_a_reproducer_past_its_timeout_is_stopped_there(tmp_path):
    script = tmp_path / "bug_slowdown.py"
    script.write_text("import time\nprint('started', flush=True)\n"
                      "time.sleep(30)\n")
    run = reproducers.run_script(sys.executable, script, timeout=0.5)
    assert (run["exit"], run["stopped_at"]) == (None, 0.5)
    assert 0.5 <= run["seconds"] < 30


def test_the_runs_in_turn_are_read_per_python_with_their_newest_release():
    """The candidate fixes' launches taken in turn (``fix_launch_time.json``
    as ``racematrix.fix_compare`` writes it), oldest Python first."""
    def entry(label, median, ratio):
        release, _, patch = label.partition("+")
        return {"label": label, "release": release, "patch": patch or "none",
                "n": 5, "median": median, "median_ratio": ratio}

    def run(python, *rows):
        return {"python": python, "reference": "0.24.0", "rows": list(rows),
                "environments": {"0.24.0": {"packages": {"numba": "0.63.1"}}},
                "load_per_round": [0.4, 1.1, 0.7]}
    found = report.launch_runs({"runs": {
        "3.12": run("3.12", entry("0.24.0", 1.0, 1.0), entry("0.26.0", 1.9, 1.9),
                    entry("0.30.4", 1.4, 1.4), entry("0.30.4+fix", 0.8, 0.8)),
        "3.10": run("3.10", entry("0.24.0", 1.0, 1.0), entry("0.30.4", 5.0, 5.0)),
        "3.13": run("3.13", entry("0.24.0", 1.0, 1.0))}})
    assert [(r["python"], r["ref"]["label"], (r["top"] or {}).get("label"))
            for r in found] == [("3.10", "0.24.0", "0.30.4"),
                                ("3.12", "0.24.0", "0.30.4"),
                                ("3.13", "0.24.0", None)]
    rows = {r["label"]: r for r in found[1]["rows"]}
    assert rows["0.24.0"]["patch"] is None and rows["0.30.4+fix"]["patch"] == "fix"
    assert rows["0.24.0"]["numba"] == "0.63.1"
    assert report.launch_runs(None) == []


def test_the_proposal_is_the_fastest_change_that_never_raced():
    found = [
        {"name": "slow", "runs": 22, "race_failures": 0},
        {"name": "racy", "runs": 22, "race_failures": 3},
        {"name": "fast", "runs": 22, "race_failures": 0}]

    def row(release, patch, median):
        return {"release": release, "patch": patch, "n": 5, "p95": None,
                "median": median, "median_bound": False}
    timed = {"python": "3.12", "rows": [
        row("0.30.4", None, 1.9), row("0.30.4", "racy", 0.1),
        row("0.30.4", "slow", 0.4), row("0.30.4", "fast", 0.5),
        row("0.28.2", "fast", 0.2)]}
    chosen = report.proposal(found, timed)
    assert (chosen["name"], chosen["newest"]) == ("slow", "0.30.4")
    assert chosen["without"]["median"] == 1.9
    assert report.proposal(found, None) is None  # no run taken in turn
    assert report.proposal(found[1:2], timed) is None


def test_the_reproducers_refuse_a_typo_in_one_line(tmp_path):
    with pytest.raises(BadInput, match="--pythn") as raised:
        reproducers.run(["--pythn", "3.12"], str(tmp_path), str(tmp_path), "")
    assert "\n" not in str(raised.value)


def test_the_reproducers_need_the_race_bisect(tmp_path):
    with pytest.raises(BadInput, match="nox -s bisect -- --package") as raised:
        reproducers.run([], str(tmp_path), str(tmp_path), "")
    assert "\n" not in str(raised.value)


def test_the_regression_tests_runs_are_read_per_release():
    """Each ``race_rate`` file as words can say it: the release installed
    (or main at a commit), with the change or not, its Python, whether
    every run had a process of its own."""
    def rate(label, runs, race, python, packages=(), processes=1):
        return {"label": label, "test": "pkg.Class.test_race", "runs": runs,
                "python": python, "packages": ["numba==0.63.1", *packages],
                "counts": {"passed": runs - race, "race": race, "other": 0,
                           "skipped": 0},
                "processes": [{"runs": []}] * processes}
    found = report.regression_test([
        rate("numba-cuda-main-b18b944b+series-py3.13", 2, 0,
             "3.13.0 (main, May  9 2026)", ["-e", "file:///numba-cuda"]),
        rate("numba-cuda-0.24.0-fresh-process-each", 2, 2, "3.12.1 (main)",
             ["numba-cuda==0.24.0"], processes=2),
        rate("numba-cuda-0.24.0", 100, 100, "3.12.1 (main)",
             ["numba-cuda==0.24.0"], processes=10),
        rate("numba-cuda-main+series", 100, 0, "3.12.1 (main)")])
    assert [(r["release"], r["main"], r["commit"], r["change"], r["fresh"],
             r["python"], r["race"], r["runs"]) for r in found] == [
        ("0.24.0", False, None, False, False, "3.12", 100, 100),
        ("0.24.0", False, None, False, True, "3.12", 2, 2),
        (None, True, None, True, False, "3.12", 0, 100),
        (None, True, "b18b944b", True, False, "3.13", 0, 2)]
    assert found[0]["test"] == "test_race"


def test_a_module_skipped_at_collection_is_one_test_wherever_it_ran():
    def record(patch, name):
        return {"suite": "numba-cuda-tests", "python": "3.12.1",
                "packages": {"numba-cuda": "0.30.4"},
                "spec": {"patch": patch, "requirements": []}, "runs": 1,
                "failures": 0, "other_errors": 0, "hangs": 0, "skips": 1,
                "summary": {"tests": {
                    name: {"pass": 0, "skip": 1, "target": 0, "other": 0}}}}
    found = report.own_tests([
        record(None, "test_analysis"),
        record("fix", ".nox.env.lib.python3.12.site-packages.numba_cuda."
                      "numba.cuda.tests.cudapy.test_analysis")])
    assert [t["differ"] for t in found] == [None, []]


def test_templates_leave_one_blank_line_but_code_keeps_its_own():
    text = "a\n\n\n\nb\n```python\nx = 1\n\n\ny = 2\n```\n\n\n\nc\n\n"
    assert markdown.tidy(text) == (
        "a\n\nb\n```python\nx = 1\n\n\ny = 2\n```\n\nc\n")


def test_the_lock_share_is_the_part_of_the_rise_the_attribution_removes():
    def row(release, patch, median, censored=False):
        return {"label": release + (f"+{patch}" if patch else ""),
                "release": release, "patch": patch,
                "median": median, "median_bound": censored}
    timed = {"reference": "0.24.0", "rows": [
        row("0.24.0", None, 1.0), row("0.30.4", None, 2.0),
        row("0.30.4", "swap", 1.25)]}
    found = report.lock_share(timed, "swap")
    assert found["with"]["release"] == "0.30.4" and found["share"] == 0.75
    timed["rows"][1] = row("0.30.4", None, 10.0, censored=True)
    assert report.lock_share(timed, "swap")["share"] is None
    assert report.lock_share(timed, "other") is None
