"""Launch time: the rows' A/B and its rule (racematrix/launch_time.py), and
the bisect on the launch price, placed by the decisions real rows gave
(tests/data/launch_time/decisions-py3.12.json)."""
import importlib.util
import json
from pathlib import Path

import pytest

from racematrix import bisect_files, fix_compare, measurement
from racematrix.search import Probe, bisect_releases, probe_limit


@pytest.fixture(scope="module")
def data_dir_module():
    return Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def decided(data_dir_module):
    """Real rows' A/B records by decision: releases before the fix read
    alike, after it slower. "undecided": those alike ones whose pairs saw
    no free core, as launch_time's rule places them when their swap is
    not the unlocked one's code (a locked release without a free core)."""
    records = json.loads((data_dir_module / "launch_time" /
                          "decisions-py3.12.json").read_text())["records"]
    found = {}
    for record in records.values():
        found.setdefault(record["decision"], []).append(record)
    rule = load_workload()
    found["undecided"] = [dict(r, decision="undecided", unlocked_code=False)
                          for r in found["alike"] if rule.decide(
                              r["ratio"], r["idle_cpus"], False,
                              r["worst_pair"], True) == "undecided"]
    assert all(found.get(k) for k in ("alike", "slower", "undecided"))
    return found


def load_workload():
    spec = importlib.util.spec_from_file_location(
        "launch_time", measurement.WORKLOAD)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- A row's launch price: the A/B and its rule ---

def test_summary_of_launches():
    workload = load_workload()
    summary = workload.summarize([0.5, 2.0, 1.0, 2.0])
    assert summary["n"] == 4 and summary["max"] == 2.0
    assert summary["median"] == pytest.approx(1.5)
    assert workload.summarize([])["median"] is None
    one = workload.summarize([0.7])
    assert one["median"] == one["p95"] == one["max"] == 0.7


def test_the_rule_places_a_ratio_and_says_alike_only_with_a_free_core():
    workload = load_workload()
    slower, alike = workload.SLOWER_RATIO, workload.ALIKE_RATIO
    assert workload.decide(slower) == "slower"
    assert workload.decide(slower, idle_cpus=0.0) == "slower"
    calm = dict(idle_cpus=1.0, worst_pair=alike * 0.9, full=True)
    assert workload.decide(alike * 0.9, **calm) == "alike"
    # No free core, one convoy among the pairs, or pairs still to take:
    # other code than the unlocked swap's is not alike yet.
    assert workload.decide(alike * 0.9, **{**calm, "idle_cpus": 0.0}) == \
        "undecided"
    assert workload.decide(alike * 0.9, **{**calm, "worst_pair": slower}) \
        == "undecided"
    assert workload.decide(alike * 0.9, **{**calm, "full": False}) == \
        "undecided"
    assert workload.decide((slower + alike) / 2, **calm) == "undecided"
    assert workload.decide(None) == "undecided"
    # The unlocked swap's own code costs the same by construction, load or
    # not; launches that say otherwise put the measurement in question.
    assert workload.decide(1.1, idle_cpus=0.0, unlocked_code=True) == "alike"
    assert workload.decide(slower, unlocked_code=True) == "undecided"


@pytest.mark.e2e
def test_a_rows_pairs_in_a_real_environment(e2e_python, matrix_envs,
                                            tmp_path, monkeypatch):
    from conftest import BUGGY, FIXED

    from racematrix.envspec import EnvSpec
    from racematrix.install import ProbeEnvironment, install_resolved
    workload = load_workload()
    for release, unlocked in ((BUGGY, True), (FIXED, False)):
        env = ProbeEnvironment(matrix_envs[release], e2e_python)
        env.create()
        assert install_resolved(
            env, EnvSpec(e2e_python, (release,), True)).problem is None
        record = measurement.run_launch_time(
            env, True, ("--pairs", "3", "--max-pairs", "3"))
        assert "error" not in record, record
        assert record["n"] == record["unlocked"]["n"] == 3
        assert record["unlocked_code"] is unlocked
        assert record["ratio"] == pytest.approx(
            record["median"] / record["unlocked"]["median"], rel=1e-2)
        assert record["decision"] == workload.decide(
            record["ratio"], record["idle_cpus"], record["unlocked_code"],
            record["worst_pair"], record["n"] >= 3)
        assert record["workload"]["switch_interval"] == \
            workload.SWITCH_INTERVAL
    off = measurement.run_launch_time(env, False, ("--pairs", "3"))
    assert off["n"] == 0 and "NUMBA_ENABLE_CUDASIM" in off["error"]

    # The fixes' launches (fix_compare's run): one A/B of each environment
    # a round, FIXED's found by the matrix's index, a patched one not built
    # named, a launch past the limit counted at it; an A/B still running
    # 0.5 s past the limit (numba's import takes longer) is stopped and
    # counted at it too.
    monkeypatch.setattr(fix_compare, "STARTUP_ALLOWANCE", 0.5)
    from argparse import Namespace
    from conftest import PROJECT
    release = FIXED.split("==")[1]
    args = Namespace(python=e2e_python, reference=release, rounds=2,
                     releases=[release], patches=["launch-scoped"], limit=1e-6)
    record = fix_compare.run_launches(args, str(PROJECT / ".nox"), tmp_path,
                                       "nox -s fix_compare")
    [row] = record["rows"]
    assert (row["label"], row["n"], row["past_limit"]) == (release, 2, 2)
    assert row["median"] == 1e-6 and row["median_bound"]
    assert row["median_ratio"] is None  # over a bound: no figure
    assert "launch-scoped" in record["missing"][0]
    saved = json.loads((tmp_path / fix_compare.LAUNCH_FILE).read_text())
    assert saved["runs"][e2e_python]["rows"] == record["rows"]


@pytest.mark.e2e
def test_a_price_probe_is_a_rows_suite_run_and_its_ab(e2e_python,
                                                      matrix_envs):
    """The bisect on time's probe of BUGGY (numba's built-in simulator: the
    unlocked swap's own code) in the matrix's environment: a run of the
    suite and the row's A/B after it, alike unless its pairs read 2x apart
    (then it is taken again, up to TRIES)."""
    from argparse import Namespace

    from conftest import BUGGY, PROJECT

    from racematrix.probers import TRIES, ReleaseProber
    package, version = BUGGY.split("==")
    prober = ReleaseProber(Namespace(
        package=package, python=e2e_python, extra=(), sim=True,
        metric="launch-time"), str(PROJECT / ".nox"))
    probe = prober(version)
    assert probe.launch["unlocked_code"] is True, probe
    assert probe.verdict == "alike" or (probe.verdict, probe.tries) == (
        "undecided", TRIES)
    assert probe.tries >= 1 and probe.runs >= 1 and probe.way
    assert prober(version) is probe  # placed: never probed again


def test_workload_output_parsed_from_its_last_result_line(data_dir_module):
    lines = (data_dir_module / "launch_time" /
             "workload-output.txt").read_text().splitlines()
    record = measurement.parse_workload_output(lines)
    assert record["n"] == len(record["samples"])
    assert set(record) >= {"n", "median", "p95", "max", "workload",
                           "samples"}
    assert measurement.parse_workload_output(["Traceback", "x"]) is None


# --- The bisect on the launch price ---

VERSIONS = [f"0.{i}.0" for i in range(21)]


class RowDecisions:
    """``probe(version)`` as the bisect's prober gives it: one real row's
    A/B record per release, alike before ``boundary`` and slower from it
    on; releases in ``undecided`` read undecided (a row whose A/B could
    not tell), those in ``broken`` cannot be built."""

    def __init__(self, decided, boundary, undecided=(), broken=()):
        self.decided, self.boundary = decided, boundary
        self.undecided, self.broken = set(undecided), set(broken)
        self.calls = []

    def __call__(self, version):
        self.calls.append(version)
        if version in self.broken:
            return Probe(version, "error", reason="cannot import numba.cuda")
        kind = "undecided" if version in self.undecided else \
            "alike" if VERSIONS.index(version) < self.boundary else "slower"
        pool = self.decided[kind]
        record = pool[VERSIONS.index(version) % len(pool)]
        return Probe(version, record["decision"], tries=1, launch=record)


@pytest.mark.parametrize("boundary", range(1, len(VERSIONS)))
def test_the_price_bisect_finds_where_rows_turn_slower(decided, boundary):
    fake = RowDecisions(decided, boundary)
    result = bisect_releases(VERSIONS, fake)
    assert result.boundary == {
        "before": {"version": VERSIONS[boundary - 1], "verdict": "alike"},
        "after": {"version": VERSIONS[boundary], "verdict": "slower"}}
    assert result.decisive_probes <= probe_limit(len(VERSIONS))
    assert len(fake.calls) == len(set(fake.calls))  # each release once


def test_undecided_and_broken_releases_are_skipped(decided):
    fake = RowDecisions(decided, 12, undecided={"0.10.0", "0.11.0"},
                        broken={"0.0.0", "0.20.0"})
    result = bisect_releases(VERSIONS, fake)
    # 0.10.0 and 0.11.0 cannot be placed: the closest placed pair.
    assert result.boundary["before"]["version"] == "0.9.0"
    assert result.boundary["after"]["version"] == "0.12.0"
    unplaced = {p.version for p in result.tested
                if p.verdict not in ("alike", "slower")}
    assert unplaced == {"0.0.0", "0.10.0", "0.11.0", "0.20.0"}


def test_alike_at_both_ends_and_nothing_placeable(decided):
    result = bisect_releases(VERSIONS, RowDecisions(decided, len(VERSIONS)))
    assert result.boundary is None and "nothing flips" in result.summary
    result = bisect_releases(VERSIONS, RowDecisions(
        decided, 5, undecided=set(VERSIONS)))
    assert result.boundary is None and not result.decisive_probes
    assert bisect_releases([], None).boundary is None


@pytest.mark.parametrize("boundary, guess", [
    (5, ["0.4.0", "0.5.0"]), (5, ["0.12.0", "0.13.0"]), (15, ["0.2.0"])])
def test_a_guess_is_probed_first_and_never_changes_the_answer(
        decided, boundary, guess):
    fake = RowDecisions(decided, boundary)
    result = bisect_releases(VERSIONS, fake, 0, guess)
    assert result.boundary["after"]["version"] == VERSIONS[boundary]
    assert fake.calls[2] == guess[0]  # after the two ends
    if guess == VERSIONS[boundary - 1:boundary + 1]:
        assert set(fake.calls) == {VERSIONS[0], VERSIONS[-1], *guess}


def test_the_price_bisect_markdown_shows_each_probes_ab(decided):
    result = bisect_releases(VERSIONS, RowDecisions(decided, 5, {"0.3.0"}))
    data = {"metric": "launch-time", "package": "numba-cuda",
            "python": "3.12", "sim": True, "with": [],
            "releases": VERSIONS, "tested": [p.to_json() for p in
                                             result.tested],
            "summary": result.summary, "decisive_probes":
            result.decisive_probes, "probe_limit": 8, "tries": 3,
            "seconds": 1.0, "boundary": result.boundary,
            "provenance": {"command": "nox -s bisect", "finished": "now",
                           "machine": {"os": "Linux", "cores": 2}}}
    text = bisect_files.markdown(data)
    assert text.startswith("# Bisect on launch time")
    for probe in data["tested"]:
        assert f"| {probe['version']} | {probe['verdict']} | " \
            f"{probe['launch']['ratio']} |" in text
        assert probe["n"] == probe["launch"]["n"]  # as the report reads it
