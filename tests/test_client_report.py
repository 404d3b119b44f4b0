import xml.etree.ElementTree as ElementTree

from racematrix import outcomes
from racematrix.outcomes import race_sites, seconds_per_test

from conftest import DATA

RAW = DATA / "raw-cubie"


def cubie_signature():
    from nox.project import load_toml
    from racematrix.suites import load_matrix
    from conftest import PROJECT
    table = load_toml(DATA / "suites-pyproject.toml")["tool"]["racematrix"]
    return load_matrix(table, {}, PROJECT).suites["cubie"].signature


def test_race_sites_from_a_real_junit_file(tmp_path):
    junit = RAW / "junit" / "cubie-0.14.2-numba-cuda-0.24.0-aggressive.xml"
    _, runs = outcomes.parse_junit(junit, cubie_signature())
    sites = race_sites(runs)
    failing = [run for run in runs if run.outcome == outcomes.Outcome.TARGET]
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
    seconds = seconds_per_test(outcomes.parse_junit(junit)[1])
    cases = list(ElementTree.parse(junit).getroot().iter("testcase"))
    assert sum(entry["n"] for entry in seconds.values()) == len(cases)
    for entry in seconds.values():
        assert 0 <= entry["median"] <= entry["max"]


def test_suite_evidence_from_a_real_junit_file():
    junit = RAW / "junit" / "cubie-0.14.2-numba-cuda-0.24.0-aggressive.xml"
    _, runs = outcomes.parse_junit(junit, cubie_signature())
    evidence = outcomes.suite_evidence(runs)
    assert evidence["race_sites"] == race_sites(runs)
    assert evidence["test_seconds"] == seconds_per_test(runs)
