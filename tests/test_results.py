import json
import shutil
import warnings

import pytest

from racematrix import fileio, rawresult, tables
from racematrix.envspec import EnvSpec



def counts(target=0, other=0, hang=0, passed=0, skip=0):
    return {"target": target, "other": other, "hang": hang, "pass": passed,
            "skip": skip}


@pytest.mark.parametrize("given, verdict", [
    (dict(counts=counts(target=1, passed=40)), "reproduced"),
    (dict(counts=counts(target=1, other=3)), "reproduced"),
    (dict(counts=counts(passed=22)), "not-reproduced"),
    (dict(counts=counts(passed=21, other=1)), "error"),
    (dict(counts=counts(passed=21, hang=1)), "hung"),
    (dict(counts=counts(passed=20, hang=1, other=1)), "error"),
    (dict(counts=counts(skip=22)), "skipped"),
    (dict(counts=counts()), "error"),
    (dict(counts=counts(), env_error="import failed"), "error"),
    (dict(counts=counts(), skip_reason="no wheel"), "skipped"),
])
def test_decide_verdict(given, verdict):
    assert rawresult.decide_verdict(**given)[0] == verdict


def raw_for(spec, machine="a", finished="2026-01-01T00:00:00+00:00", **kw):
    raw = rawresult.make_raw(spec, packages={"numba": "0.60.0"},
                           python="3.11.7", python_build="CPython 3.11.7",
                           machine={"label": machine, "os": "Linux",
                                    "cores": 2}, **kw)
    raw["finished"] = finished
    return raw


def test_real_raw_files_load_and_merge(data_dir):
    records = rawresult.load_raw_dirs([data_dir / "raw"])
    rows = tables.merge_records(records)
    assert len(rows) == len(list((data_dir / "raw").glob("*.json")))
    for row in rows:
        raw = json.loads((data_dir / "raw" / f"{row['env']}.json").read_text())
        assert (row["runs"], row["failures"], row["verdict"]) == \
            (raw["runs"], raw["failures"], raw["verdict"])


def test_corrupt_raw_file_is_named_and_left_out(tmp_path, data_dir):
    shutil.copytree(data_dir / "raw", tmp_path / "raw")
    (tmp_path / "raw" / "broken.json").write_text('{"env": "x", "runs": ')
    (tmp_path / "raw" / "partial.json").write_text('{"env": "x"}')
    with pytest.warns(rawresult.RawResultWarning) as caught:
        records = rawresult.load_raw_dirs([tmp_path / "raw"])
    named = " ".join(str(w.message) for w in caught)
    assert "broken.json" in named and "partial.json" in named
    assert len(records) == len(list((data_dir / "raw").glob("*.json")))


def test_same_env_from_two_machines_stays_apart():
    spec = EnvSpec("3.11", ("numba==0.60.0",), True)
    a = raw_for(spec, "a", counts=counts(target=2, passed=20))
    b = raw_for(spec, "b", counts=counts(passed=22))
    rows = tables.merge_records([("a.json", a), ("b.json", b)])
    assert [row["env"] for row in rows] == [f"{spec.env_id}@a",
                                            f"{spec.env_id}@b"]


def test_conflicting_copies_keep_the_newer_and_say_so():
    spec = EnvSpec("3.11", ("numba==0.60.0",), True)
    old = raw_for(spec, finished="2026-01-01T00:00:00+00:00",
                  counts=counts(passed=22))
    new = raw_for(spec, finished="2026-02-01T00:00:00+00:00",
                  counts=counts(target=1, passed=21))
    with pytest.warns(rawresult.RawResultWarning, match="conflicting"):
        rows = tables.merge_records([("old.json", old), ("new.json", new)])
    assert len(rows) == 1 and rows[0]["verdict"] == "reproduced"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(tables.merge_records([("x", new), ("y", dict(new))])) == 1


def test_rows_sort_by_python_then_version():
    specs = [EnvSpec("3.12", ("numba==0.59.1",), True),
             EnvSpec("3.10", ("numba==0.60.0",), True),
             EnvSpec("3.10", ("numba==0.58.1",), True)]
    records = []
    for spec in specs:
        raw = raw_for(spec, counts=counts(passed=1))
        raw["python"] = {"3.12": "3.12.1", "3.10": "3.10.13"}[spec.python]
        raw["packages"] = {"numba": spec.requirements[0].split("==")[1]}
        records.append((spec.env_id, raw))
    rows = tables.merge_records(records)
    assert [(r["python"], r["packages"]["numba"]) for r in rows] == [
        ("3.10.13", "0.58.1"), ("3.10.13", "0.60.0"), ("3.12.1", "0.59.1")]


def test_tables_are_regenerated_from_raw_and_stable(tmp_path, data_dir):
    rows, _ = tables.write_tables([data_dir / "raw"], tmp_path, "nox -s matrix")
    first = {name: (tmp_path / name).read_text() for name in
             ("failure_rates.md", "failure_rates.csv", "failure_rates.json")}
    tables.write_tables([data_dir / "raw"], tmp_path, "nox -s matrix")
    assert first == {name: (tmp_path / name).read_text() for name in first}
    table = json.loads(first["failure_rates.json"])
    assert set(table) >= {"generated", "rows"}
    # One column spec: the JSON rows hold the CSV's columns, typed.
    header = first["failure_rates.csv"].splitlines()[0].split(",")
    assert [sorted(row) for row in table["rows"]] == [sorted(header)] * len(rows)
    for row, written in zip(rows, table["rows"]):
        assert (written["env"], written["runs"], written["failure_rate"],
                written["verdict"]) == (row["env"], row["runs"],
                                        row["failure_rate"], row["verdict"])
    markdown_rows = [line for line in first["failure_rates.md"].splitlines()
                     if line.startswith("| mwe | 3.")]
    assert len(markdown_rows) == len(rows)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "raw" / "x.json"
    fileio.write_json_atomic(target, {"a": 1})

    class Boom:
        pass
    with pytest.raises(TypeError):
        fileio.write_json_atomic(target, {"a": Boom()})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in target.parent.iterdir()] == ["x.json"]


def test_never_built_rows_name_what_they_asked_for_and_sort_in_place():
    skipped = rawresult.make_raw(
        EnvSpec("3.10", ("numba-cuda==0.18.1", "numba==0.61.2"), False),
        packages={}, python="", python_build="",
        skip_reason="no CUDA GPU (simulator off needs one)")
    ran = []
    for version in ("0.10.1", "0.30.4"):
        raw = raw_for(EnvSpec("3.10", (f"numba-cuda=={version}",), True),
                      counts=counts(passed=22))
        raw.update(python="3.10.13",
                   packages={"numba-cuda": version, "numba": "0.61.2"})
        ran.append((version, raw))
    rows = tables.merge_records([("s", skipped), *ran])
    assert [tables.target_version(r) for r in rows] == [
        "0.10.1", "0.18.1", "0.30.4"]
    cells = tables.table_cells(rows[1])
    assert cells[1:5] == ("3.10", "numba-cuda", "==0.61.2", "==0.18.1")
    assert cells[-2:] == ("skipped", "no CUDA GPU (simulator off needs one)")


def test_raw_file_with_a_wrong_type_is_named_and_left_out(tmp_path, data_dir):
    """A field of the wrong type (here ``"reason": 5``) is caught by the
    schema: named in a warning, left out, and the tables are still written
    whole from the other files."""
    raw = tmp_path / "raw"
    shutil.copytree(data_dir / "raw", raw)
    bad = json.loads((raw / "py3.11-numba-0.60.0-sim1.json").read_text())
    bad["reason"] = 5
    (raw / "bad.json").write_text(json.dumps(bad))
    with pytest.warns(rawresult.RawResultWarning, match=r"bad\.json.*reason"):
        rows, records = tables.write_tables([raw], tmp_path, "test")
    assert len(records) == len(list((data_dir / "raw").glob("*.json")))
    for name in ("failure_rates.json", "failure_rates.csv", "failure_rates.md"):
        assert (tmp_path / name).exists()
    table = json.loads((tmp_path / "failure_rates.json").read_text())
    assert len(table["rows"]) == len(rows)


@pytest.mark.parametrize("field, value, words", [
    ("runs", "12", "runs"), ("verdict", "maybe", "verdict"),
    ("packages", {"numba": 0.6}, "packages"), ("sim", "1", "sim"),
    ("failures", 99, "exceed runs"), ("launch_seconds", {"n": "3"},
                                      "record.launch_seconds.n"),
    ("load", [0.5], "record.load"),
])
def test_schema_catches_what_the_tables_cannot_use(data_dir, field, value,
                                                   words):
    record = json.loads((data_dir / "raw" / "py3.11-numba-0.60.0-sim1.json")
                        .read_text())
    assert rawresult.validate_raw(record) is None
    problem = rawresult.validate_raw({**record, field: value})
    assert problem and words in problem and "\n" not in problem


def test_tables_refuse_to_be_written_from_nothing(tmp_path, data_dir):
    """Where every input is left out, nothing is written over the tables."""
    out = tmp_path / "out"
    tables.write_tables([data_dir / "raw"], out, "first")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.json").write_text("{not json")
    with pytest.warns(rawresult.RawResultWarning):
        with pytest.raises(rawresult.NoUsableResults, match="nothing was written"):
            tables.write_tables([junk], out, "second")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_rewritten_files_keep_the_usual_mode(tmp_path):
    import os
    old = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.md"
        fileio.write_text_atomic(fresh, "a")
        assert fresh.stat().st_mode & 0o777 == 0o644
        kept = tmp_path / "kept.md"
        kept.write_text("a")
        kept.chmod(0o664)
        fileio.write_text_atomic(kept, "b")
        assert kept.stat().st_mode & 0o777 == 0o664
    finally:
        os.umask(old)


def test_a_row_whose_install_failed_holds_to_the_schema():
    """What the runner writes for an environment no way could build."""
    from racematrix.install import Installation
    from racematrix.provenance import machine_info
    spec = EnvSpec("3.12", ("numba==0.60.0",), True)
    raw = rawresult.make_raw(
        spec, packages={}, python="", python_build="", env_error="boom",
        machine=machine_info(), command="nox -s matrix",
        resolution=Installation(problem=("error", "boom")).resolution)
    assert rawresult.validate_raw(raw) is None


def test_every_schema_is_a_valid_2020_12_schema():
    """The schemas in racematrix/schemas/, against their metaschema (the
    validators do not check this at every start)."""
    import json
    from pathlib import Path

    from jsonschema import Draft202012Validator

    import racematrix.validation as validation
    schemas = sorted(Path(validation.SCHEMAS).rglob("*.schema.json"))
    assert len(schemas) >= 2
    for path in schemas:
        Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_rows_not_run_here_are_derived_from_the_config(tmp_path, data_dir):
    """A configured environment without a recorded row gets a `skipped`
    row in the tables, without any file written for it."""
    ran = EnvSpec("3.11", ("numba==0.60.0",), True)
    never = EnvSpec("3.11", ("numba==0.59.1",), False)
    rows, _ = tables.write_tables([data_dir / "raw"], tmp_path, "t",
                                  configured=[ran, never])
    assert ran.env_id in {r["env"] for r in rows}
    derived = [r for r in rows if r["env"] == never.env_id]
    assert [(r["verdict"], r["runs"]) for r in derived] == [("skipped", 0)]
    assert "no CUDA GPU" in derived[0]["reason"]
    assert tables.not_run([ran], rows) == []
    written = json.loads((tmp_path / "failure_rates.json").read_text())
    assert never.env_id in {r["env"] for r in written["rows"]}
    assert not (data_dir / "raw" / f"{never.env_id}.json").exists()
