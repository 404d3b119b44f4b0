"""The order a matrix run hands its sessions out in, on recorded rows."""
import heapq
import json
from pathlib import Path

from nox.project import load_toml  # tomllib is 3.11+

from racematrix.suites import env_of, load_matrix
from racematrix.schedule import (expected_seconds, in_order, last_seconds,
                                 longest_first)

PROJECT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def real_matrix():
    """The matrix with CuBIE's suite named too (not run by default)."""
    table = load_toml(PROJECT / "pyproject.toml")
    return load_matrix(table["tool"]["racematrix"],
                       {"MATRIX_SUITES": "mwe cubie"}, str(PROJECT))


def tabled(raw_folder, tmp_path):
    """A results folder whose tables are made from a folder of raw files
    (``last_seconds`` reads the tables)."""
    from racematrix.tables import write_tables
    results = tmp_path / f"{raw_folder.name}-results"
    results.mkdir()
    write_tables([raw_folder], results, "test")
    return results


def recorded(raw_folder, tmp_path):
    return last_seconds(tabled(raw_folder, tmp_path))


def makespan(seconds, workers=2):
    """How long ``seconds`` take handed out in order to ``workers`` (as
    nox's -j does: each free worker takes the next session)."""
    free = [0.0] * workers
    for each in seconds:
        heapq.heappush(free, heapq.heappop(free) + each)
    return max(free)


def test_the_first_folder_that_has_a_row_wins_then_the_suites_median(
        tmp_path):
    envs = [env_of(c) for c in real_matrix().combinations()]
    here = recorded(DATA / "raw", tmp_path)
    committed = recorded(DATA / "raw-cubie", tmp_path)
    assert here and committed
    moved = next(iter(committed))
    expected = expected_seconds(envs, {moved: 1.5, **here}, committed)
    assert expected[moved] == 1.5
    cubie = [env for env in envs if env.suite == "cubie"]
    assert {env.env_id for env in cubie} <= set(committed) | {moved}
    for env in cubie:
        if env.env_id != moved:
            assert expected[env.env_id] == committed[env.env_id]
    # MWE rows this data has no row for: the median of the ones it has.
    known = sorted(v for k, v in here.items()
                   if k in expected and not k.startswith("cubie-"))
    unknown = [env for env in envs if env.suite == "mwe" and
               env.env_id not in here]
    assert known and unknown
    middle = len(known) // 2
    median = known[middle] if len(known) % 2 else \
        (known[middle - 1] + known[middle]) / 2
    assert {expected[env.env_id] for env in unknown} == {median}


def test_a_suite_never_recorded_goes_first_then_the_longest(tmp_path):
    combinations = real_matrix().combinations()
    committed = recorded(DATA / "raw-cubie", tmp_path)
    expected = expected_seconds([env_of(c) for c in combinations], committed)
    order = longest_first(combinations, env_of, expected)
    assert sorted(order) == sorted(combinations)
    suites = [c[1] for c in order]
    # No MWE row is recorded here: its whole suite is unknown, and first,
    # in the matrix's own order.
    mwe = [c for c in combinations if c[1] == "mwe"]
    assert order[:len(mwe)] == mwe
    assert set(suites[len(mwe):]) == {"cubie"}
    times = [expected[env_of(c).env_id] for c in order[len(mwe):]]
    assert times == sorted(times, reverse=True)


def test_on_the_committed_rows_longest_first_never_ends_later():
    """The project's own rows, as a rerun into an empty folder sees them:
    handed out longest first, two at a time, they end no later than in
    the matrix's own order."""
    combinations = [c for c in real_matrix().combinations() if c[3]]
    committed = last_seconds(PROJECT / "results")
    envs = [env_of(c) for c in combinations]
    recorded = [env for env in envs if env.env_id in committed]
    if len(recorded) < 4:
        import pytest
        pytest.skip("results/ holds fewer than 4 rows of the default matrix")
    expected = expected_seconds(envs, {}, committed)
    truth = [expected[env.env_id] for env in envs]
    ordered = [expected[env_of(c).env_id] for c in
               longest_first(combinations, env_of, expected)]
    assert makespan(ordered) <= makespan(truth)
    assert ordered == sorted(truth, reverse=True)


def test_in_order_reads_this_runs_rows_before_the_checkouts(tmp_path):
    """An empty results folder orders by the checkout's rows; a row of
    this run's folder wins over the checkout's."""
    combinations = [c for c in real_matrix().combinations()
                    if c[1] == "cubie"]
    committed = tabled(DATA / "raw-cubie", tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    seconds = last_seconds(committed)
    by_checkout = in_order(combinations, env_of, [empty, committed])
    assert [seconds[env_of(c).env_id] for c in by_checkout] == sorted(
        seconds.values(), reverse=True)
    # This run's folder says the checkout's shortest row is now the longest.
    shortest = by_checkout[-1]
    mine = tmp_path / "mine"
    (mine / "raw").mkdir(parents=True)
    row = json.loads((DATA / "raw-cubie" /
                      f"{env_of(shortest).env_id}.json").read_text())
    row["seconds"] = max(seconds.values()) + 1
    (mine / "raw" / f"{row['env']}.json").write_text(json.dumps(row))
    mine = tabled(mine / "raw", tmp_path)
    assert in_order(combinations, env_of, [mine, committed])[0] == shortest
