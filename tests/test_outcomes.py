import importlib.util

import pytest

from racematrix import outcomes
from racematrix.suites import mwe_suite

SIGNATURE = mwe_suite().signature


def parse(path):
    return outcomes.parse_junit(path, SIGNATURE)


def test_buggy_run_is_classified_from_real_junit(data_dir):
    suite, runs = parse(data_dir / "junit/numba-0.60.0-count2.xml")
    summary = outcomes.summarize(runs, repeat_count=2)
    assert summary["counts"] == {"target": 11, "other": 0, "hang": 0,
                                 "pass": 33, "skip": 0}
    # pytest-repeat's "-1-2"/"-2-2" ids are folded into one test each.
    assert len(summary["tests"]) == 22
    trigger = summary["tests"]["test_syncthreads_trigger"]
    assert trigger["target"] + trigger["pass"] == 2
    assert summary["first_target_message"].startswith("AttributeError: tid=[")
    assert suite["device_calls"] == "8" and suite["numba"] == "0.60.0"


def test_failing_threads_are_read_with_their_n_threads(data_dir):
    _, runs = parse(data_dir / "junit/numba-0.60.0-count2.xml")
    threads = outcomes.summarize(runs, 2)["failing_threads"]
    assert threads, "the real run recorded failing threads"
    assert all(set(t) == {"tid", "ctaid", "index", "n_threads"} for t in threads)


def test_fixed_run_passes(data_dir):
    _, runs = parse(data_dir / "junit/numba-cuda-0.30.4-count1.xml")
    assert outcomes.summarize(runs, 1)["counts"]["pass"] == 22
    assert {run.outcome for run in runs} == {"pass"}


def test_no_gpu_run_is_all_skips(data_dir):
    _, runs = parse(data_dir / "junit/numba-0.60.0-sim0-nogpu.xml")
    assert {run.outcome for run in runs} == {"skip"}
    assert "no CUDA GPU" in runs[0].message


def test_timeout_is_a_hang_not_the_race(data_dir):
    _, runs = parse(data_dir / "junit/numba-0.60.0-timeout.xml")
    assert [run.outcome for run in runs] == ["hang"]


@pytest.mark.parametrize("kind, text, expected", [
    ("failure", "AttributeError: tid=[3, 0, 0] ctaid=[1, 0, 0]: module "
                "'numba.cuda' has no attribute 'local'", "target"),
    ("error", "AttributeError: tid=[0, 0, 0] ctaid=[0, 0, 0]: module "
              "'numba.cuda' has no attribute 'local'", "target"),
    # The same attribute error without the simulator's thread prefix is not
    # the race (e.g. numba.cuda imported without the simulator).
    ("failure", "AttributeError: module 'numba.cuda' has no attribute "
                "'local'", "other"),
    ("failure", "AssertionError: wrong output: expected the first 3", "other"),
    ("error", "ImportError: CUDA bindings not found", "other"),
    ("failure", "Failed: Timeout >120.0s", "hang"),
    ("skipped", "no CUDA GPU", "skip"),
    (None, "", "pass"),
])
def test_classify_outcome(kind, text, expected):
    assert outcomes.classify_outcome(kind, text, SIGNATURE) == expected


def test_signature_agrees_with_the_mwe(data_dir):
    path = data_dir.parent.parent / "mwe" / "test_mwe.py"
    spec = importlib.util.spec_from_file_location("mwe_tests", path)
    mwe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mwe)
    _, runs = parse(data_dir / "junit/numba-0.60.0-count2.xml")
    for run in runs:
        assert bool(mwe.RACE_ERROR.search(run.message)) == \
            (run.outcome == "target")


@pytest.mark.parametrize("name, count, expected", [
    ("test_buffer_allocation[1-2-3-4-20]", 20, "test_buffer_allocation[1-2-3]"),
    ("test_syncthreads_trigger[7-20]", 20, "test_syncthreads_trigger"),
    ("test_buffer_allocation[1-2-3]", 1, "test_buffer_allocation[1-2-3]"),
])
def test_base_test_name(name, count, expected):
    assert outcomes.base_test_name(name, count) == expected


def test_unreadable_or_missing_junit_reads_as_none(tmp_path):
    broken = tmp_path / "junit.xml"
    broken.write_text("<testsuites><testsuite")
    assert parse(broken) is None
    assert parse(tmp_path / "missing.xml") is None


def mwe_kinds():
    """The MWE suite's kinds, as pyproject.toml declares them."""
    from pathlib import Path

    from nox.project import load_toml  # tomllib is 3.11+
    table = load_toml(Path(__file__).resolve().parent.parent /
                      "pyproject.toml")
    return table["tool"]["racematrix"]["suites"]["mwe"]["kinds"]


def test_runs_are_counted_per_kind_of_test_from_real_junit(data_dir):
    _, runs = parse(data_dir / "junit/numba-0.60.0-count2.xml")
    summary = outcomes.summarize(runs, repeat_count=2)
    kinds = outcomes.kind_counts(summary["tests"], mwe_kinds())
    # Every run is of exactly one kind, and the race's failures add up.
    assert sum(k["runs"] for k in kinds.values()) == 44
    assert sum(k["failures"] for k in kinds.values()) == 11
    assert kinds["trigger"]["runs"] == 2
    assert kinds["control"]["runs"] == 2 * 5
    assert kinds["pattern"]["runs"] == 2 * 16
    # The controls never fail with the race (the allocator in the kernel's
    # module; the failing threads did work).
    assert kinds["control"]["failures"] == 0


def test_a_test_is_of_the_first_kind_that_matches():
    kinds = {"trigger": ["test_syncthreads_trigger"], "any": ["test_*"],
             "bare": ["check_it"]}
    one = {"target": 1, "other": 0, "hang": 0, "pass": 1, "skip": 0}
    counts = outcomes.kind_counts(
        {"test_syncthreads_trigger": one, "test_buffer_allocation[1-2-3]": one,
         "check_it[4]": one, "other_name": one}, kinds)
    assert counts == {kind: {"runs": 2, "failures": 1, "other": 0,
                             "hangs": 0} for kind in kinds}
