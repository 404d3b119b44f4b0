"""Launch time: summary, rank test, decision rule and bisect on time, on
launch times measured with racematrix/launch_time.py (tests/data/launch_time/)."""
import importlib.util
import json
import math
import random
from pathlib import Path

import pytest

from racematrix import bisect_files, measure_launch, stats
from racematrix.envspec import ConfigError
from racematrix.search import probe_limit
from racematrix.stats import mann_whitney_greater
from racematrix.time_search import (TimeProbe, TimeRule, bisect_on_time,
                                    classify, compare_ends, significant,
                                    slower)


@pytest.fixture(scope="module")
def measured(data_dir_module):
    """launch_seconds records by package, from one real measurement run."""
    data = json.loads((data_dir_module / "launch_time" /
                       "measured-py3.12.json").read_text())
    records = {}
    for entry in data["entries"]:
        packages = entry["packages"]
        name = f"numba-cuda {packages['numba-cuda']}" \
            if "numba-cuda" in packages else f"numba {packages['numba']}"
        records[name] = entry["launch_seconds"]
    return records


@pytest.fixture(scope="module")
def data_dir_module():
    return Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def sides(measured):
    """Samples of releases with the race (built-in numba and numba-cuda
    before the fix) and without it, as measured."""
    with_race = [r for name, r in measured.items()
                 if name.startswith("numba ") or r.get("race_errors")]
    without = [r for name, r in measured.items()
               if name.startswith("numba-cuda") and not r.get("race_errors")]
    assert with_race and without
    return with_race, without


def load_workload():
    spec = importlib.util.spec_from_file_location(
        "launch_time", measure_launch.WORKLOAD)
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
def test_a_rows_pairs_in_a_real_environment(e2e_python, matrix_envs):
    from conftest import BUGGY, FIXED

    from racematrix.envspec import EnvSpec
    from racematrix.install import install
    from racematrix.venv import ProbeEnvironment
    workload = load_workload()
    for release, unlocked in ((BUGGY, True), (FIXED, False)):
        env = ProbeEnvironment(matrix_envs[release], e2e_python)
        env.create()
        assert install(env, EnvSpec(e2e_python, (release,), True)) is None
        record = measure_launch.run_launch_time(
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
    off = measure_launch.run_launch_time(env, False, ("--pairs", "3"))
    assert off["n"] == 0 and "NUMBA_ENABLE_CUDASIM" in off["error"]

    # Served launches (the fixes', the bisect on time's): a launch past the
    # limit is killed in its fork and the server takes the next one.
    server = measure_launch.LaunchServer(env, True, 1.0,
                                         ("--device-calls", "1000000"))
    try:
        for _ in range(2):
            assert server.launch(1.0) == ("past", 1.0)
    finally:
        server.close()
    assert server.process.poll() is not None


def test_workload_output_parsed_from_its_last_result_line(data_dir_module):
    lines = (data_dir_module / "launch_time" /
             "workload-output.txt").read_text().splitlines()
    record = measure_launch.parse_workload_output(lines)
    assert record["n"] == len(record["samples"])
    assert set(record) >= {"n", "median", "p95", "max", "workload",
                           "samples"}
    assert measure_launch.parse_workload_output(["Traceback", "x"]) is None


# --- The rank test ---

def test_exact_p_value_of_complete_separation_is_one_ordering_in_all():
    # x above y in every one of the C(10, 5) = 252 equally likely orderings
    u, p = mann_whitney_greater([6, 7, 8, 9, 10], [1, 2, 3, 4, 5])
    assert u == 25
    assert p == pytest.approx(1 / math.comb(10, 5))
    _, p_other = mann_whitney_greater([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert p_other == 1.0


def test_rank_test_agrees_with_scipy_on_real_samples(sides):
    scipy_stats = pytest.importorskip("scipy.stats")
    (with_race, *_), (without, *_) = sides
    for x, y in [(without["samples"][:8], with_race["samples"][:8]),
                 (with_race["samples"][:8], without["samples"][:8]),
                 (without["samples"], with_race["samples"]),
                 (with_race["samples"][:20], with_race["samples"][20:])]:
        u, p = mann_whitney_greater(x, y)
        expected = scipy_stats.mannwhitneyu(x, y, alternative="greater")
        assert u == pytest.approx(expected.statistic)
        assert p == pytest.approx(expected.pvalue, rel=1e-9)


def test_rank_test_with_ties_at_the_limit_uses_the_tie_correction():
    # Launches past a 20 s limit all tie at 20: still a clear difference.
    _, p = mann_whitney_greater([20.0] * 6 + [5.0, 9.0], [0.6, 0.7, 0.65,
                                                          0.8, 0.62, 0.71])
    assert p < 0.01
    assert mann_whitney_greater([20.0] * 3, [20.0] * 3)[1] == 1.0


def test_rank_test_needs_both_samples():
    with pytest.raises(ValueError):
        mann_whitney_greater([], [1.0])


# --- The rule ---

def test_rule_splits_alpha_over_its_looks():
    rule = TimeRule(alpha=0.01, first=8, step=8, cap=40)
    assert rule.looks == 5
    assert [rule.launches_at(k) for k in range(rule.looks)] == \
        [8, 16, 24, 32, 40]
    assert rule.alpha_per_look == pytest.approx(0.002)
    assert "Mann-Whitney" in rule.describe()


def test_default_rule_decides_a_complete_split_at_its_first_look():
    # The fewest launches a side that can decide at once: every launch of
    # one release slower than every launch of the other, and no fewer.
    rule = TimeRule()
    fast = [0.61, 0.64, 0.66, 0.6, 0.63, 0.62, 0.65]
    slow = [2.46] * 6 + [1.9]
    n = rule.first
    assert significant(slower(slow[:n], fast[:n], 3 * 0.63), rule)
    assert not significant(slower(slow[:n - 1], fast[:n - 1], 3 * 0.63),
                           rule)


@pytest.mark.parametrize("kwargs", [dict(alpha=0), dict(alpha=1.5),
                                    dict(first=0), dict(first=50, cap=40),
                                    dict(step=0)])
def test_bad_rule_is_one_clear_error(kwargs):
    with pytest.raises(ConfigError):
        TimeRule(**kwargs)


def test_ends_with_and_without_the_race_differ(sides):
    rule = TimeRule()
    for race in sides[0]:
        for fixed in sides[1]:
            direction, _, _ = compare_ends(race["samples"],
                                           fixed["samples"], rule)
            assert direction == "rose"
            assert compare_ends(fixed["samples"], race["samples"],
                                rule)[0] == "fell"


def test_interleaved_halves_of_one_release_do_not_differ(measured):
    # Alternate launches ran under the same load; consecutive halves need
    # not have (0.24.0's second half ran slower as the machine got busier),
    # which is why the bisect re-measures the ends beside every probe.
    rule = TimeRule()
    for record in measured.values():
        samples = record["samples"]
        assert compare_ends(samples[0::2], samples[1::2], rule)[0] is None


def test_classify_places_a_release_by_its_own_launches(sides):
    rule = TimeRule()
    (race_a, race_b, *_), (fixed_a, fixed_b, *_) = sides
    fast, slow = race_a["samples"], fixed_a["samples"]
    assert classify(fixed_b["samples"], fast, slow, rule)[0] == "slow"
    assert classify(race_b["samples"], fast, slow, rule)[0] == "fast"


# --- The bisect ---

class FakeMeasure:
    """``measure(version, launches[, alongside])`` from real samples:
    releases before ``boundary`` get the samples of a release with the
    race, the others those of one without; ``broken`` ones cannot be timed.
    Each release draws its launches in its own fixed random order, as
    launches taken under the same conditions; called again, it adds to what
    it had, and each release ``alongside`` gets one launch for each new one
    of ``version``. ``load(t)`` multiplies the launch taken ``t``-th of
    all (the machine's load over time)."""

    def __init__(self, versions, boundary, fast, slow, broken=(),
                 load=lambda t: 1.0):
        self.versions = versions
        self.boundary = boundary
        self.fast, self.slow = fast, slow
        self.broken = set(broken)
        self.load = load
        self.calls = []
        self.samples = {}
        self.clock = 0

    def _launch(self, version):
        index = self.versions.index(version)
        pool = self.fast if index < self.boundary else self.slow
        taken = self.samples.setdefault(version, [])
        # Through the pool in a fresh random order each time round.
        rounds, at = divmod(len(taken), len(pool))
        order = random.Random(index * 1000 + rounds).sample(pool, len(pool))
        taken.append(order[at] * self.load(self.clock))
        self.clock += 1

    def _probe(self, version):
        if version in self.broken:
            return TimeProbe(version, "error",
                             reason="cannot import numba.cuda")
        return TimeProbe(version, samples=list(self.samples.get(version, [])))

    def __call__(self, version, launches, alongside=()):
        self.calls.append((version, launches))
        if version not in self.broken:
            for _ in range(launches - len(self.samples.get(version, []))):
                self._launch(version)
                for other in alongside:
                    if other not in self.broken:
                        self._launch(other)
        probe = self._probe(version)
        return [probe, *map(self._probe, alongside)] if alongside else probe


VERSIONS = [f"0.{i}.0" for i in range(21)]


@pytest.mark.parametrize("boundary", range(1, len(VERSIONS)))
def test_bisect_finds_where_launch_time_jumps(sides, boundary):
    (race, *_), (fixed, *_) = sides
    fake = FakeMeasure(VERSIONS, boundary, race["samples"], fixed["samples"])
    result = bisect_on_time(VERSIONS, fake)
    assert result.boundary == {
        "before": {"version": VERSIONS[boundary - 1], "verdict": "fast"},
        "after": {"version": VERSIONS[boundary], "verdict": "slow"}}
    assert result.direction == "rose"
    assert result.decisive_probes <= probe_limit(len(VERSIONS))
    assert "rose between" in result.summary
    ends = {VERSIONS[0], VERSIONS[-1]}
    assert max(launches for version, launches in fake.calls
               if version not in ends) <= TimeRule().cap


@pytest.mark.parametrize("boundary", [4, 11, 17])
def test_load_that_rises_while_a_release_is_timed_is_not_a_slowdown(
        sides, boundary):
    # The machine's load doubles every launch time at one moment, and
    # halves it again later (another session starting and ending beside
    # the bisect). Releases timed in turn with the ends are placed right.
    (race, *_), (fixed, *_) = sides
    for start in (20, 60, 100, 140):
        fake = FakeMeasure(VERSIONS, boundary, race["samples"],
                           fixed["samples"],
                           load=lambda t: 2.0 if start <= t < start + 80
                           else 1.0)
        result = bisect_on_time(VERSIONS, fake)
        assert result.boundary["after"]["version"] == VERSIONS[boundary], \
            (start, result.summary)


def test_bisect_finds_a_speed_up_too(sides):
    (race, *_), (fixed, *_) = sides
    fake = FakeMeasure(VERSIONS, 7, fixed["samples"], race["samples"])
    result = bisect_on_time(VERSIONS, fake)
    assert result.direction == "fell"
    assert result.boundary["before"] == {"version": "0.6.0",
                                         "verdict": "slow"}


def test_bisect_skips_releases_that_cannot_be_timed(sides):
    (race, *_), (fixed, *_) = sides
    broken = {"0.0.0", "0.10.0", "0.11.0", "0.20.0"}
    fake = FakeMeasure(VERSIONS, 12, race["samples"], fixed["samples"],
                       broken)
    result = bisect_on_time(VERSIONS, fake)
    assert result.boundary["before"]["version"] == "0.11.0" or \
        result.boundary["before"]["version"] == "0.9.0"
    assert result.boundary["after"]["version"] == "0.12.0"
    errors = [p.version for p in result.tested if p.verdict == "error"]
    assert "0.0.0" in errors and "0.20.0" in errors
    assert result.decisive_probes <= probe_limit(len(VERSIONS))


def test_bisect_says_nothing_jumps_when_both_ends_are_alike(measured):
    record = max(measured.values(), key=lambda r: r["n"])
    samples = record["samples"]
    fake = FakeMeasure(VERSIONS, 10, samples[0::2], samples[1::2])
    result = bisect_on_time(VERSIONS, fake)
    assert result.boundary is None
    assert "does not differ" in result.summary
    # Both ends got every launch the rule allows before it gave up.
    assert max(n for v, n in fake.calls if v == "0.0.0") == TimeRule().cap


def test_bisect_of_nothing_timeable():
    result = bisect_on_time(["1.0", "2.0"], lambda v, n: TimeProbe(
        v, "skipped", reason="no wheel"))
    assert result.boundary is None
    assert result.summary == "no release in the range could be timed"
    assert bisect_on_time([], None).summary == "no release to time in the range"


def test_bisect_result_json_records_the_rule_and_its_numbers(sides):
    (race, *_), (fixed, *_) = sides
    result = bisect_on_time(VERSIONS, FakeMeasure(VERSIONS, 5, race["samples"],
                                                  fixed["samples"]))
    data = result.to_json()
    assert data["rule"]["alpha_per_look"] == TimeRule().alpha_per_look
    assert data["probe_limit"] == probe_limit(len(VERSIONS))
    probed = [p for p in data["tested"] if p["verdict"] in ("slow", "fast")]
    assert all(p["p_values"] and p["n"] == len(p["samples"]) for p in probed)
    json.dumps(data)


# --- The workload itself, in a real environment ---

def test_fisher_tail_of_a_complete_split():
    # 5 stalls in 5 launches against none in 5: 1 of C(10, 5) tables.
    assert stats.fisher_greater(5, 5, 0, 5) == pytest.approx(1 / 252)
    assert stats.fisher_greater(0, 5, 5, 5) == 1.0
    assert stats.fisher_greater(0, 8, 0, 8) == 1.0


@pytest.mark.parametrize("table", [(5, 20, 0, 20), (3, 8, 1, 16),
                                   (10, 40, 2, 40), (0, 10, 3, 10)])
def test_fisher_is_the_hypergeometric_tail(table):
    # The closed form: P(X >= hits), X hypergeometric with the margins seen.
    hits, n, other_hits, other_n = table
    total = hits + other_hits
    tail = sum(math.comb(n, k) * math.comb(other_n, total - k)
               for k in range(hits, min(n, total) + 1))
    assert stats.fisher_greater(*table) == pytest.approx(
        tail / math.comb(n + other_n, total), rel=1e-9)


def test_stalls_show_a_fixed_release_whose_bulk_did_not_move(data_dir_module):
    # Matrix run of 20 launches each: numba-cuda 0.26.0 (race fixed) ran
    # most launches as fast as 0.24.0, but stalled on some for seconds.
    data = json.loads((data_dir_module / "launch_time" /
                       "matrix-py3.12.json").read_text())
    records = {entry["packages"].get("numba-cuda"): entry["launch_seconds"]
               for entry in data["entries"]}
    before, after = records["0.24.0"]["samples"], records["0.26.0"]["samples"]
    p = slower(after, before, TimeRule().stall_factor *
                      stats.quantile(before, 0.5))
    assert p["stalls"] < p["rank"]
    assert slower(before, after, 3 * stats.quantile(after, 0.5))[
        "stalls"] == 1.0


def test_a_launch_cut_at_the_limit_is_a_stall_after_the_median_drifts(
        data_dir_module):
    # The bisect's limit is set once, from the first release's median; the
    # fast end's median can drift above a third of it, and its 3x
    # threshold then lies above every launch the limit cut.
    data = json.loads((data_dir_module / "launch_time" /
                       "matrix-py3.12.json").read_text())
    records = {entry["packages"].get("numba-cuda"): entry["launch_seconds"]
               for entry in data["entries"]}
    fast = records["0.24.0"]["samples"]
    limit = 3 * stats.quantile(fast, 0.5) * 0.9
    drifted = [s * 1.2 for s in fast]
    cut = [min(s, limit) for s in records["0.26.0"]["samples"]]
    stall_at = 3 * stats.quantile(drifted, 0.5)
    assert stall_at > limit
    assert slower(cut, drifted, stall_at)["stalls"] == 1.0
    with_limit = slower(cut, drifted, stall_at, limit)
    assert with_limit["stalls"] < 0.05
    assert with_limit["rank"] == slower(cut, drifted, stall_at)["rank"]


def test_a_median_at_the_limit_is_shown_as_a_lower_bound():
    from racematrix.time_search import median_text
    cut = TimeProbe("0.26.0", samples=[1.75, 1.75, 0.6], past_limit=2)
    assert median_text(cut) == ">= 1.75 s, the limit"
    assert median_text(TimeProbe("0.24.0", samples=[0.6, 1.75, 0.7],
                                  past_limit=1)) == "0.70 s"
    assert median_text(TimeProbe("0.0.0")) == "–"


# --- Rendering ---

def test_time_bisect_markdown_states_the_rule_and_each_probe(sides):
    (race, *_), (fixed, *_) = sides
    result = bisect_on_time(VERSIONS, FakeMeasure(VERSIONS, 5, race["samples"],
                                                  fixed["samples"]))
    data = {"package": "numba-cuda", "python": "3.12", "sim": True,
            "with": [], "seconds": 1.0, **result.to_json(),
            "provenance": {"command": "nox -s bisect", "finished": "now",
                           "machine": {"os": "Linux", "cores": 2}}}
    text = bisect_files.render_time_bisect(data)
    assert result.summary in text
    assert TimeRule().describe() in text
    for probe in result.tested:
        assert f"| {probe.version} | {probe.verdict} |" in text


def test_time_bisect_limit_follows_the_first_release(measured):
    from racematrix.probers import LIMIT_FLOOR, LaunchTimeProber
    fast = next(iter(measured.values()))["samples"]
    logged = []
    prober = LaunchTimeProber(None, True, logged.append, limit=20.0)
    probe = prober.seen.setdefault("0.1", TimeProbe("0.1"))
    probe.samples = [*fast, 20.0]
    prober.set_limit(stats.quantile(fast, 0.5))
    assert LIMIT_FLOOR <= prober.limit < 20.0
    assert max(probe.samples) == prober.limit and probe.past_limit >= 1
    assert "launch limit" in logged[0]


def test_a_launch_past_the_bisects_limit_is_recorded_at_the_limit():
    # The server answers "past" with the limit to six decimals; rounded
    # down, the sample would fall below the limit and count as no stall.
    from racematrix.probers import LaunchTimeProber

    class Server:
        def __init__(self, answers):
            self.answers = list(answers)

        def launch(self, limit):
            return self.answers.pop(0)

    prober = LaunchTimeProber(None, True, lambda line: None, limit=1.1325693)
    probe = TimeProbe("0.26.0")
    prober._launch(probe, Server([("past", 1.132569), ("done", 0.4),
                                  ("done", 1.2)]))
    prober._launch(probe, Server([("done", 0.4)]))
    prober._launch(probe, Server([("done", 1.2)]))
    assert probe.samples == [prober.limit, 0.4, prober.limit]
    # Two of three cut at the limit against none: Fisher's 3 / C(6, 2).
    assert slower(probe.samples, [0.3] * 3, 9.0, prober.limit)[
        "stalls"] == pytest.approx(3 / 15)


def test_a_resumed_bisect_keeps_the_limit_its_launches_were_cut_at():
    from racematrix.probers import LaunchTimeProber
    prober = LaunchTimeProber(None, True, lambda line: None, limit=20.0)
    prober.restore_limit(None)  # nothing saved: the limit is still to set
    assert (prober.limit, prober.limit_set) == (20.0, False)
    prober.restore_limit(1.94)
    assert (prober.limit, prober.limit_set) == (1.94, True)


# --- A guess: releases probed before the middle ---


@pytest.mark.parametrize("boundary", [3, 10, 16])
def test_a_right_guess_places_the_jump_with_its_two_probes(sides, boundary):
    (race, *_), (fixed, *_) = sides
    fake = FakeMeasure(VERSIONS, boundary, race["samples"], fixed["samples"])
    guess = [VERSIONS[boundary - 1], VERSIONS[boundary]]
    result = bisect_on_time(VERSIONS, fake, guess=guess)
    assert [result.boundary[side]["version"] for side in ("before", "after")] \
        == guess
    probed = {version for version, _ in fake.calls}
    assert probed == {VERSIONS[0], VERSIONS[-1], *guess}


@pytest.mark.parametrize("boundary, guess", [
    (5, ["0.12.0", "0.13.0"]), (15, ["0.2.0", "0.3.0"]),
    (9, ["0.9.0", "0.10.0"]), (12, ["0.7.0"]), (4, ["0.4.0", "0.99.0"])])
def test_a_wrong_guess_costs_probes_never_the_answer(sides, boundary, guess):
    (race, *_), (fixed, *_) = sides
    fake = FakeMeasure(VERSIONS, boundary, race["samples"], fixed["samples"])
    result = bisect_on_time(VERSIONS, fake, guess=guess)
    assert result.boundary["after"]["version"] == VERSIONS[boundary]
    assert result.decisive_probes <= probe_limit(len(VERSIONS)) + len(guess)
