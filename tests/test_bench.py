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
