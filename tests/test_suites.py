import re
import textwrap

import pytest
from nox.project import load_toml

from racematrix.envspec import EnvSpec
from racematrix.errors import BadInput
from racematrix.suites import load_matrix, mwe_suite

from conftest import PROJECT

SIGNATURE = r"has no attribute 'local'"


def table_with(suites, **top):
    return {"pythons": ["3.11"], "specs": ["numba==0.60.0"], "sim": [1],
            **top, "suites": suites}


def load_suites(table, environ, root):
    return load_matrix(table, environ, root).suites


def config_of(table, name, environ=None, root=PROJECT):
    """Suite ``name``'s lists: the top level's, its own, MATRIX_* over both."""
    return load_matrix(table, {"MATRIX_SUITES": name, **(environ or {})},
                       root).configs[name]


TABLE = {"pythons": ["3.10", "3.11"], "sim": [1, 0], "count": 3,
         "timeout": 60, "specs": ["numba==0.60.0"],
         "suites": {"mwe": {"path": "mwe", "signature": SIGNATURE}}}


@pytest.mark.parametrize("change, words", [
    ({"count": "abc"}, ["count: 'abc'", "is not of type 'integer'"]),
    ({"sim": "1 0"}, ["sim: '1 0'", "is not of type 'array'"]),
    ({"sim": [2]}, ["sim[0]: 2", "is not one of [0, 1]"]),
    ({"count": 0}, ["count: 0", "minimum of 1"]),
    ({"timeout": 0}, ["timeout: 0", "minimum of 1"]),
    ({"pythons": "3.11"}, ["pythons: '3.11'", "is not of type 'array'"]),
    ({"specs": [""]}, ["specs[0]", "non-empty"]),
    ({"specs": [" "]}, ["specs[0]: ' ' does not match", "at least one"]),
    ({"pythons": ["3.1x"]}, ["pythons[0]: '3.1x'", "X.Y"]),
    ({"pythons": ["3.9"]}, ["pythons[0]: '3.9'", "3.10 or newer"]),
    ({"spec": ["numba==0.60.0"]}, ["'spec' was unexpected", "specs"]),
])
def test_bad_config_values_are_one_line_naming_key_value_and_expectation(
        change, words):
    """The whole table is checked once, against its JSON Schema."""
    with pytest.raises(BadInput) as raised:
        load_matrix({**TABLE, **change}, {}, PROJECT)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("[tool.racematrix] in pyproject.toml")
    for word in words:
        assert word in message


def test_the_mwe_suite_of_runs_that_name_none_is_pyprojects():
    """Bisects and the MWE's figures run the suite pyproject declares; a
    table without suites is one line naming them."""
    declared = load_toml(PROJECT / "pyproject.toml")["tool"]["racematrix"][
        "suites"]["mwe"]
    mwe = mwe_suite()
    assert mwe.path == PROJECT / "mwe" and mwe.launch_time
    assert mwe.requirements == tuple(declared["requirements"])
    assert mwe.signature.pattern == declared["signature"]
    assert EnvSpec("3.11", ("numba==0.60.0",), True, "mwe").env_id == \
        "py3.11-numba-0.60.0-sim1"
    with pytest.raises(BadInput, match="'suites' is a required property"):
        load_suites({"specs": ["numba==0.60.0"]}, {}, PROJECT)


def test_the_projects_own_suites_load():
    table = load_toml(PROJECT / "pyproject.toml")["tool"]["racematrix"]
    suites = load_suites(table, {}, PROJECT)
    assert "mwe" in suites
    for name, suite in suites.items():
        assert suite.path.is_dir()
        assert config_of(table, name).specs


def test_a_users_own_suite_in_a_scratch_pyproject(tmp_path):
    (tmp_path / "flaky").mkdir()
    (tmp_path / "flaky" / "test_flaky.py").write_text("def test_x(): pass\n")
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""
        [tool.racematrix]
        pythons = ["3.11", "3.12"]
        sim = [1]
        specs = ["numba==0.60.0"]

        [tool.racematrix.suites.flaky]
        description = "our own flaky test"
        path = "flaky"
        requirements = ["pytest-timeout", "hypothesis>=6"]
        signature = "ValueError: flaky \\\\d+"
        specs = ["numba==0.61.2", "numba-cuda==0.30.4 numba==0.68.1"]
        count = 5
        timeout = 30
        """))
    table = load_toml(tmp_path / "pyproject.toml")["tool"]["racematrix"]
    suites = load_suites(table, {}, tmp_path)
    flaky = suites["flaky"]
    assert flaky.path == (tmp_path / "flaky").resolve()
    assert flaky.requirements == ("pytest-timeout", "hypothesis>=6")
    assert flaky.signature.search("ValueError: flaky 42")
    assert not flaky.signature.search("ValueError: flaky")
    config = config_of(table, "flaky", root=tmp_path)
    # The suite's own keys replace the top level's; the rest is inherited.
    assert config.specs == (("numba==0.61.2",),
                            ("numba-cuda==0.30.4", "numba==0.68.1"))
    assert config.pythons == ("3.11", "3.12")
    assert (config.count, config.timeout, config.sims) == (5, 30, (True,))
    env = EnvSpec("3.11", config.specs[0], True, "flaky")
    assert env.env_id.startswith("flaky-py3.11-")
    # MATRIX_SPECS still replaces a suite's own list for one run.
    assert config_of(table, "flaky", {"MATRIX_SPECS": "numba==0.59.1"},
                     tmp_path).specs == (
        ("numba==0.59.1",),)


def test_matrix_suites_picks_in_the_order_given():
    suites = {"mwe": {"path": "mwe", "signature": SIGNATURE},
              "cubie": {"path": "clients/cubie", "signature": SIGNATURE}}
    table = table_with(suites)
    assert list(load_suites(table, {}, PROJECT)) == ["mwe", "cubie"]
    assert list(load_suites(table, {"MATRIX_SUITES": "cubie"},
                            PROJECT)) == ["cubie"]
    assert list(load_suites(table, {"MATRIX_SUITES": "cubie, mwe cubie"},
                            PROJECT)) == ["cubie", "mwe"]


@pytest.mark.parametrize("value, expected", [
    ("nonsense", "MATRIX_SUITES names unknown 'nonsense': the declared "
                 "ones are cubie, mwe"),
    (" ", "MATRIX_SUITES is set but empty"),
])
def test_matrix_suites_bad_names_are_one_line(value, expected):
    suites = {"mwe": {"path": "mwe", "signature": SIGNATURE},
              "cubie": {"path": "clients/cubie", "signature": SIGNATURE}}
    with pytest.raises(BadInput) as caught:
        load_suites(table_with(suites), {"MATRIX_SUITES": value}, PROJECT)
    assert str(caught.value).startswith(expected)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("suite, words", [
    ({"path": "no/such/folder", "signature": SIGNATURE},
     ["[tool.racematrix.suites.bad].path", "'no/such/folder'",
      "not a folder"]),
    ({"path": "mwe", "signature": "tid=[("},
     ["suites.bad.signature", "'tid=[('", "a Python regular expression"]),
    ({"path": "mwe"}, ["suites.bad", "'signature'"]),
    ({"path": "mwe", "signature": SIGNATURE, "count": 0},
     ["suites.bad.count", "0", "minimum of 1"]),
    ({"path": "mwe", "signature": SIGNATURE, "specs": "numba==0.60.0"},
     ["suites.bad.specs", "is not of type 'array'"]),
    ({"path": "mwe", "signature": SIGNATURE, "specs": ["numba=0.60.0"]},
     ["suite bad", "'numba=0.60.0'"]),
    ({"path": "mwe", "signature": SIGNATURE, "pythons": ["3.9"]},
     ["suites.bad.pythons", "3.9"]),
    ({"path": "mwe", "signature": SIGNATURE, "pathh": "mwe"},
     ["suites.bad", "'pathh'", "known keys"]),
])
def test_a_bad_suite_value_is_one_line_naming_key_and_value(suite, words):
    with pytest.raises(BadInput) as caught:
        load_suites(table_with({"bad": suite}), {}, PROJECT)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("suites", [{}, {"a b": {"path": "mwe",
                                                 "signature": SIGNATURE}}])
def test_an_empty_suites_table_or_a_bad_name_is_refused(suites):
    with pytest.raises(BadInput, match=r"\.suites"):
        load_suites(table_with(suites), {}, PROJECT)


def test_signatures_are_searched_not_matched_whole():
    suite = load_suites(table_with({"s": {"path": "mwe",
                                          "signature": SIGNATURE}}),
                        {}, PROJECT)["s"]
    assert suite.signature.search(
        "AttributeError: tid=[3, 0, 0] ctaid=[0, 0, 0]: module 'numba.cuda' "
        "has no attribute 'local'")
    assert isinstance(suite.signature, re.Pattern)


FLAKY_TEST = '''
import pytest

def test_steady():
    pass

@pytest.mark.parametrize("i", range(3))
def test_flaky(i):
    raise ValueError(f"flaky {i}")
'''


@pytest.mark.e2e
def test_a_users_own_suite_runs_end_to_end_through_nox(tmp_path, e2e_python,
                                                       matrix_envs):
    """A user's suite declared in their pyproject.toml, run by `nox -s
    matrix` with MATRIX_SUITES: its rows carry the suite's name and its own
    signature decides the verdict."""
    import subprocess
    import sys
    from conftest import BUGGY, copy_project, seed_env
    from racematrix.envspec import EnvSpec
    project = tmp_path / "project"
    copy_project(project, "results", "tests", "generated")
    (project / "flaky").mkdir()
    (project / "flaky" / "test_flaky.py").write_text(FLAKY_TEST)
    # The MWE's tools: matrix_run's environment of BUGGY is this suite's
    # too (the install finds what it would install), reused, not rebuilt.
    with open(project / "pyproject.toml", "a") as pyproject:
        pyproject.write(textwrap.dedent(f"""
            [tool.racematrix.suites.flaky]
            path = "flaky"
            requirements = ["numpy", "pytest", "pytest-repeat", "pytest-timeout"]
            signature = "ValueError: flaky \\\\d+"
            specs = ["{BUGGY}"]
            sim = [1]
            """))
    flaky = EnvSpec(e2e_python, (BUGGY,), True, "flaky")
    seed_env(project, f"env({flaky.env_id})", matrix_envs[BUGGY])
    results = tmp_path / "results"
    env = {k: v for k, v in __import__("os").environ.items()
           if not k.startswith("MATRIX_")}
    env.update(MATRIX_SUITES="flaky", MATRIX_PYTHONS=e2e_python,
               RACEMATRIX_RESULTS=str(results))
    done = subprocess.run([sys.executable, "-m", "nox", "-s", "matrix"],
                          cwd=project, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    written = sorted((results / "raw").glob("*.json"))
    assert [path.name for path in written] == [
        f"flaky-py{e2e_python}-numba-0.60.0-sim1.json"]
    import json
    raw = json.loads(written[0].read_text())
    assert raw["suite"] == "flaky" and raw["resolution"]["reused"]
    assert (raw["runs"], raw["failures"], raw["verdict"]) == (
        4, 3, "reproduced")


def proposed_suites():
    table = load_toml(PROJECT / "tests" / "data" / "suites-pyproject.toml")[
        "tool"]["racematrix"]
    return table, load_suites(table, {}, PROJECT)


def test_the_proposed_suite_tables_load():
    table, suites = proposed_suites()
    assert list(suites) == ["mwe", "cubie"]
    assert suites["mwe"].signature.pattern == mwe_suite().signature.pattern
    assert config_of(table, "mwe").specs == tuple(
        (spec,) for spec in table["specs"])
    assert suites["mwe"].smoke is None
    assert suites["cubie"].smoke == table["suites"]["cubie"]["smoke"]
    cubie = config_of(table, "cubie")
    assert cubie.sims == (True,) and len(cubie.specs) == len(
        table["suites"]["cubie"]["specs"])


def test_the_signatures_on_real_messages():
    """Every race failure of the real CuBIE runs is the cubie suite's
    target, and the MWE's signature takes exactly the 'local' ones."""
    from racematrix.outcomes import parse_junit
    _, suites = proposed_suites()
    junit = PROJECT / "tests" / "data" / "raw-cubie" / "junit" / \
        "cubie-0.14.2-numba-cuda-0.24.0-aggressive.xml"
    _, runs = parse_junit(junit, suites["cubie"].signature)
    failed = [run for run in runs if run.outcome != "pass"]
    assert failed
    for run in failed:
        assert suites["cubie"].signature.search(run.message), run.message
        assert bool(suites["mwe"].signature.search(run.message)) == (
            "attribute 'local'" in run.message)
    for text in ("AttributeError: 'FakeCUDAModule' object has no attribute "
                 "'activemask'", "Failed: Timeout (>20.0s) from "
                 "pytest-timeout.",
                 "AttributeError: 'SolveResult' object has no attribute "
                 "'state'"):
        assert not suites["cubie"].signature.search(text)
