import json
import xml.etree.ElementTree as ElementTree

import pytest

from racematrix import client_report, outcomes, suite_evidence
from racematrix.client_report import cubie_section
from racematrix.suite_evidence import race_sites, seconds_per_test
from racematrix.tables import make_row

from conftest import DATA

RAW = DATA / "raw-cubie"


def cubie_signature():
    from nox.project import load_toml
    from racematrix.suites import load_suites
    from conftest import PROJECT
    table = load_toml(DATA / "suites-pyproject.toml")["tool"]["racematrix"]
    return load_suites(table, {}, PROJECT)["cubie"].signature


def records(folder=RAW):
    return [json.loads(path.read_text())
            for path in sorted(folder.glob("*.json"))]


@pytest.fixture
def cubie_records():
    found = records()
    assert found, f"no raw records in {RAW}"
    return found


def test_section_names_every_release_with_its_verdict(cubie_records):
    lines = cubie_section([make_row(r) for r in cubie_records],
                          cubie_records)
    text = "\n".join(lines)
    assert lines[0] == "## CuBIE's own code"
    table = [line for line in lines if line.startswith("| ") and
             not line.startswith("| cubie")]
    assert len(table) == len(cubie_records)
    for record in cubie_records:
        label = client_report._label(record)
        rate = client_report._rate(record)
        sentence = ("It fails with the race with" if record["verdict"] ==
                    "reproduced" else "It does not fail with"
                    if record["verdict"] == "not-reproduced" else
                    "No verdict for")
        line = next(line for line in lines if line.startswith(sentence))
        assert f"{label}: {rate}" in line or label in line
        assert any(f"| {record['runs']} | {rate} | {record['other_errors']} "
                   f"| {record['hangs']} | {record['skips']} |" in row
                   for row in table)
    assert "\n" not in "".join(lines)
    assert "Settings: switch_interval=" in text


def test_section_answers_whether_it_is_the_mwes_race(cubie_records):
    failing = [r for r in cubie_records if r["verdict"] == "reproduced"]
    text = "\n".join(cubie_section([], cubie_records))
    total = sum(site["count"] for r in failing
                for site in r["summary"]["race_sites"])
    if not total:
        assert "cannot be said" in text
        return
    assert f"Of {total} race failures in CuBIE's code" in text
    sites = {site["raised_at"] for r in failing
             for site in r["summary"]["race_sites"]}
    for site in sites:
        assert f"`{site}`" in text
    if all(site.endswith("buffer_registry.py") for site in
           (s.rsplit(":", 1)[0] for s in sites)):
        assert "Yes, this is the MWE's race" in text


def test_no_cubie_records_no_section():
    mwe_only = records(DATA / "raw")
    assert mwe_only
    assert cubie_section([make_row(r) for r in mwe_only], mwe_only) == []


def test_race_sites_from_a_real_junit_file(tmp_path):
    junit = RAW / "junit" / "cubie-0.14.2-numba-cuda-0.24.0-aggressive.xml"
    _, runs = outcomes.parse_junit(junit, cubie_signature())
    sites = race_sites(runs)
    failing = [run for run in runs if run.outcome == outcomes.TARGET]
    assert sum(site["count"] for site in sites) == len(failing) > 0
    root = ElementTree.parse(junit).getroot()
    recorded = [prop.get("value") for prop in root.iter("property")
                if prop.get("name") == "raised_at"]
    assert sorted(site["raised_at"] for site in sites
                  for _ in range(site["count"])) == sorted(recorded)
    for site in sites:
        assert site["mwe_signature"] == (site["attribute"] == "local")


def test_seconds_per_test_from_a_real_junit_file():
    junit = RAW / "junit" / "cubie-0.14.2-numba-cuda-0.24.0-aggressive.xml"
    seconds = seconds_per_test(junit)
    cases = list(ElementTree.parse(junit).getroot().iter("testcase"))
    assert sum(entry["n"] for entry in seconds.values()) == len(cases)
    for entry in seconds.values():
        assert 0 <= entry["median"] <= entry["max"]


def test_suite_evidence_from_a_real_junit_file():
    junit = RAW / "junit" / "cubie-0.14.2-numba-cuda-0.24.0-aggressive.xml"
    _, runs = outcomes.parse_junit(junit, cubie_signature())
    evidence = suite_evidence.suite_evidence(runs, junit)
    assert evidence["race_sites"] == race_sites(runs)
    assert evidence["test_seconds"] == seconds_per_test(junit)
