import xml.etree.ElementTree as ElementTree

from racematrix import outcomes

from conftest import DATA

RAW = DATA / "raw-cubie"


def cubie_signature():
    from nox.project import load_toml
    from racematrix.suites import load_matrix
    from conftest import PROJECT
    table = load_toml(DATA / "suites-pyproject.toml")["tool"]["racematrix"]
    return load_matrix(table, {}, PROJECT).suites["cubie"].signature


def test_a_client_suites_evidence_from_a_real_junit_file():
    junit = RAW / "junit" / "cubie-0.14.2-numba-cuda-0.24.0-aggressive.xml"
    _, runs = outcomes.parse_junit(junit, cubie_signature())
    seconds = outcomes.summarize(runs, 1)["test_seconds"]
    cases = list(ElementTree.parse(junit).getroot().iter("testcase"))
    assert sum(entry["n"] for entry in seconds.values()) == len(cases)
    for entry in seconds.values():
        assert 0 <= entry["median"] <= entry["max"]
