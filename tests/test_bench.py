"""The bench's own logic: its parts, what it reads from their output and
the table it writes."""
import json
import os
import sys
from pathlib import Path

import pytest

from racematrix import bench
from racematrix.errors import BadInput
from racematrix.rawresult import load_raw_dirs

DATA = Path(__file__).resolve().parent / "data"


def part(label, seconds, **fields):
    return {"label": label, "command": "nox -s matrix", "seconds": seconds,
            "exit": 0, "machine": {"cores": 2}, "load_before": 0.1,
            "finished": "2026-11-29T09:00:00+00:00", **fields}


def table_rows(text):
    return [line for line in text.splitlines() if line.startswith("| ")][1:]


def test_parts_are_picked_by_name_in_the_benchs_order():
    assert bench.parse_args(["--parts", "tests, time-bisect"]) == \
        ["tests", "time-bisect"]
    assert bench.parse_args([]) == list(bench.PARTS)
    with pytest.raises(BadInput, match="invalid choice: 'time-bisect-blnd'"):
        bench.parse_args(["--parts", "time-bisect-blnd"])


def test_the_committed_figures_render_one_row_per_part_in_order():
    data = json.loads((bench.PROJECT / "results" / "bench.json").read_text())
    rows = table_rows(bench.render_bench(data))
    labels = [data["parts"][name]["label"] for name in bench.PARTS
              if name in data["parts"]]
    assert [row.split(" | ")[0].lstrip("| ") for row in rows[:len(labels)]] \
        == labels


def test_a_part_runs_nox_and_one_past_its_limit_is_stopped(tmp_path,
                                                           monkeypatch):
    """The cold part's way: a fresh clone, nox alone in its own venv (as the
    README installs it), whose script mode makes the noxfile's environment."""
    monkeypatch.setattr(bench, "NEW_USER_PYTHON",
                        "{}.{}".format(*sys.version_info))
    assert bench.PARTS["cold"].new_user and bench.PARTS["tests"].new_user
    listed = bench.run_part(bench.Part("list", ("-l",), new_user=True),
                            tmp_path)
    assert (listed["command"], listed["exit"], listed["rows"]) == \
        ("nox -l", 0, 0) and "cut" not in listed
    [made] = tmp_path.glob("*/project/.nox/_nox_script_mode/bin/python")
    cut = bench.run_part(bench.Part("list", ("-l",), limit=0.01), tmp_path)
    assert cut["cut"] and cut["exit"] != 0 and cut["seconds"] < 60


def test_a_part_cut_at_its_limit_shows_a_bound_and_its_host_loop():
    text = bench.render_bench({"command": "nox -s bench", "finished": "now",
                               "parts": {"warm": part("warm", 3600.0, cut=True,
                                                      host_loop_before=0.412)}})
    [row] = table_rows(text)
    assert "| >= 3600.0 |" in row and "load 0.1 before, loop 0.41 s" in row


def test_where_the_time_went_adds_up_by_suite_and_verdict():
    """Recorded rows: CuBIE's five, two MWE rows with launch time, and the
    small MWE rows, skipped ones among them."""
    raws = [raw for _, raw in load_raw_dirs(
        [DATA / "raw", DATA / "raw-cubie", DATA / "raw-launch"])]
    ran = [raw for raw in raws if raw["verdict"] != "skipped"]
    groups = bench.matrix_figures(raws, {})["where"]
    assert sum(g["rows"] for g in groups) == len(ran)
    assert [g["seconds"] for g in groups] == sorted(
        (g["seconds"] for g in groups), reverse=True)
    for group in groups:
        mine = [raw for raw in ran if raw.get("suite", "mwe") ==
                group["suite"] and raw["verdict"] == group["verdict"]]
        assert group["rows"] == len(mine)
        assert group["seconds"] == pytest.approx(
            sum(raw["seconds"] for raw in mine), abs=0.1)
        assert group["launch_seconds"] == pytest.approx(sum(
            raw.get("launch_seconds", {}).get("seconds") or 0.0
            for raw in mine), abs=0.1)
    assert {g["verdict"] for g in groups if g["suite"] == "cubie"} == \
        {"reproduced", "not-reproduced"}
    text = bench.render_bench({"command": "nox -s bench", "finished": "now",
                               "parts": {"warm": part(
                                   "warm", 100.0, where=groups,
                                   session_seconds=sum(
                                       g["seconds"] for g in groups))}})
    assert sum(row.startswith("| cubie |") for row in table_rows(text)) == 2


def test_a_matrix_runs_rows_give_its_figures_and_price_verdicts():
    raws = [raw for _, raw in load_raw_dirs([DATA / "raw", DATA / "raw-launch"])]
    timed = [raw for raw in raws if raw.get("launch_seconds")]
    assert timed
    for raw in timed:  # rows from before the rule named its decision
        raw["launch_seconds"].setdefault(
            "decision", "alike" if raw["verdict"] == "reproduced" else "slower")
    timed[0].setdefault("resolution", {})["installer"] = "pip"
    found = bench.matrix_figures(raws, {"MATRIX_LAUNCHES": "0"})
    assert found["installers"]["pip"] == 1
    assert sum(found["installers"].values()) == found["ran"]
    assert found["rows"] == len(raws)
    assert found["ran"] == sum(raw["verdict"] != "skipped" for raw in raws)
    assert sum(n for counts in found["decisions"].values()
               for n in counts.values()) == len(timed)
    assert found["launches_per_row"] == [
        min(r["launch_seconds"]["n"] for r in timed),
        max(r["launch_seconds"]["n"] for r in timed)]
    assert found["environment"] == {"MATRIX_LAUNCHES": "0"}
    json.dumps(found)  # as bench.json holds it


def test_the_recorded_workload_study_still_renders_a_row_per_candidate():
    rows = [{"env": "a", "verdict": "not-reproduced", "ratio": 9.5},
            {"env": "b", "verdict": "reproduced", "ratio": 1.02}]
    candidates = [{"python": "3.12", "switch_interval": 1e-4,
                   "device_calls": 100, "load": load, "rows": rows,
                   "right": right, "of": 2, "seconds_per_row": 0.6}
                  for load, right in ((0, 2), (2, 1))]
    text = bench.render_bench({"command": "nox -s bench", "finished": "now",
                               "parts": {"workload": part(
                                   "workload", 30.0, candidates=candidates)}})
    assert table_rows(text)[-2:] == [
        "| 0 | 3.12 | 0.0001 | 100 | 9.50 | 1.02 | 2 of 2 | 0.6 |",
        "| 2 | 3.12 | 0.0001 | 100 | 9.50 | 1.02 | 1 of 2 | 0.6 |"]


def test_the_bench_writes_each_part_it_ran_with_its_provenance(tmp_path,
                                                               monkeypatch):
    monkeypatch.setitem(bench.PARTS, "list", bench.Part("list", ("-l",)))
    data = bench.run(tmp_path, "nox -s bench -- --parts list",
                     ["--parts", "list"])
    written = json.loads((tmp_path / "bench.json").read_text())
    assert written == json.loads(json.dumps(data))
    listed = written["parts"]["list"]
    assert (listed["exit"], listed["machine"]["cores"]) == (0, os.cpu_count())
    assert listed["load_before"] >= 0 and 0 < listed["host_loop_before"] < 60
    assert written["versions"]["nox"]
    assert table_rows((tmp_path / "bench.md").read_text())[0].startswith(
        "| list | `nox -l` |")
