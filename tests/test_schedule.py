"""The order a matrix run hands its sessions out in (suites.in_order), on
recorded rows."""
import heapq
import json
from pathlib import Path

from nox.project import load_toml  # tomllib is 3.11+

from racematrix.suites import in_order, load_matrix

PROJECT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def real_matrix():
    """The matrix with CuBIE's suite named too (not run by default)."""
    table = load_toml(PROJECT / "pyproject.toml")
    return load_matrix(table["tool"]["racematrix"],
                       {"MATRIX_SUITES": "mwe cubie"}, str(PROJECT))


def tabled(raw_folder, tmp_path):
    """A results folder whose tables are made from a folder of raw files
    (the schedule reads the tables)."""
    from racematrix.tables import write_tables
    results = tmp_path / f"{raw_folder.parent.name}-{raw_folder.name}-tables"
    results.mkdir()
    write_tables([raw_folder], results, "test")
    return results


def last_seconds(results):
    """{env id: seconds} of the measured rows in ``results``' tables."""
    path = Path(results) / "failure_rates.json"
    if not path.exists():
        return {}
    return {row["env"].split("@", 1)[0]: row["seconds"]
            for row in json.loads(path.read_text())["rows"]
            if row.get("runs") and row.get("seconds") is not None}


def makespan(seconds, workers=2):
    """How long ``seconds`` take handed out in order to ``workers`` (as
    nox's -j does: each free worker takes the next session)."""
    free = [0.0] * workers
    for each in seconds:
        heapq.heappush(free, heapq.heappop(free) + each)
    return max(free)


def test_the_first_folder_that_has_a_row_wins_and_unrecorded_go_first(
        tmp_path):
    """A row of this run's folder wins over the checkout's; a row no folder
    has goes first."""
    combinations = real_matrix().envs()
    committed = tabled(DATA / "raw-cubie", tmp_path)
    seconds = last_seconds(committed)
    cubie = [c for c in combinations if c.suite == "cubie"]
    assert {c.env_id for c in cubie} <= set(seconds)
    order = in_order(combinations, [tmp_path / "none", committed])
    assert sorted(order, key=str) == sorted(combinations, key=str)
    # No MWE row is recorded here: its whole suite is unknown, and first,
    # in the matrix's own order; then CuBIE's, the longest first.
    mwe = [c for c in combinations if c.suite == "mwe"]
    assert order[:len(mwe)] == mwe
    assert [seconds[c.env_id] for c in order[len(mwe):]] == sorted(
        seconds.values(), reverse=True)
    # This run's folder says the checkout's shortest row is now the longest.
    shortest = order[-1]
    mine = tmp_path / "mine"
    (mine / "raw").mkdir(parents=True)
    row = json.loads((DATA / "raw-cubie" /
                      f"{shortest.env_id}.json").read_text())
    row["seconds"] = max(seconds.values()) + 1
    (mine / "raw" / f"{row['env']}.json").write_text(json.dumps(row))
    mine = tabled(mine / "raw", tmp_path)
    assert in_order(cubie, [mine, committed])[0] == shortest
    # One MWE row recorded, the shortest: the other MWE rows (never
    # recorded) first, in the matrix's order, then CuBIE's, then it.
    first = mwe[0].env_id
    mwe_rows = tmp_path / "mwe-rows"
    (mwe_rows / "raw").mkdir(parents=True)
    row = json.loads((DATA / "raw" / "py3.11-numba-0.60.0-sim1.json")
                     .read_text())
    row.update(env=first, seconds=min(seconds.values()) / 2)
    (mwe_rows / "raw" / f"{first}.json").write_text(json.dumps(row))
    order = in_order(combinations, [tabled(mwe_rows / "raw", tmp_path),
                                    committed])
    assert order == [*mwe[1:], *in_order(cubie, [committed]), mwe[0]]


def test_on_the_committed_rows_longest_first_never_ends_later():
    """The project's own rows, as a rerun into an empty folder sees them:
    handed out longest first, two at a time, they end no later than in
    the matrix's own order."""
    combinations = [c for c in real_matrix().envs() if c.sim]
    committed = last_seconds(PROJECT / "results")
    known = [c for c in combinations if c.env_id in committed]
    if len(known) < 4:
        import pytest
        pytest.skip("results/ holds fewer than 4 rows of the default matrix")
    truth = [committed[c.env_id] for c in known]
    ordered = [committed[c.env_id] for c in
               in_order(known, [PROJECT / "results"])]
    assert makespan(ordered) <= makespan(truth)
    assert ordered == sorted(truth, reverse=True)
