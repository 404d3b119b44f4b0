"""What `nox -s matrix` says as it goes: one line per finished
environment, and the run's last word (racematrix.matrix_session), on real
raw rows."""
import json
import os

from racematrix import matrix_session

DATA_ROW = "py3.11-numba-0.60.0-sim1.json"


def real_row(data_dir, name=DATA_ROW):
    return json.loads((data_dir / "raw" / name).read_text())


def test_a_run_is_the_nox_process_or_under_j_its_parent():
    assert matrix_session.run_id(parallel=False) == os.getpid()
    assert matrix_session.run_id(parallel=True) == os.getppid()


def test_each_finished_environment_is_one_line_with_its_progress(
        data_dir, tmp_path):
    row = real_row(data_dir)
    line = matrix_session.note_finished(tmp_path, row, 7, total=2)
    assert "\n" not in line
    assert line.startswith("[1/2, ~") and row["env"] in line
    assert row["verdict"] in line
    assert f"{row['failures']}/{row['runs']}" in line or "pattern" in line
    # The same row again is still one environment done.
    again = matrix_session.note_finished(tmp_path, row, 7, total=2)
    assert again.startswith("[1/2")
    # Another run's journal is its own.
    assert matrix_session.note_finished(tmp_path, row, 8, total=2) \
        .startswith("[1/2")
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / DATA_ROW).write_text(json.dumps(row))
    from racematrix.envspec import EnvSpec
    here = EnvSpec(row["spec"]["python"], tuple(row["spec"]["requirements"]),
                   row["spec"]["sim"])
    configured = [here, EnvSpec("3.12", ("numba==0.60.0",), False)]
    assert here.env_id == row["env"]
    summary, failed = matrix_session.finish_run(tmp_path, 7, configured)
    assert summary.startswith("matrix: 1 environments in ")
    assert f"1 {row['verdict']}" in summary and "1 not run here" in summary
    assert f"report {tmp_path}/REPORT.md" in summary
    assert (tmp_path / "REPORT.md").is_file() and failed == []
    # The journal is gone once the run has said its last word.
    assert not matrix_session.run_journal(tmp_path, 7).exists()
    assert matrix_session.run_journal(tmp_path, 8).exists()
    # The configured environment without a row is in the tables as such.
    table = json.loads((tmp_path / "failure_rates.json").read_text())
    assert {r["env"]: r["verdict"] for r in table["rows"]} == {
        here.env_id: row["verdict"], configured[1].env_id: "skipped"}
    empty, _ = matrix_session.finish_run(tmp_path, 7, [here])
    assert empty == "matrix: 0 environments; 1 not run here"


def test_a_row_line_gives_the_rate_per_kind_and_the_launches(data_dir):
    row = real_row(data_dir)
    row["kinds"] = {"pattern": {"runs": 16, "failures": 9, "other": 0,
                                "hangs": 0},
                    "trigger": {"runs": 1, "failures": 1, "other": 0,
                                "hangs": 0}}
    row["launch_seconds"] = {"n": 3, "median": 0.71, "decision": "alike"}
    line = matrix_session.row_line(row)
    assert line == (f"{row['verdict']}, pattern 9/16, trigger 1/1, "
                    f"3 launches, median 0.71 s: alike")
    skipped = dict(row, verdict="skipped", runs=0, reason="no wheel")
    assert matrix_session.row_line(skipped) == "skipped: no wheel"
