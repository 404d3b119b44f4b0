import pytest

from racematrix import runner
from racematrix.envspec import EnvSpec
from racematrix.index import nearest_versions, parse_index_versions


def install_outputs(data_dir):
    return (data_dir / "uv-install-failures.txt").read_text().split("=====\n")


def test_no_wheel_is_a_skip_with_the_reason(data_dir):
    no_wheel = install_outputs(data_dir)[0]
    kind, reason = runner.classify_install_failure(
        no_wheel, EnvSpec("3.12", ("numba==0.56.4",), True))
    assert (kind, reason) == ("skip", "no wheel of numba==0.56.4 for Python 3.12")


def test_unknown_package_is_an_error_naming_it(data_dir):
    kind, reason = runner.classify_install_failure(
        install_outputs(data_dir)[2], EnvSpec("3.12", ("nosuchpkgxyz",), True))
    assert kind == "bad-input"
    assert "nosuchpkgxyz is not on the package index" in reason


def test_conflicting_pins_are_an_error_with_uvs_cause(data_dir):
    kind, reason = runner.classify_install_failure(
        install_outputs(data_dir)[3],
        EnvSpec("3.12", ("numba-cuda==0.0.17", "numba==0.57.1"), True))
    assert kind == "error"
    assert "numba-cuda==0.0.17 depends on numba>=0.59.1" in reason
    assert "\n" not in reason


def test_pip_index_listing_is_parsed_without_prereleases(data_dir):
    versions = parse_index_versions(
        (data_dir / "pip-index-versions-numba-cuda.txt").read_text())
    assert versions == sorted(versions)
    assert all(not v.is_prerelease for v in versions)
    assert str(versions[-1]) == "0.30.4"
    assert nearest_versions("0.25.0", versions) == ["0.23.0", "0.24.0",
                                                    "0.26.0", "0.27.0"]


def test_first_error_line_finds_the_real_exception(data_dir):
    lines = (data_dir / "pytest-output-import-error.txt").read_text().splitlines()
    assert runner.first_error_line(lines) == (
        "AttributeError: module 'numba.cuda.types' has no attribute 'NPDatetime'")


@pytest.mark.parametrize("posargs, count, rest", [
    ([], 1, []), (["--count", "200"], 200, []),
    (["-x", "--count=5", "-k", "trigger"], 5, ["-x", "-k", "trigger"]),
])
def test_split_count(posargs, count, rest):
    assert runner.split_count(posargs, 1) == (count, rest)


@pytest.mark.parametrize("posargs", [["--count", "x"], ["--count=0"]])
def test_split_count_rejects_bad_counts(posargs):
    with pytest.raises(runner.BadInput, match="--count needs a positive"):
        runner.split_count(posargs, 1)


def test_session_command_names_the_overrides():
    command = runner.session_command(
        "matrix-3.11(numba==0.60.0, sim1)", ["--count", "5"],
        {"MATRIX_SPECS": "numba==0.60.0", "PATH": "/bin"})
    assert command == ("MATRIX_SPECS=numba==0.60.0 nox -s "
                       "'matrix-3.11(numba==0.60.0, sim1)' -- --count 5")
    assert runner.session_command("bisect", ["--with", "numba==0.61.2 x<13"],
                                  {}) == "nox -s bisect -- --with 'numba==0.61.2 x<13'"


@pytest.mark.e2e  # asks the package index which releases exist
def test_pips_wording_is_told_apart_with_the_index(data_dir):
    no_wheel, unknown, _ = (data_dir / "pip-install-failures.txt").read_text() \
        .split("=====\n")
    assert runner.classify_install_failure(
        no_wheel, EnvSpec("3.12", ("numba==0.56.4",), True)) == (
        "skip", "no wheel of numba==0.56.4 for Python 3.12")
    kind, reason = runner.classify_install_failure(
        unknown, EnvSpec("3.12", ("numba==0.60.9",), True))
    assert kind == "bad-input"
    assert reason.startswith("numba==0.60.9 is not on the package index; "
                             "nearest on the index: 0.59.1, 0.60.0")


def test_environment_of_runs_caches_bytecode(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    environ = runner.venv_environ(tmp_path / "bin", {"NUMBA_ENABLE_CUDASIM": "1"})
    assert "PYTHONDONTWRITEBYTECODE" not in environ
    assert environ["PATH"].startswith(str(tmp_path / "bin"))
    assert environ["VIRTUAL_ENV"] == str(tmp_path)
    assert environ["NUMBA_ENABLE_CUDASIM"] == "1"
