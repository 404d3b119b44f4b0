"""The bench's own logic: its options and the table it writes."""
import pytest

from racematrix import bench
from racematrix.errors import BadInput


def part(label, seconds, **fields):
    return {"label": label, "command": "nox -s matrix", "seconds": seconds,
            "exit": 0, "machine": {"cores": 2}, "load_before": 0.1,
            "finished": "2026-11-29T09:00:00+00:00", **fields}


def test_a_serial_run_gives_the_least_any_schedule_could_take():
    text = bench.render({"command": "nox -s bench", "finished": "now",
                         "parts": {"warm": part("warm", 300.0),
                                   "warm-serial": part("serial", 500.0)}})
    assert "One session at a time, the warm matrix took 500.0 s: on 2 " \
           "cores no scheduling brings it under 250 s" in text
    assert "One session at a time" not in bench.render(
        {"command": "nox -s bench", "finished": "now",
         "parts": {"warm": part("warm", 300.0)}})


def test_the_bisect_from_the_middle_is_a_part_of_its_own():
    args = bench.parse_args(["--parts", "time-bisect,time-bisect-blind"])
    assert args.parts == ["time-bisect", "time-bisect-blind"]
    with pytest.raises(BadInput, match="unknown part 'time-bisect-blnd'"):
        bench.parse_args(["--parts", "time-bisect-blnd"])


def test_each_part_says_how_fast_the_host_ran_before_it():
    text = bench.render({"command": "nox -s bench", "finished": "now",
                         "parts": {"warm": part("warm", 300.0,
                                                host_loop_before=0.412)}})
    assert "2 cores, load 0.1 before, loop 0.41 s" in text
    assert 0 < bench.host_loop_seconds(repeats=1) < 60


def test_where_the_time_went_adds_up_by_suite_and_verdict():
    """Recorded rows (CuBIE's five, two MWE rows with launch time, and the
    small MWE rows, skipped ones among them)."""
    import json
    from pathlib import Path
    data = Path(__file__).resolve().parent / "data"
    raws = [json.loads(path.read_text()) for folder in
            ("raw", "raw-cubie", "raw-launch")
            for path in sorted((data / folder).glob("*.json"))]
    ran = [raw for raw in raws if raw["verdict"] != "skipped"]
    groups = bench.where_time_went(raws)
    assert sum(g["rows"] for g in groups) == len(ran)
    assert sum(g["seconds"] for g in groups) == pytest.approx(
        sum(raw["seconds"] for raw in ran), abs=0.1)
    assert [g["seconds"] for g in groups] == sorted(
        (g["seconds"] for g in groups), reverse=True)
    for group in groups:
        mine = [raw for raw in ran if raw.get("suite", "mwe") ==
                group["suite"] and raw["verdict"] == group["verdict"]]
        assert group["rows"] == len(mine)
        assert group["launch_seconds"] == pytest.approx(sum(
            (raw.get("launch_seconds") or {}).get("seconds") or 0.0
            for raw in mine), abs=0.1)
    cubie = [g for g in groups if g["suite"] == "cubie"]
    assert {g["verdict"] for g in cubie} == {"reproduced", "not-reproduced"}
    assert all(g["launch_seconds"] == 0 for g in cubie)
    assert any(g["launch_seconds"] > 0 for g in groups
               if g["suite"] == "mwe")
    text = bench.render({"command": "nox -s bench", "finished": "now",
                         "parts": {"warm": part(
                             "warm", 100.0, where=groups,
                             session_seconds=round(sum(
                                 raw["seconds"] for raw in ran), 1))}})
    assert "Sessions kept its 2 cores busy" in text
    assert text.count("| cubie |") == 2


def test_the_price_verdicts_are_counted_by_race_verdict():
    """The recorded rows with launch time: each decision counted once, by
    the row's race verdict."""
    import json
    from pathlib import Path
    data = Path(__file__).resolve().parent / "data"
    raws = [json.loads(path.read_text()) for folder in ("raw", "raw-launch")
            for path in sorted((data / folder).glob("*.json"))]
    timed = [raw for raw in raws if raw.get("launch_seconds")]
    assert timed
    for raw in timed:  # rows from before the rule named its decision
        raw["launch_seconds"].setdefault(
            "decision", "alike" if raw["verdict"] == "reproduced" else "slower")
    decisions = bench.launch_decisions(raws)
    assert sum(n for counts in decisions.values()
               for n in counts.values()) == len(timed)
    text = bench.render({"command": "nox -s bench", "finished": "now",
                         "parts": {"warm": part("warm", 300.0,
                                                decisions=decisions)}})
    assert "The launch-time rule's decision on each MWE row" in text


def test_the_workload_table_has_a_row_per_python_and_size():
    sizes = [{"python": "3.12", "device_calls": calls, "racy_median": 0.1,
              "racy_p95": 0.2, "fixed_medians": [0.5, 0.6], "right": right,
              "of": 6, "seconds": 12.5, "rows": []}
             for calls, right in ((1000, 6), (100, 4))]
    lines = bench.workload_lines(part("workload", 30.0, sizes=sizes,
                                      rounds=5))
    rows = [line for line in lines if line.startswith("| 3.12")]
    assert rows == ["| 3.12 | 1,000 | 0.100 / 0.200 | 0.500, 0.600 | 5.00x "
                    "| 6 of 6 | 12.5 |", "| 3.12 | 100 | 0.100 / 0.200 | "
                    "0.500, 0.600 | 5.00x | 4 of 6 | 12.5 |"]
    assert bench.workload_lines(None) == []


def test_the_defaults_part_says_how_many_times_the_project_it_takes():
    project = part("project", 20.0, ran=13, command="nox -s matrix -j auto")
    defaults = part("defaults", 150.0, ran=13, project=project,
                    times_the_project=7.5)
    text = bench.render({"command": "nox -s bench", "finished": "now",
                         "parts": {"defaults": defaults}})
    assert "13 MWE rows of Python 3.12" in text and ": 7.5x." in text
