import json
import math
import os
import random

import pytest

from packaging.version import Version

from racematrix.bisect_files import (bisect_stem, condensed_probes,
                                     markdown, widest_bisects)
from racematrix.bisect_session import parse_args, resolve_guess
from racematrix.errors import BadInput
from racematrix.search import Probe, bisect_releases, decide_probe, probe_limit

VERSIONS = [f"0.{i}.0" for i in range(40)]


class FlakyOracle:
    """A release line where the bug exists (failing with ``rate`` per run)
    in the versions ``buggy`` says, and some versions cannot be built.
    Like the real prober it runs until a failure or ``min_runs``."""

    def __init__(self, buggy, rate=1.0, broken=(), seed=0):
        self.buggy = buggy
        self.rate = rate
        self.broken = set(broken)
        self.random = random.Random(seed)
        self.seen = {}
        self.calls = []
        self.asked = []  # (version, min_runs, whole) of each call

    def __call__(self, version, min_runs, whole=False):
        self.calls.append(version)
        self.asked.append((version, min_runs, whole))
        if version in self.broken:
            return Probe(version, "error", reason="cannot import")
        probe = self.seen.setdefault(version, Probe(version, "not-reproduced"))
        while True:
            verdict = decide_probe(probe.failures, probe.runs, min_runs,
                                   whole=whole)
            if verdict and probe.runs:
                probe.verdict = verdict
                return probe
            probe.runs += 1
            if self.buggy(version) and self.random.random() < self.rate:
                probe.failures += 1


def index(version):
    return VERSIONS.index(version)


def fixed_at(k):
    return lambda version: index(version) < k


def introduced_at(k):
    return lambda version: index(version) >= k


def limit(n):
    return math.ceil(math.log2(n)) + 3


@pytest.mark.parametrize("k", [1, 2, 17, 38, 39])
def test_deterministic_fix_is_found(k):
    result = bisect_releases(VERSIONS, FlakyOracle(fixed_at(k)), 22)
    assert result.boundary == {
        "before": {"version": VERSIONS[k - 1], "verdict": "reproduced"},
        "after": {"version": VERSIONS[k], "verdict": "not-reproduced"}}
    assert result.decisive_probes <= limit(len(VERSIONS))
    assert "fixed between" in result.summary


def test_regression_is_found_too():
    result = bisect_releases(VERSIONS, FlakyOracle(introduced_at(25)), 22)
    assert result.boundary["before"] == {"version": "0.24.0",
                                         "verdict": "not-reproduced"}
    assert result.boundary["after"]["version"] == "0.25.0"
    assert "introduced between" in result.summary


@pytest.mark.parametrize("rate", [0.5, 0.1, 0.03])
@pytest.mark.parametrize("seed", range(10))
def test_flaky_fix_is_found(rate, seed):
    oracle = FlakyOracle(fixed_at(23), rate=rate, seed=seed)
    result = bisect_releases(VERSIONS, oracle, 22)
    # With a miss probability of 0.1% per probe, 30 searches of about 8
    # probes each may miss once in a few hundred; none of these seeds does.
    assert result.boundary["before"]["version"] == "0.22.0"
    assert result.boundary["after"]["version"] == "0.23.0"
    assert result.decisive_probes <= limit(len(VERSIONS))
    # Every "not reproduced" had the runs the decision rule asked for.
    for probe in result.tested:
        if probe.verdict == "not-reproduced":
            assert probe.runs >= result.runs_to_rule_out


def test_broken_versions_are_skipped_like_git_bisect_skip():
    broken = {"0.19.0", "0.20.0", "0.21.0", "0.0.0"}
    oracle = FlakyOracle(fixed_at(21), broken=broken)
    result = bisect_releases(VERSIONS, oracle, 22)
    # 0.20.0 and 0.21.0 cannot be told apart: the answer is the closest
    # usable pair, and the summary says why.
    assert result.boundary["before"]["version"] == "0.18.0"
    assert result.boundary["after"]["version"] == "0.22.0"
    assert "the releases between (3 releases, 0.19.0 to 0.21.0) could not " \
        "be placed" in result.summary
    assert {p.version for p in result.tested if p.verdict == "error"} <= broken
    assert result.decisive_probes <= limit(len(VERSIONS))


def test_nothing_flips_is_said_plainly():
    result = bisect_releases(VERSIONS, FlakyOracle(lambda v: True), 22)
    assert result.boundary is None
    assert "nothing flips" in result.summary
    result = bisect_releases(VERSIONS, FlakyOracle(lambda v: False), 22)
    assert result.boundary is None and "neither end" in result.summary


def test_all_broken_and_empty_ranges():
    result = bisect_releases(VERSIONS[:3], FlakyOracle(
        lambda v: True, broken=set(VERSIONS[:3])), 22)
    assert result.boundary is None and "could be tested" in result.summary
    assert bisect_releases([], FlakyOracle(lambda v: True), 22).boundary is None


def test_two_releases():
    result = bisect_releases(VERSIONS[:2], FlakyOracle(fixed_at(1)), 22)
    assert result.boundary["after"]["version"] == "0.1.0"


def test_probe_limit_matches_the_issue():
    assert [probe_limit(n) for n in (1, 2, 10, 40, 64)] == [3, 4, 7, 9, 9]


@pytest.mark.parametrize("argv, message", [
    (["--python", "3.11"], "the following arguments are required: --package"),
    (["--package", "numba", "--python", "3.9"], "unsupported Python 3.9"),
    (["--package", "numba", "--python", "3.11", "--from", "0.60.0", "--to",
      "0.58.1"], "--from 0.60.0 is newer than --to 0.58.1"),
    (["--package", "numba", "--python", "3.11", "--from", "latest"],
     "Invalid version: 'latest'"),
    (["--package", "numba", "--python", "3.11", "--sim", "0"],
     "unrecognized arguments: --sim 0"),
])
def test_bad_arguments_get_one_line(argv, message):
    with pytest.raises(BadInput, match=message.replace("-", r"\-")):
        parse_args(argv)


@pytest.mark.parametrize("argv, stem", [
    (["--package", "numba", "--python", "3.12"], "numba-py3.12"),
    (["--package", "numba", "--python", "3.12", "--from", "0.68.0", "--to",
      "0.68.1"], "numba-py3.12-0.68.0-0.68.1"),
    (["--package", "numba", "--python", "3.12", "--from", "0.60.0"],
     "numba-py3.12-0.60.0-last"),
    (["--package", "numba-cuda", "--python", "3.11", "--to", "0.20.0"],
     "numba-cuda-py3.11-first-0.20.0"),
])
def test_a_narrower_range_gets_its_own_file(argv, stem):
    args = parse_args(argv)
    assert bisect_stem({"package": args.package, "python": args.python,
                        "sim": True, "from": args.start,
                        "to": args.end}) == stem


def test_the_widest_search_is_kept_per_package_and_python():
    def bisect(python, releases, finished, extra=()):
        return {"package": "numba", "python": python, "sim": True,
                "with": list(extra), "releases": releases,
                "provenance": {"finished": finished}}
    full = bisect("3.12", [f"0.{i}.0" for i in range(99)], "2026-11-24")
    narrow = bisect("3.12", ["0.68.0", "0.68.1"], "2026-11-25")
    other_python = bisect("3.10", ["0.68.0", "0.68.1"], "2026-11-25")
    pinned = bisect("3.12", ["0.68.0", "0.68.1"], "2026-11-25", ["numpy<2"])
    kept = widest_bisects([narrow, full, other_python, pinned])
    assert full in kept and narrow not in kept
    assert other_python in kept and pinned in kept and len(kept) == 3


def test_the_table_says_how_each_release_was_installed():
    probe = Probe("0.18.1", "reproduced", 22, 3, way="as-of-upload+extras",
                  exclude_newer="2025-08-09T11:30:37Z",
                  packages={"numba-cuda": "0.18.1", "numba": "0.61.2",
                            "pytest": "8.4.1"}).to_json()
    failed = Probe("0.0.0", "error", reason="no code", attempts=[
        {"way": "as-asked", "outcome": "import-failed", "reason": "x"},
        {"way": "as-of-upload", "outcome": "import-failed", "reason": "x"}]).to_json()
    text = markdown(race_data(tested=[failed, probe],
                              shown_packages=["numba-cuda", "numba"]))
    assert "| 0.18.1 | reproduced | 22 | 3 | as-of-upload+extras as of " \
        "2025-08-09: numba-cuda 0.18.1, numba 0.61.2 |" in text
    assert "| 0.0.0 | error | 0 | 0 | tried as-asked, as-of-upload | no " \
        "code |" in text


def race_data(**fields):
    return {"package": "numba-cuda", "python": "3.11", "sim": True,
            "with": ["numba==0.61.2"], "releases": ["0.24.0", "0.26.0"],
            "tested": [Probe("0.24.0", "reproduced", 22, 7, "7 of 22").to_json(),
                       Probe("0.26.0", "not-reproduced", 44, 0, "0 of 44").to_json()],
            "summary": "the bug is fixed between 0.24.0 and 0.26.0",
            "decisive_probes": 2, "probe_limit": 4, "rate_used": 0.164,
            "runs_to_rule_out": 39, "miss_probability": 0.001, "seconds": 30.0,
            "boundary": {}, "provenance": {"command": "nox -s bisect",
                                           "finished": "2026-11-24",
                                           "machine": {"os": "Linux", "cores": 2}},
            **fields}


def test_markdown_states_the_numbers_used():
    text = markdown(race_data())
    assert "after 39 passing runs" in text and "16.4% per run" in text
    assert "| 0.26.0 | not-reproduced | 44 | 0 |" in text


def test_runs_of_missing_wheels_are_condensed():
    tested = [Probe(v, "skipped", reason=f"no wheel of numba=={v} for Python 3.12").to_json()
              for v in ("0.1", "0.2", "0.3")]
    tested += [Probe("0.4", "error", reason="cannot import").to_json(),
               Probe("0.5", "skipped", reason="no wheel of numba==0.5 for Python 3.12").to_json(),
               Probe("0.6", "reproduced", 22, 5).to_json()]
    tested.insert(4, Probe("0.4.1", "error", reason="cannot import").to_json())
    groups = condensed_probes(tested)
    assert [(first, last, count) for first, last, _, count in groups] == [
        ("0.1", "0.3", 3), ("0.4", "0.4.1", 2), ("0.5", "0.5", 1),
        ("0.6", "0.6", 1)]
    assert groups[0][2]["reason"] == "no wheel for Python 3.12"
    assert groups[1][2]["reason"] == "cannot import"


def test_excluded_releases_are_noted():
    data = race_data(python="3.10", excluded_by_requires_python=[
        "0.52.0", "0.53.0", "0.54.1"], rate_used=None)
    assert "Left out before the search: 3 releases (0.52.0 to 0.54.1) whose " \
        "Requires-Python excludes Python 3.10." in markdown(data)


@pytest.mark.e2e  # asks the package index
def test_releases_are_judged_by_the_target_python_not_noxs(monkeypatch):
    from racematrix.bisect_session import releases_in_range
    from racematrix.interpreters import expose_interpreters
    environ = {"PATH": os.environ.get("PATH", "")}
    expose_interpreters(environ)  # pyenv's 3.10 too, whatever ran before
    monkeypatch.setenv("PATH", environ["PATH"])

    def releases(python):
        return releases_in_range(parse_args([
            "--package", "numba", "--python", python, "--from", "0.51.2",
            "--to", "0.56.0"]))
    on_310, excluded_310 = releases("3.10")
    on_312, excluded_312 = releases("3.12")
    # 0.55 was the first numba for 3.10 and excludes 3.11 and newer, whichever
    # Python runs pip here.
    assert "0.55.2" in map(str, on_310) and "0.55.2" in excluded_312
    assert "0.54.1" in excluded_310
    assert set(map(str, on_310)) | set(excluded_310) == \
        set(map(str, on_312)) | set(excluded_312)


def test_metric_is_failure_unless_launch_time_is_asked():
    from racematrix.bisect_session import parse_args
    base = ["--package", "numba-cuda", "--python", "3.12"]
    assert parse_args(base).metric == "failure"
    assert parse_args(base + ["--metric", "launch-time"]).metric == "launch-time"
    with pytest.raises(BadInput, match="--metric"):
        parse_args(base + ["--metric", "speed"])


def test_time_bisects_rerender_as_such_and_stay_apart(tmp_path, data_dir):
    """A real bisect on launch time sits beside the race's in one folder:
    it is re-rendered by its own renderer and the report keeps it apart."""
    import json
    import shutil
    from racematrix.bisect_files import load_bisects, rerender_bisects
    shutil.copy(data_dir / "launch_time" / "bisect-numba-cuda-py3.12.json",
                tmp_path / "numba-cuda-py3.12-launch-time.json")
    rerender_bisects(tmp_path)
    text = (tmp_path / "numba-cuda-py3.12-launch-time.md").read_text()
    assert text.startswith("# Bisect on launch time")
    assert load_bisects(tmp_path) == []
    data = json.loads((tmp_path / "numba-cuda-py3.12-launch-time.json")
                      .read_text())
    assert load_bisects(tmp_path, "launch-time") == [data]


# --- More runs at the reproducing end when its rate is known poorly ---

# Recorded first looks at numba-cuda 0.24.0 (the MWE, Python 3.11, 22 runs):
# 8 failures on an idle machine, 2 beside the project's other tests.
IDLE, LOADED = (8, 22), (2, 22)


def total_runs(failures, runs, clean):
    from racematrix.search import MISS_PROBABILITY
    from racematrix.stats import runs_to_rule_out, wilson_interval
    low = wilson_interval(round(failures / runs * clean[1]), clean[1])[0]
    return clean[1] + clean[0] * runs_to_rule_out(low, MISS_PROBABILITY)


@pytest.mark.parametrize("seen", [IDLE, LOADED, (1, 22), (22, 22), (3, 5)])
@pytest.mark.parametrize("clean", [1, 1.5, 4])
def test_firming_runs_never_costs_more_than_it_spares(seen, clean):
    from racematrix.search import FIRMING_GROWTH, firming_runs
    failures, runs = seen
    chosen = firming_runs(failures, runs, clean)
    assert runs <= chosen <= FIRMING_GROWTH * runs
    assert chosen // runs in (1, 2, 4, 8, 16) and chosen % runs == 0
    assert total_runs(failures, runs, (clean, chosen)) <= \
        total_runs(failures, runs, (clean, runs))


def test_a_poorly_known_rate_gets_more_runs_and_a_firm_one_none():
    from racematrix.search import firming_runs
    assert firming_runs(*LOADED, 1.5) > LOADED[1]
    assert firming_runs(*IDLE, 1.5) == IDLE[1]
    # The more releases to rule out, the more a firmer rate is worth.
    assert firming_runs(*LOADED, 4) >= firming_runs(*LOADED, 1)
    assert firming_runs(0, 22, 3) == 22  # no rate: nothing to firm


@pytest.mark.parametrize("rate", [0.1, 0.03])
def test_firming_the_rate_spares_runs_over_many_searches(rate, monkeypatch):
    """Ten flaky searches each with and without more runs at the
    reproducing end: the same answers, and fewer runs in all with them."""
    from racematrix import search as race_search
    totals = {}
    for growth in (1, race_search.FIRMING_GROWTH):
        monkeypatch.setattr(race_search, "FIRMING_GROWTH", growth)
        totals[growth] = 0
        for seed in range(10):
            oracle = FlakyOracle(fixed_at(23), rate=rate, seed=seed)
            result = bisect_releases(VERSIONS, oracle, 22)
            assert result.boundary["after"]["version"] == "0.23.0"
            totals[growth] += sum(p.runs for p in result.tested)
    assert totals[race_search.FIRMING_GROWTH] < totals[1]


def test_only_a_rate_runs_whole_and_a_verdict_stops_at_its_failure():
    """The ends' first look and the firming of the rate run all their runs;
    a probe between the ends asks only for a verdict."""
    oracle = FlakyOracle(fixed_at(23), rate=0.1, seed=3)
    result = bisect_releases(VERSIONS, oracle, 22)
    ends = {VERSIONS[0], VERSIONS[-1]}
    firsts = {}
    for version, min_runs, whole in oracle.asked:
        firsts.setdefault(version, (min_runs, whole))
    assert all(firsts[v] == (22, True) for v in ends)
    assert not any(whole for version, _, whole in oracle.asked
                   if version not in ends)
    reproducing = next(p for p in result.tested if p.version == VERSIONS[0])
    assert any(whole and min_runs > 22 for version, min_runs, whole
               in oracle.asked if version == VERSIONS[0]) == \
        (reproducing.runs > 22)
    # A probe with the bug stopped at its first failure.
    for probe in result.tested:
        if probe.version not in ends and probe.verdict == "reproduced":
            assert probe.failures == 1


def test_a_probe_for_a_rate_runs_on_past_its_first_failure():
    assert decide_probe(1, 3, 22) == "reproduced"
    assert decide_probe(1, 3, 22, whole=True) is None
    assert decide_probe(1, 22, 22, whole=True) == "reproduced"
    assert decide_probe(0, 22, 22, whole=True) == "not-reproduced"


# --- A guess: releases probed before the middle ---


@pytest.mark.parametrize("k, guess", [
    (17, ["0.16.0", "0.17.0"]), (17, ["0.30.0", "0.31.0"]),
    (3, ["0.20.0"]), (38, ["0.37.0", "0.38.0"])])
def test_a_guess_is_probed_first_and_placed_like_any_release(k, guess):
    oracle = FlakyOracle(fixed_at(k))
    result = bisect_releases(VERSIONS, oracle, 22, guess)
    assert result.boundary["after"]["version"] == VERSIONS[k]
    between = [v for v in oracle.calls if v not in (VERSIONS[0],
                                                     VERSIONS[-1])]
    assert between[0] == guess[0]
    if guess == [VERSIONS[k - 1], VERSIONS[k]]:
        assert set(between) == set(guess)


@pytest.mark.parametrize("text, wanted", [
    ("auto", "auto"), ("none", "none"), ("0.24.0,0.26.0", ["0.24.0", "0.26.0"]),
    ("0.24, 0.26.0", ["0.24", "0.26.0"]), ("0.26.0", ["0.26.0"])])
def test_guess_option_is_auto_none_or_releases(text, wanted):
    args = parse_args(["--package", "numba-cuda", "--python", "3.12",
                       "--guess", text])
    assert args.guess == wanted


@pytest.mark.parametrize("text", ["latest", "0.24.0,newest", ",", "auto,0.1"])
def test_a_malformed_guess_is_one_line(text):
    with pytest.raises(BadInput, match="argument --guess: .* is not auto, "
                                       "none or release numbers"):
        parse_args(["--package", "numba-cuda", "--python", "3.12",
                    "--guess", text])


def race_bisect_file(folder, name, before, after, releases, **fields):
    data = {"package": "numba-cuda", "python": "3.12", "sim": True,
            "with": [], "releases": releases,
            "boundary": {"before": {"version": before},
                         "after": {"version": after}}, **fields}
    (folder / name).write_text(json.dumps(data))


def test_on_launch_time_the_race_bisects_pair_is_guessed(tmp_path, caplog):
    releases = [f"0.{i}.0" for i in range(30)]
    race_bisect_file(tmp_path, "numba-cuda-py3.12.json", "0.24.0", "0.26.0",
                     releases)
    race_bisect_file(tmp_path, "numba-cuda-py3.12-0.20.0-last.json",
                     "0.24.0", "0.25.0", releases[20:])
    race_bisect_file(tmp_path, "numba-cuda-py3.11.json", "0.1.0", "0.2.0",
                     releases, python="3.11")
    race_bisect_file(tmp_path, "numba-cuda-py3.12-launch-time.json",
                     "0.3.0", "0.4.0", releases, metric="launch-time")
    race_bisect_file(tmp_path, "numba-cuda-py3.12.partial.json", "0.5.0",
                     "0.6.0", releases * 2, partial=True)
    def guess_for(*argv):
        args = parse_args(["--package", "numba-cuda", "--python", "3.12",
                           *argv])
        return resolve_guess(args, [Version(v) for v in releases], tmp_path)
    caplog.set_level("INFO")
    assert guess_for("--metric", "launch-time") == {
        "versions": ["0.24.0", "0.26.0"], "source": "numba-cuda-py3.12.json"}
    assert "--guess none" in caplog.records[-1].getMessage()
    assert guess_for("--metric", "launch-time", "--guess", "none") is None
    assert guess_for() is None  # the race bisect guesses only when told
    assert guess_for("--metric", "launch-time", "--with", "numba==0.63.1") \
        is None
    assert guess_for("--guess", "0.7,0.8.0") == {
        "versions": ["0.7.0", "0.8.0"], "source": "--guess"}
    with pytest.raises(BadInput, match=r"--guess 0\.31\.0 is not a release "
                                       r"in range; nearest: .*0\.29\.0"):
        guess_for("--guess", "0.24.0,0.31.0")


def test_a_race_pair_out_of_range_is_no_guess(tmp_path):
    race_bisect_file(tmp_path, "numba-cuda-py3.12.json", "0.24.0", "0.26.0",
                     ["0.24.0", "0.26.0"])
    args = parse_args(["--package", "numba-cuda", "--python", "3.12",
                       "--metric", "launch-time"])
    assert resolve_guess(args, [Version("0.26.0"), Version("0.27.0")],
                         tmp_path) is None


def test_the_markdown_says_what_was_probed_first_and_if_it_held():
    guess = {"versions": ["0.24.0", "0.26.0"],
             "source": "numba-cuda-py3.12.json", "held": True}
    assert "Probed first: 0.24.0 and 0.26.0 (where the race bisect " \
        "`numba-cuda-py3.12.json` placed its flip); the search ended at " \
        "that same pair." in markdown(race_data(guess=guess))
    guess.update(source="--guess", held=False)
    assert "(named with `--guess`); the search ended elsewhere" in \
        markdown(race_data(guess=guess))
    assert "Probed first" not in markdown(race_data())
