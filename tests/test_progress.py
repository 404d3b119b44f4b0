"""What `nox -s matrix` says as it goes: one line per finished
environment, and the run's last word (racematrix.matrix_session), on real
raw rows."""
import json
import os

from racematrix import matrix_session

DATA_ROW = "py3.11-numba-0.60.0-sim1.json"


def real_row(data_dir, name=DATA_ROW):
    return json.loads((data_dir / "raw" / name).read_text())


def test_the_leading_process_hands_its_run_to_its_workers():
    environ = {}
    assert matrix_session.lead_run(environ, total=3)
    pid, total, started = environ[matrix_session.RUN_VARIABLE].split(":")
    assert pid == str(os.getpid()) and total == "3" and float(started) > 0
    # A -j worker is a child of the leader: it sees the leader's pid as
    # its parent's, and does not lead.
    worker = {matrix_session.RUN_VARIABLE: f"{os.getppid()}:3:1.0"}
    assert not matrix_session.lead_run(worker, total=3)
    # Any other process that inherited the variable (a nox started by the
    # bench or the tests) leads its own run.
    other = {matrix_session.RUN_VARIABLE: "1:3:1.0"}
    assert matrix_session.lead_run(other, total=5)
    assert other[matrix_session.RUN_VARIABLE].split(":")[1] == "5"


def test_each_finished_environment_is_one_line_with_its_progress(
        data_dir, tmp_path):
    environ = {}
    matrix_session.lead_run(environ, total=2)
    row = real_row(data_dir)
    line = matrix_session.note_finished(tmp_path, row, environ)
    assert "\n" not in line
    assert line.startswith("[1/2, ~") and row["env"] in line
    assert row["verdict"] in line
    assert f"{row['failures']}/{row['runs']}" in line or "pattern" in line
    # The same row again is still one environment done.
    again = matrix_session.note_finished(tmp_path, row, environ)
    assert again.startswith("[1/2")
    summary = matrix_session.finish_run(tmp_path, environ)
    assert summary.startswith("matrix: 1 environments in ")
    assert f"1 {row['verdict']}" in summary
    # The journal is gone once the run has said its last word.
    assert not matrix_session.run_journal(tmp_path, environ).exists()
    assert matrix_session.finish_run(tmp_path, environ) is None


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
