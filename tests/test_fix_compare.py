"""The candidate fixes' comparison (racematrix.fix_compare): its pure
parts on the committed raw rows and on rows changed in one place."""
import copy
import json
from pathlib import Path

import pytest
from packaging.version import Version

from racematrix import fix_compare, report
from racematrix.errors import BadInput
from racematrix.rawresult import load_raw_dirs

RAW = Path(__file__).resolve().parent.parent / "results" / "raw"


@pytest.fixture(scope="module")
def records():
    return [data for _, data in load_raw_dirs([RAW])]


def test_a_quantile_on_a_cut_launch_is_a_bound():
    summary = fix_compare.timed([1.0, 2.0, 10.0, 10.0, 10.0], limit=10.0)
    assert summary["median"] == 10.0 and summary["median_bound"]
    assert summary["past_limit"] == 3
    free = fix_compare.timed([1.0, 2.0, 3.0], limit=10.0)
    assert not free["median_bound"] and not free["p95_bound"]


def test_ratios_over_a_bound_are_no_figure():
    # the reference's p95 is cut at the limit, the release's median is
    reference = fix_compare.timed([2.0, 2.0, 4.0, 4.0], limit=4.0)
    found = fix_compare.timed([3.0, 4.0, 4.0, 4.0], 4.0, reference)
    assert found["median_ratio"] == 1.333 and found["median_ratio_bound"]
    assert found["p95_ratio"] is None


def test_race_counts_sum_every_row_of_a_base(records):
    found = fix_compare.race_by_base(records)
    for patch, bases in found.items():
        for base, entry in bases.items():
            package, version = base.split()
            rows = [r for r in records if r.get("suite", "mwe") == "mwe"
                    and r.get("sim") and r.get("runs")
                    and fix_compare.row_patch(r) == patch
                    and r.get("target") == package
                    and r["packages"].get(package) == version]
            assert entry["runs"] == sum(r["runs"] for r in rows)
            assert entry["failures"] == sum(r["failures"] for r in rows)
            assert entry["pythons"] == sorted(
                {".".join(r["python"].split(".")[:2]) for r in rows})


def test_a_numba_cuda_test_that_changes_outcome_is_named(records):
    rows = [r for r in records if r.get("suite") == "numba-cuda-tests"]
    unpatched = next(r for r in rows if fix_compare.row_patch(r) == "none")
    changed = copy.deepcopy(unpatched)
    changed["patch"] = {"name": "my-fix"}
    changed["spec"]["patch"] = "my-fix"
    name = next(n for n, c in changed["summary"]["tests"].items()
                if c["pass"])
    changed["summary"]["tests"][name] = {**changed["summary"]["tests"][name],
                                         "pass": 0, "other": 1}
    reference, entry = fix_compare.compare([unpatched, changed])[
        "numba_cuda_tests"]
    assert (reference["patch"], entry["patch"]) == (None, "my-fix")
    assert entry["differ"] == [name]
    assert reference["passed"] + reference["failed"] == unpatched["runs"]
    assert reference["skipped"] == unpatched["skips"]


def semantics_row(patch, observed, outcome="pass"):
    return {"suite": "semantics", "python": "3.12.1",
            "spec": {"requirements": ["numba-cuda==0.30.4"]},
            "patch": {"name": patch} if patch else None,
            "summary": {"tests": {
                "test_eval_of_module_constant": {"pass": 1},
                "test_frame_globals_are_the_module_dict": {
                    outcome: 1}},
                "observed": {
                    "test_eval_of_module_constant": json.dumps(observed),
                    "test_frame_globals_are_the_module_dict": "true"}}}


def test_a_semantics_case_differs_by_value_or_outcome():
    reference = semantics_row(None, {"value": [7]})
    same = semantics_row("same-fix", {"value": [7]})
    other_value = semantics_row("value-fix", {"raised": "NameError"})
    other_outcome = semantics_row("outcome-fix", {"value": [7]}, "other")
    found = fix_compare.semantics_differences(
        [reference, same, other_value, other_outcome])
    assert found["same-fix"] == [] and found["none"] == []
    (value,) = found["value-fix"]
    assert value["case"] == "test_eval_of_module_constant"
    assert json.loads(value["observed"]) == {"raised": "NameError"}
    assert json.loads(value["reference_observed"]) == {"value": [7]}
    assert value["specs"] == ["numba-cuda==0.30.4 (py3.12)"]
    (outcome,) = found["outcome-fix"]
    assert (outcome["outcome"], outcome["reference_outcome"]) == \
        ("other", "pass")


def test_the_table_has_a_row_per_patch_and_shows_bounds(records, tmp_path):
    launch_runs = {"3.12": {
        "reference": "0.24.0", "rounds": 2, "limit": 10.0,
        "finished": "2026-12-02T06:00:00+00:00", "environments": {},
        "load_per_round": [1.0, 2.0], "missing": [], "machine": {"cores": 2},
        "rows": [
            {"label": "0.24.0", "release": "0.24.0", "patch": "none"},
            {"label": "0.30.4", "release": "0.30.4", "patch": "none",
             "n": 2, "median": 10.0, "p95": 10.0, "past_limit": 2,
             "median_ratio": 12.5, "p95_ratio": None,
             "median_ratio_bound": True, "p95_ratio_bound": True,
             "error": None}]}}
    data = fix_compare.compare(records)
    shown = fix_compare.summary(data, launch_runs)
    assert list(shown["patches"])[0] == fix_compare.NONE
    assert set(shown["patches"]) == {
        *data["race"], *data["semantics"], *(
            e["patch"] or fix_compare.NONE
            for e in data["cubie"] + data["numba_cuda_tests"])}
    unpatched = shown["patches"][fix_compare.NONE]
    # the reference's own row is no release compared with it
    assert unpatched["launches"] == {"3.12": launch_runs["3.12"]["rows"][1:]}
    worst = unpatched["worst"]["3.12"]
    assert list(worst) == ["median"]  # no p95 ratio: over a bound
    assert worst["median"] == launch_runs["3.12"]["rows"][1]
    (tmp_path / fix_compare.LAUNCH_FILE).write_text(json.dumps(
        {"runs": launch_runs}))
    (tmp_path / "raw").symlink_to(RAW)
    fix_compare.run([], tmp_path, tmp_path, "nox -s fix_compare")
    table = [line for line in (tmp_path / "fix_compare.md").read_text()
             .splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0].strip("| ") for line in table[1:]][
        :len(shown["patches"])] == list(shown["patches"])
    assert ">= 12.50x (0.30.4)" in table[1]


def test_an_environment_not_built_is_named(tmp_path):
    env, why = fix_compare.find_environment(tmp_path, "3.12", "0.30.4",
                                            "launch-scoped")
    assert env is None
    assert "py3.12-numba-cuda-0.30.4+patch.launch-scoped-sim1" in why


def test_a_bad_option_is_bad_input(tmp_path):
    with pytest.raises(BadInput):
        fix_compare.run(["--rounds", "0"], tmp_path, tmp_path, "x")


def test_a_client_carrying_the_simulator_gets_its_own_diff():
    from nox.project import load_toml  # tomllib is 3.11+

    from racematrix.envspec import EnvSpec
    from racematrix.suites import applies, load_patches, patched_packages
    root = RAW.parent.parent
    table = load_toml(root / "pyproject.toml")
    patch = load_patches(table["tool"]["racematrix"], root)["launch-scoped"]
    vendored = EnvSpec("3.12", ("cubie==0.17.0",), True, "cubie")
    assert patched_packages(vendored) == ["numba", "cubie"]
    assert applies(patch, vendored)
    assert patch.diff_for("cubie", "0.17.0").file.name == \
        "launch-scoped-cubie.diff"
    beside = EnvSpec("3.12", ("cubie==0.14.2", "numba-cuda==0.30.4"), True,
                     "cubie")
    assert patched_packages(beside)[0] == "numba-cuda"
    assert patch.diff_for("cubie", "0.14.2") is None
    assert applies(patch, beside)


def test_the_worst_ratio_is_the_largest_with_a_figure():
    def entry(release, median, p95):
        return {"release": release, "median_ratio": median, "p95_ratio": p95}
    entries = [entry("0.26.0", 1.1, None), entry("0.28.2", 1.4, 0.9),
               entry("0.30.4", 0.8, 1.6)]
    found = fix_compare.worst(entries)
    assert (found["median"], found["p95"]) == (entries[1], entries[2])
    assert fix_compare.worst([entry("0.30.4", None, None)]) == {}


def test_a_solve_median_with_skipped_solves_is_no_figure(records):
    rows = [r for r in records if r.get("suite") == "cubie"]
    found = fix_compare.compare(rows)["cubie"]
    assert len(found) == len(rows)
    for r in rows:
        (entry,) = [e for e in found if (e["spec"], e["python"], e["patch"])
                    == (report.spec_text(r), r["python"],
                        r["spec"].get("patch"))]
        skipped = sum(c.get("skip", 0) for name, c in r["summary"][
            "tests"].items() if name.startswith("test_solve_ivp"))
        assert entry["solve"]["skipped"] == skipped
        assert (entry["solve"]["median"] is None) == (skipped > 0)


def test_a_module_skipped_whole_is_one_test_whatever_its_folder(records):
    rows = [r for r in records if r.get("suite") == "numba-cuda-tests"]
    long = [n for r in rows for n in r["summary"]["tests"]
            if ".site-packages." in n]
    for r in rows:
        names = report.outcomes(r)
        assert not any("site-packages." in n for n in names)
        assert {n.rsplit(".", 1)[-1] for n in long
                if n in r["summary"]["tests"]} <= names.keys()
    assert long


def test_a_timed_environment_records_its_build_and_versions(tmp_path):
    import platform
    import sys

    from racematrix.envspec import EnvSpec
    spec = EnvSpec("3", ("numba-cuda==0.30.4",), True, "mwe", None)
    (tmp_path / f"bisect-{spec.env_id}").symlink_to(sys.prefix)
    env, record = fix_compare.find_environment(tmp_path, "3", "0.30.4", None)
    assert env is not None and isinstance(record, dict)
    assert record["python_build"].startswith(platform.python_implementation())
    assert record["python"] == platform.python_version()
    assert "pytest" in record["packages"]
    assert record["patch_sha256"] is None


def test_the_releases_timed_come_from_the_race_bisect(tmp_path):
    """Without --reference/--releases: the bisect's last release with the
    race, and the matrix's numba-cuda releases after it."""
    source = Path(__file__).parent / "data" / "bisect-numba-cuda-py3.12.json"
    (tmp_path / "bisect").mkdir()
    (tmp_path / "bisect" / "numba-cuda-py3.12.json").write_text(
        source.read_text())
    boundary = json.loads(source.read_text())["boundary"]
    reference, releases = fix_compare.bisect_releases(
        str(tmp_path), "3.12", None, None)
    assert reference == boundary["before"]["version"]
    fixed = Version(boundary["after"]["version"])
    assert releases and all(Version(v) >= fixed for v in releases)
    # Given ones win; a missing bisect is one line naming the command.
    assert fix_compare.bisect_releases(str(tmp_path), "3.12", "X", ["Y"]) \
        == ("X", ["Y"])
    # A reference given needs no bisect.
    reference, releases = fix_compare.bisect_releases(
        str(tmp_path), "3.11", reference, None)
    assert releases and all(Version(v) > Version(reference) for v in releases)
    with pytest.raises(BadInput, match="nox -s bisect -- --package numba-cuda"):
        fix_compare.bisect_releases(str(tmp_path), "3.11", None, None)
