"""Issue 18: faults rather than typos. Nothing measured is lost, and every
failure is one line. One block per class; each tries the issue's example
and at least one other member of the class."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from racematrix import (bisect_files, envspec, errors, fileio, install,
                        matrix_session, measurement, rawresult, report,
                        tables)
from racematrix.bisect_session import parse_args
from racematrix.envspec import EnvSpec, parse_spec
from racematrix.search import Probe, bisect_releases, decide_probe
from racematrix.rawresult import (RawResultWarning, decide_verdict, make_raw,
                                  validate_raw)

MEASURED = "py3.11-numba-0.60.0-sim1.json"
SPEC = EnvSpec("3.11", ("numba==0.60.0",), True)


def results_with_measured_row(data_dir, tmp_path):
    results = tmp_path / "results"
    (results / "raw").mkdir(parents=True)
    shutil.copy(data_dir / "raw" / MEASURED, results / "raw" / MEASURED)
    return results, json.loads((results / "raw" / MEASURED).read_text())


def failed(spec=SPEC, **fields):
    return make_raw(spec, packages={}, python="", python_build="",
                    command="nox -s matrix", **fields)


# 1. A failed attempt never replaces a measured row -------------------------

@pytest.mark.parametrize("attempt, detail", [
    # The example: the index cannot be reached.
    (dict(env_error="package index http://127.0.0.1:9/simple unreachable "
                    "(connection refused)"), "uv-unreachable-index.txt"),
    # pytest killed by a signal, and a run whose report went missing.
    (dict(env_error="pytest was killed by signal SIGKILL before its report"),
     None),
    (dict(env_error="pytest exited 0 without a report: 1 passed"), None),
    # A skip (no GPU here) is no result either.
    (dict(skip_reason="no CUDA GPU (simulator off needs one)"), None),
])
def test_a_failed_attempt_is_kept_beside_the_measured_row(
        data_dir, tmp_path, attempt, detail):
    results, before = results_with_measured_row(data_dir, tmp_path)
    text = (data_dir / detail).read_text() if detail else None
    raw = failed(**attempt)
    written = rawresult.record(raw, results, text)
    after = json.loads((results / "raw" / MEASURED).read_text())
    assert rawresult.measured(written) and not rawresult.measured(raw)
    assert {k: v for k, v in after.items() if k != "attempts"} == before
    [entry] = after["attempts"]
    assert entry["why"] == raw["reason"]
    assert entry["command"] == "nox -s matrix" and entry["when"]
    assert entry["detail"] == (text or raw["reason"])
    assert validate_raw(after) is None
    # A second failure adds up; a measured run replaces the row and them.
    rawresult.record(failed(**attempt), results)
    assert len(json.loads((results / "raw" / MEASURED).read_text())
               ["attempts"]) == 2
    measured = dict(before, finished="2099-01-01T00:00:00+00:00")
    rawresult.record(measured, results)
    assert "attempts" not in json.loads((results / "raw" / MEASURED).read_text())


def test_an_environment_that_never_had_results_still_gets_its_error_row(
        tmp_path):
    raw = failed(env_error="install failed: x")
    written = rawresult.record(raw, tmp_path, "the whole chain")
    assert written["verdict"] == "error" and written["runs"] == 0
    assert written["attempts"][0]["detail"] == "the whole chain"
    assert not rawresult.measured(written)
    # ... and a skip writes its row without an attempt.
    skip = failed(spec=EnvSpec("3.12", ("numba==0.60.0",), False),
                  skip_reason="no CUDA GPU")
    assert "attempts" not in rawresult.record(skip, tmp_path)


def test_the_tables_and_report_say_the_last_attempt_failed(data_dir,
                                                             tmp_path):
    results, before = results_with_measured_row(data_dir, tmp_path)
    rawresult.record(failed(env_error="package index http://127.0.0.1:9/"
                                      "simple unreachable (connection "
                                      "refused)"), results)
    report.build_report([results / "raw"], results, results / "bisect",
                        "test", plot=False)
    table = (results / "failure_rates.md").read_text()
    row = next(line for line in table.splitlines()
               if "last attempt failed" in line)
    assert "127.0.0.1:9/simple unreachable" in row
    assert f"| {before['runs']} |" in row  # the measured figures stay
    assert "Last attempt failed for 1 environment" in \
        (results / "REPORT.md").read_text()


def test_a_signal_and_a_lost_report_are_named():
    killed = measurement.MweRun(-signal.SIGKILL, [], 1.0, None, None)
    assert killed.no_report_reason() == \
        "pytest was killed by signal SIGKILL before its report"
    lost = measurement.MweRun(0, ["1 passed"], 1.0, None, None)
    assert "--co" in lost.no_report_reason(["--co"])


@pytest.mark.parametrize("posargs", [
    ["-p", "no:junitxml"], ["-pno:junitxml"], ["--junitxml=mine.xml"],
    ["--junit-xml", "mine.xml"], ["--count", "2", "--junitxml", "x.xml"]])
def test_options_that_take_the_report_away_are_refused_up_front(posargs):
    with pytest.raises(errors.BadInput, match="JUnit report"):
        matrix_session.split_count(posargs, 1)


def test_other_plugins_may_be_turned_off():
    assert matrix_session.split_count(["-p", "no:randomly"], 1) == \
        (1, ["-p", "no:randomly"])


# 2. A results folder that cannot be written: one line, before any work -----

def test_a_results_folder_that_is_a_file_is_one_line(tmp_path):
    regular = tmp_path / "results"
    regular.write_text("")
    assert fileio.folder_problem(regular) == \
        f"results folder {regular} is a file, not a folder"
    # Another member: a folder under a file.
    assert "a part of its path is a file" in \
        fileio.folder_problem(regular / "deeper")
    assert fileio.folder_problem(tmp_path / "fresh") is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_results_folder_is_one_line(tmp_path):
    tmp_path.chmod(0o500)
    try:
        assert "cannot be written" in fileio.folder_problem(tmp_path)
    finally:
        tmp_path.chmod(0o700)


def test_report_refuses_an_unwritable_out_in_one_line(tmp_path, capsys):
    regular = tmp_path / "out"
    regular.write_text("")
    with pytest.raises(SystemExit) as exit:
        report.main(["--raw", str(tmp_path), "--out", str(regular)])
    assert exit.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is a file, not a folder" in err


def test_the_noxfile_says_one_line_for_every_session(tmp_path):
    regular = tmp_path / "results"
    regular.write_text("")
    project = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATRIX_")}
    for session in ("report", "bench"):
        done = subprocess.run(
            [sys.executable, "-m", "nox", "-s", session],
            cwd=project, capture_output=True, text=True, timeout=300,
            env={**env, "RACEMATRIX_RESULTS": str(regular)})
        if "No module named nox" in done.stderr:
            pytest.skip("nox is not installed for this Python")
        assert done.returncode != 0
        assert (f"results folder {regular} is a file, not a folder; set "
                f"RACEMATRIX_RESULTS to a folder you can write") in done.stderr
        assert "Traceback" not in done.stderr


# 3. Every distinct requirement set has its own env id ----------------------

URL = "https://github.com/numba/numba/archive/refs/tags/0.60.0.zip"


@pytest.mark.parametrize("other", [
    f"numba @ {URL}", f"numba@{URL}", "numba>=0.60,<0.61", "numba==0.60.*",
    "numba===0.60.0"])
def test_distinct_requirement_sets_get_distinct_ids(other):
    plain = EnvSpec("3.12", parse_spec("numba"), True).env_id
    pinned = EnvSpec("3.12", parse_spec("numba==0.60.0"), True).env_id
    env_id = EnvSpec("3.12", parse_spec(other), True).env_id
    assert len({plain, pinned, env_id}) == 3
    assert env_id.startswith("py3.12-numba-")
    assert validate_raw(dict(failed(EnvSpec("3.12", parse_spec(other), True),
                                    env_error="x"))) is None


def test_ids_stay_readable_where_they_can():
    assert EnvSpec("3.12", parse_spec("numba==0.60"), True).env_id == \
        "py3.12-numba-0.60.0-sim1"
    assert re.fullmatch(r"py3\.12-numba-h[0-9a-f]{8}-sim1", EnvSpec(
        "3.12", parse_spec(f"numba @ {URL}"), True).env_id)
    two_urls = {EnvSpec("3.12", parse_spec(f"numba @ https://a.example/{n}/"
                                           f"numba.zip"), True).env_id
                for n in (1, 2)}
    assert len(two_urls) == 2
    marker = (envspec.normalize_requirement(
        'numba==0.60.0; python_version < "3.12"'),)
    assert EnvSpec("3.12", marker, True).env_id != \
        EnvSpec("3.12", ("numba==0.60.0",), True).env_id


def test_the_table_shows_what_was_asked_beside_what_resolved(data_dir):
    record = json.loads((data_dir / "raw" / MEASURED).read_text())
    ranged = dict(record, env="py3.11-numba-lt0.61-ge0.60-sim1",
                  spec=dict(record["spec"],
                            requirements=["numba<0.61,>=0.60"]))
    cells = [dict(zip(tables.TABLE_COLUMNS, tables.table_cells(
        tables.make_row(r)))) for r in (record, ranged)]
    assert cells[0]["numba"] == cells[1]["numba"]
    assert cells[0]["asked"] == "numba==0.60.0"
    assert cells[1]["asked"] == "numba<0.61,>=0.60"


# 4. An interrupted bisect keeps its probes and resumes ----------------------

VERSIONS = [f"0.{i}.0" for i in range(16)]


class SavingOracle:
    """A release line fixed at 0.9.0, probed like ReleaseProber: keeps
    ``seen``, calls ``on_probe`` after each probe, and is interrupted
    (KeyboardInterrupt, as SIGTERM is turned into) after ``stop_after``."""

    def __init__(self, stop_after=None):
        self.seen = {}
        self.on_probe = lambda: None
        self.measured = []
        self.stop_after = stop_after

    def __call__(self, version, min_runs, whole=False):
        # ``whole`` (more runs for a rate) changes nothing: every run of a
        # release with the bug fails here, and a rate of 1 needs no more.
        probe = self.seen.get(version)
        if probe and (probe.verdict != "not-reproduced"
                      or probe.runs >= min_runs):
            return probe
        if self.stop_after is not None and \
                len(self.measured) >= self.stop_after:
            raise KeyboardInterrupt("signal 15")
        self.measured.append(version)
        probe = probe or Probe(version, "not-reproduced")
        while not (decide_probe(probe.failures, probe.runs, min_runs)
                   and probe.runs):
            probe.runs += 1
            probe.failures += VERSIONS.index(version) < 9
        probe.verdict = decide_probe(probe.failures, probe.runs, min_runs)
        self.seen[version] = probe
        self.on_probe()
        return probe


def run_resumable(tmp_path, prober, monkeypatch, *argv):
    """``nox -s bisect``'s driver over VERSIONS with ``prober``."""
    from packaging.version import Version

    from racematrix import bisect_session
    monkeypatch.setattr(bisect_session, "releases_in_range", lambda args: (
        [Version(v) for v in VERSIONS], []))
    monkeypatch.setattr(bisect_session, "ReleaseProber",
                        lambda args, envdir: prober)
    return bisect_session.run_bisect(
        ["--package", "Numba", "--python", "3.12", *argv], "env", tmp_path,
        "nox -s bisect")


def resumed_said(caplog, reused):
    return any(r.getMessage().startswith(
        f"resuming an interrupted bisect: reusing {reused} saved probe(s)")
        for r in caplog.records)


def test_an_interrupted_bisect_resumes_with_its_saved_probes(
        tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO")
    first = SavingOracle(stop_after=3)
    with pytest.raises(KeyboardInterrupt):
        run_resumable(tmp_path, first, monkeypatch)
    saved = json.loads((tmp_path / "numba-py3.12.partial.json").read_text())
    reused = len(set(first.measured))
    assert saved["partial"] is True and len(saved["tested"]) == reused
    assert "(partial" in (tmp_path / "numba-py3.12.partial.md").read_text()
    again = SavingOracle()
    data = run_resumable(tmp_path, again, monkeypatch)
    assert data["resumed"]["probes_reused"] == reused
    assert resumed_said(caplog, reused)
    fresh = SavingOracle()
    assert bisect_releases(VERSIONS, fresh, 22).boundary == data["boundary"]
    # Only what the first run had not measured is measured again.
    assert len(again.measured) == len(fresh.measured) - len(first.measured)
    assert not (tmp_path / "numba-py3.12.partial.json").exists()


def test_another_search_does_not_reuse_the_probes(tmp_path, monkeypatch):
    with pytest.raises(KeyboardInterrupt):
        run_resumable(tmp_path, SavingOracle(stop_after=2), monkeypatch)
    args = parse_args(["--package", "numba", "--python", "3.12", "--with",
                       "numpy==2.0"])
    path, data = bisect_files.load_partial(
        tmp_path, "numba-py3.12", bisect_files.search_key(
            {"package": args.package, "python": args.python,
             "sim": True, "with": list(args.extra)}))
    assert data is None


def test_a_partial_bisect_shows_as_partial_and_a_finished_one_wins():
    finished = {"package": "numba", "python": "3.12", "sim": True,
                "with": [], "releases": ["1", "2"],
                "provenance": {"finished": "a"}}
    partial = dict(finished, releases=["1", "2", "3"], partial=True,
                   provenance={"finished": "b"})
    assert bisect_files.widest_bisects([partial, finished]) == [finished]
    assert bisect_files.widest_bisects([partial]) == [partial]


# 5. Options given twice add up or are refused -------------------------------

def test_report_raw_given_twice_adds_up(data_dir, tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, name in ((first, MEASURED),
                         (second, "py3.11-numba-cuda-0.30.4-sim1.json")):
        folder.mkdir()
        shutil.copy(data_dir / "raw" / name, folder / name)
    report.main(["--raw", str(first), "--raw", str(second), "--out",
                 str(tmp_path / "out"), "--bisect", str(tmp_path / "bisect")])
    assert "2 rows from 2 raw files" in capsys.readouterr().out


@pytest.mark.parametrize("main, argv", [
    (report.main, ["--out", "a", "--out", "b"]),
    (report.main, ["--bisect", "a", "--bisect", "b"]),
])
def test_other_options_given_twice_are_refused_in_one_line(main, argv,
                                                           capsys):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    message = str(exit.value.code) if exit.value.code not in (None, 2) \
        else capsys.readouterr().err
    assert "given twice: give it once" in message
    assert message.strip().count("\n") == 0


@pytest.mark.parametrize("argv", [
    ["--package", "numba", "--python", "3.12", "--from", "0.1.0", "--from",
     "0.2.0"],
    ["--package", "numba", "--python", "3.12", "--python", "3.11"],
    ["--package", "numba", "--python", "3.12", "--metric", "failure",
     "--metric", "launch-time"]])
def test_the_bisect_refuses_options_given_twice(argv):
    with pytest.raises(errors.BadInput, match="given twice"):
        parse_args(argv)


def test_a_flag_given_twice_is_refused_and_an_append_adds_up():
    parser = errors.OneLineArgumentParser(label="x", help_hint="x --help")
    parser.add_argument("--flag", action="store_true")
    parser.add_argument("--raw", action="append")
    assert parser.parse_args(["--raw", "a", "--raw=b"]).raw == ["a", "b"]
    with pytest.raises(errors.BadInput,
                       match="^x: --flag given twice: give it once"):
        parser.parse_args(["--flag", "--raw", "a", "--flag"])


# 6. Package names are canonical wherever a user types one ------------------

@pytest.mark.parametrize("typed", ["Numba-CUDA", "numba_cuda", "NUMBA.cuda"])
def test_bisect_package_names_are_canonical(typed):
    args = parse_args(["--package", typed, "--python", "3.12", "--with",
                       "NumPy==2.0"])
    assert args.package == "numba-cuda" and args.extra == ("numpy==2.0.0",)
    assert bisect_files.bisect_stem({"package": args.package, "python":
                                     args.python, "sim": True}) == \
        "numba-cuda-py3.12"


def test_matrix_specs_and_old_bisect_files_are_canonical(tmp_path):
    assert parse_spec("Numba_CUDA==0.30.4") == ("numba-cuda==0.30.4",)
    for name in ("Numba-CUDA", "numba-cuda"):
        (tmp_path / f"{name}.json").write_text(json.dumps(
            {"package": name, "python": "3.12", "sim": True, "with": [],
             "releases": ["1"], "provenance": {"finished": name}}))
    [one] = bisect_files.load_bisects(tmp_path)
    assert one["package"] == "numba-cuda"


# 7. uv's error chain is one line naming the cause ---------------------------

@pytest.mark.parametrize("output, line", [
    ("uv-unreachable-index.txt",
     "package index http://127.0.0.1:9/simple unreachable (connection "
     "refused)"),
    ("uv-unknown-host.txt",
     "package index http://nosuchhost.invalid/simple unreachable (host not "
     "found)")])
def test_an_unreachable_index_is_one_line(data_dir, output, line):
    text = (data_dir / output).read_text()
    assert len(text) > 250  # uv's chain
    assert install.classify_install_failure(text, SPEC) == ("error", line)


def test_other_install_failures_are_one_line_with_the_last_cause():
    chain = ("error: Failed to build `x==1`\n  cause: The build backend "
             "returned an error\n  cause: Call to `setuptools.build_meta` "
             "failed (exit status: 1)\n")
    kind, reason = install.classify_install_failure(chain, SPEC)
    assert "\n" not in reason and len(reason) < 240
    assert reason.endswith("(Call to `setuptools.build_meta` failed (exit "
                           "status: 1))")


def test_an_unreachable_index_stops_the_ladder():
    from racematrix.install import stops_the_ladder
    assert stops_the_ladder(("error", "package index http://x/simple "
                                      "unreachable (timed out)"), None)


# 8. A raw file left out is named in the tables and the report --------------

@pytest.mark.parametrize("content, reason", [
    ("{not json", "not readable JSON"),
    (json.dumps({"env": "x"}), "is a required property"),
])
def test_a_left_out_file_is_named_in_the_tables_and_report(
        data_dir, tmp_path, content, reason):
    results, _ = results_with_measured_row(data_dir, tmp_path)
    (results / "raw" / "broken.json").write_text(content)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RawResultWarning)
        report.build_report([results / "raw"], results, results / "bisect",
                            "test", plot=False)
    for name in ("failure_rates.md", "REPORT.md"):
        text = (results / name).read_text()
        line = next(line for line in text.splitlines() if "broken.json" in line)
        assert reason in line, name
    assert json.loads((results / "failure_rates.json").read_text())[
        "provenance"]["left_out"][0]["path"].endswith("broken.json")


# 9. What a killed run left is cleared on the next run ----------------------

def test_stale_scratch_folders_are_cleared(tmp_path, monkeypatch):
    dead = subprocess.Popen(["true"])
    dead.wait()
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    stale = tmp_path / f"{fileio.SCRATCH_PREFIX}{dead.pid}-abc"
    stale.mkdir()
    with fileio.scratch_folder() as mine:
        assert Path(mine).name.startswith(
            f"{fileio.SCRATCH_PREFIX}{os.getpid()}-")
        assert fileio.clear_stale() == 1
        assert Path(mine).exists() and not stale.exists()


# 10. A row whose only failures are hangs is `hung` -------------------------

def test_only_hangs_make_a_hung_row_never_the_race(data_dir, tmp_path):
    counts = {"target": 0, "other": 0, "hang": 1, "pass": 77, "skip": 0}
    verdict, reason = decide_verdict(counts)
    assert verdict == "hung" and "1 of 78 test runs hung" in reason
    assert decide_verdict(dict(counts, other=1))[0] == "error"
    assert decide_verdict(dict(counts, target=1))[0] == "reproduced"
    raw = make_raw(SPEC, packages={"numba": "0.60.0"}, python="3.11.9",
                   python_build="CPython", counts=counts)
    assert validate_raw(raw) is None
    rows = [tables.make_row(raw)]
    assert tables.verdict_counts(rows) == "1 hung"
    cells = dict(zip(tables.TABLE_COLUMNS, tables.table_cells(rows[0])))
    assert cells["hung"] == "1" and cells["other"] == "0"
    model = report.build(rows, [raw], {}, tmp_path, tmp_path)
    assert model["verdicts"] == {"hung": 1} and model["grid"]["lines"][0][
        "cells"]["3.11"]["verdict"] == "hung"


def test_the_heatmap_draws_hung_apart(tmp_path):
    pytest.importorskip("matplotlib")
    from racematrix import plots
    counts = {"target": 0, "other": 0, "hang": 2, "pass": 20, "skip": 0}
    raw = make_raw(SPEC, packages={"numba": "0.60.0"}, python="3.11.9",
                   python_build="CPython", counts=counts)
    plots.plot_heatmap(tables.grid([tables.make_row(raw)]),
                      tmp_path / "heat.png")
    assert (tmp_path / "heat.png").stat().st_size > 0


class PricedOracle:
    """A release line whose rows' launch A/B reads slower from 0.9.0 on,
    probed like ReleaseProber; interrupted after ``stop_after`` probes."""

    def __init__(self, stop_after=None):
        self.seen, self.on_probe = {}, lambda: None
        self.measured, self.stop_after = [], stop_after

    def __call__(self, version, min_runs=1, whole=False):
        if version not in self.seen:
            if self.stop_after is not None and \
                    len(self.measured) >= self.stop_after:
                raise KeyboardInterrupt("signal 15")
            self.measured.append(version)
            self.seen[version] = Probe(version, "slower" if VERSIONS.index(
                version) >= 9 else "alike", tries=1)
            self.on_probe()
        return self.seen[version]


def test_an_interrupted_bisect_on_launch_time_resumes_too(
        tmp_path, monkeypatch, caplog):
    caplog.set_level("INFO")
    with pytest.raises(KeyboardInterrupt):
        run_resumable(tmp_path, PricedOracle(stop_after=4), monkeypatch,
                      "--metric", "launch-time")
    partial = tmp_path / "numba-py3.12-launch-time.partial.json"
    saved = json.loads(partial.read_text())
    assert saved["partial"] and saved["metric"] == "launch-time"
    assert len(saved["tested"]) == 4
    assert "(partial" in partial.with_suffix(".md").read_text()
    # The race's search of the same releases does not take these probes,
    # nor one that tries an undecided release another number of times.
    for other in ({"metric": "failure"}, {"tries": saved["tries"] + 1}):
        key = bisect_files.search_key({**saved, **other})
        assert bisect_files.load_partial(tmp_path, partial.name[:-len(
            ".partial.json")], key)[1] is None
    again = PricedOracle()
    data = run_resumable(tmp_path, again, monkeypatch, "--metric",
                         "launch-time")
    assert data["resumed"]["probes_reused"] == 4 and resumed_said(caplog, 4)
    assert data["boundary"]["after"]["version"] == "0.9.0"
    assert not set(again.measured) & {p["version"] for p in saved["tested"]}
    assert "Bisect on launch time" in (
        tmp_path / "numba-py3.12-launch-time.md").read_text()
    assert not partial.exists()


def test_bisect_with_given_twice_adds_up():
    args = parse_args(["--package", "numba-cuda", "--python", "3.12",
                       "--with", "numba==0.61.2", "--with", "NumPy==2.0"])
    assert args.extra == ("numba==0.61.2", "numpy==2.0.0")
    assert parse_args(["--package", "numba", "--python", "3.12"]).extra == ()


def test_the_report_keeps_a_range_apart_from_the_pin_it_resolved_to(
        data_dir):
    record = json.loads((data_dir / "raw" / MEASURED).read_text())
    ranged = dict(record, env="py3.11-numba-lt0.61-ge0.60-sim1",
                  spec=dict(record["spec"],
                            requirements=["numba<0.61,>=0.60"]))
    rows = [tables.make_row(r) for r in (record, ranged)]
    versions = [line["version"] for line in tables.grid(rows)["lines"]]
    assert sorted(versions) == ["0.60.0", "0.60.0 (asked numba<0.61,>=0.60)"]
