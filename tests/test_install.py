import json
import re
import subprocess
from datetime import datetime, timezone

import pytest
from pypi_simple import ProjectPage

from racematrix import index, install
from racematrix.install import Target, Way

TOOLS = ("numpy", "pytest")


def smoke_outputs(data_dir):
    """Real outputs of install.SMOKE: numba-cuda 0.18.1 with its
    bindings, the placeholder 0.0.0 beside numba, 0.18.1 without bindings."""
    return (data_dir / "smoke-outputs.txt").read_text().split("=====\n")


def metadata(data_dir, version):
    return index.parse_core_metadata(
        (data_dir / f"metadata-numba-cuda-{version}.txt").read_text())


def upload_time(data_dir, version):
    data = json.loads((data_dir / "index-numba-cuda.json").read_text())
    packages = ProjectPage.from_json_data(data).packages
    release = next(r for r in index.releases_from_packages(packages)
                   if str(r.version) == version)
    return release.upload_time


@pytest.fixture
def data_index(data_dir, monkeypatch):
    """The package index as the data's trimmed copies have it."""
    def releases(package):
        data = json.loads((data_dir / f"index-{package}.json").read_text())
        return index.releases_from_packages(
            ProjectPage.from_json_data(data).packages)

    def release_metadata(package, version):
        path = data_dir / f"metadata-{package}-{version}.txt"
        return path.read_text() if path.exists() else None
    monkeypatch.setattr(index, "releases", releases)
    monkeypatch.setattr(index, "release_metadata", release_metadata)


@pytest.mark.parametrize("requirements, release", [
    (["numba-cuda==0.18.1", "numba"], ("numba-cuda", "0.18.1")),
    (["cuda-bindings<13", "Numba_Cuda[cu12]==0.18.1"], ("numba-cuda", "0.18.1")),
    (["numba>=0.60", "numba-cuda==0.*"], None),
    (["numba"], None),
])
def test_the_release_is_the_first_exact_pin(data_index, requirements, release):
    assert install.target(requirements).release == release


def test_a_release_is_installed_as_of_a_day_after_its_upload(
        data_dir, data_index):
    found = install.target(["numba-cuda==0.18.1"], TOOLS)
    moment = datetime.strptime(found.exclude_newer, "%Y-%m-%dT%H:%M:%SZ"
                               ).replace(tzinfo=timezone.utc)
    uploaded = upload_time(data_dir, "0.18.1")
    assert 0 <= (moment - uploaded).total_seconds() - 86400 < 1
    assert "numba>=0.60.0" in found.requires_dist and found.problem is None


@pytest.mark.parametrize("extras, wanted", [
    (None, ("cu12",)), ("cu13", ()), ("CU12  cu11", ("cu11", "cu12")),
    ("cu", ()), ("", ()),
])
def test_extras_are_the_declared_ones_named_exactly(
        data_dir, data_index, monkeypatch, extras, wanted):
    monkeypatch.delenv("RACEMATRIX_EXTRAS", raising=False)
    if extras is not None:
        monkeypatch.setenv("RACEMATRIX_EXTRAS", extras)
    assert "test-cu12" in metadata(data_dir, "0.18.1")[0]
    assert install.target(["numba-cuda==0.18.1"]).extras == wanted
    assert install.target(["numba-cuda==0.0.12"]).extras == ()


def test_a_yanked_release_is_a_skip_with_the_index_reason(data_index):
    kind, reason = install.target(["cuda-python==11.8.4"]).problem
    assert kind == "skip"
    assert reason.startswith("cuda-python==11.8.4 is yanked on the index "
                             "(https://")
    assert install.target(["cuda-python==11.8.3"]).problem is None


def test_the_named_way_adds_what_the_next_release_declares(data_index):
    """0.0.12 declares no dependency. Its next releases in the data, 0.0.17.1
    and 0.0.18, have no metadata there and are passed over; of 0.18.1's
    dependencies, those of its extras are not companions."""
    ways = list(install.ways(install.target(["numba-cuda==0.0.12"], TOOLS)))
    assert [w.name for w in ways] == [
        "as-asked", "as-of-upload", "as-of-upload+extras+named"]
    assert ways[-1].requirements == ("numba-cuda==0.0.12", "numba", *TOOLS)
    # A release that declares them already gets nothing added.
    assert [w.name for w in install.ways(Target(
        ("numba-cuda==0.0.12",), TOOLS, ("numba-cuda", "0.0.12"),
        "2024-07-31T13:05:33Z", requires_dist=("numba>=0.59",)))] == [
        "as-asked", "as-of-upload"]


def test_ladder_order_and_what_each_way_passes():
    ways = list(install.ways(Target(
        ("numba-cuda==0.18.1", "numba==0.61.2"), TOOLS, ("numba-cuda", "0.18.1"),
        "2025-08-09T11:30:37Z", ("cu12",), companions=["numba"])))
    assert [w.name for w in ways] == [
        "as-asked", "as-of-upload", "as-of-upload+extras",
        "as-of-upload+extras+named"]
    assert ways[0] == Way("as-asked", ("numba-cuda==0.18.1", "numba==0.61.2",
                                       *TOOLS))
    assert ways[1].requirements == ways[0].requirements
    assert ways[1].exclude_newer == "2025-08-09T11:30:37Z"
    assert ways[2].requirements[0] == "numba-cuda[cu12]==0.18.1"
    # The named way drops the user's pins and adds nothing twice.
    assert ways[3].requirements == ("numba-cuda[cu12]==0.18.1", "numba", *TOOLS)


def test_rungs_that_repeat_an_earlier_one_are_left_out():
    def names(**known):
        return [w.name for w in install.ways(Target(
            ("numba-cuda==0.0.12",), TOOLS, ("numba-cuda", "0.0.12"),
            "2024-07-31T13:05:33Z", **known))]
    assert names(companions=[]) == ["as-asked", "as-of-upload"]
    assert names(companions=["numba"]) == [
        "as-asked", "as-of-upload", "as-of-upload+extras+named"]
    # Without a pinned release, or without an upload time, only as asked.
    assert [w.name for w in install.ways(Target(("numba",), TOOLS))] == [
        "as-asked"]
    assert [w.name for w in install.ways(Target(
        ("numba-cuda==0.0.12",), TOOLS, ("numba-cuda", "0.0.12")))] == [
        "as-asked"]


def test_companions_are_looked_up_only_when_the_named_way_is_reached():
    """The named way asks the index for later releases' metadata: the
    cheaper ways are yielded first, before any lookup."""
    target = Target(("numba-cuda==0.0.12",), TOOLS, ("numba-cuda", "0.0.12"),
                    "2024-07-31T13:05:33Z")
    ways = install.ways(target)
    assert [next(ways).name, next(ways).name] == ["as-asked", "as-of-upload"]
    assert target.companions is None


def test_prereleases_are_disallowed_unless_required(data_dir):
    _, requires = metadata(data_dir, "0.18.1")

    def arguments(requirements, requires_dist=()):
        return install.prerelease_arguments(
            Target(tuple(requirements), requires_dist=tuple(requires_dist)))
    assert arguments(["numba-cuda==0.18.1"], requires) == [
        "--prerelease", "disallow"]
    assert arguments(["numba-cuda==0.8.1"], ["numba>=0.61.1rc1"]) == [
        "--prerelease", "disallow", "--prerelease-package", "numba=allow"]
    assert arguments(["numba-cuda==0.19.2rc0"]) == [
        "--prerelease", "disallow", "--prerelease-package", "numba-cuda=allow"]
    # Excluding a pre-release asks for none.
    assert arguments(["numba-cuda==0.8.1"], ["numba!=0.61.1rc1"]) == [
        "--prerelease", "disallow"]


def test_smoke_outcomes_from_real_output(data_dir):
    ok, placeholder, no_bindings = smoke_outputs(data_dir)
    outcome, reason, found = install.parse_smoke(ok, "numba-cuda")
    assert (outcome, reason) == ("ok", "")
    assert found["distribution"] == "numba-cuda"
    assert install.parse_smoke(placeholder)[0] == "ok"
    outcome, wrong, found = install.parse_smoke(placeholder, "numba-cuda")
    assert outcome == "import-failed" and found["distribution"] == "numba"
    assert "numba.cuda comes from numba" in wrong and "not from numba-cuda" in wrong
    outcome, reason, found = install.parse_smoke(no_bindings)
    assert outcome == "import-failed" and found is None
    assert reason.startswith("ImportError: CUDA bindings not found")
    # Imported, but the launch never said it returned.
    outcome, reason, _ = install.parse_smoke(ok.splitlines()[0] + "\n"
                                             + no_bindings)
    assert outcome == "smoke-failed" and reason.startswith("ImportError")


@pytest.mark.parametrize("problem, stops", [
    (("bad-input", "nosuch is not on the package index"), True),
    (("skip", "no wheel of numba-cuda==0.18.1 for Python 3.14"), True),
    (("skip", "no wheel of numba==0.68.1 for Python 3.14"), False),
    (("error", "install failed: conflict"), False),
])
def test_which_failures_end_the_ladder(problem, stops):
    assert install.stops_the_ladder(problem, ("numba-cuda", "0.18.1")) is stops


def attempt(way, outcome, reason=""):
    return {"way": way, "outcome": outcome, "reason": reason}


def test_giving_up_keeps_the_reason():
    attempts = [attempt("as-asked", "install-failed", "no wheel of numba==0.68.1"),
                attempt("as-of-upload", "install-failed", "no wheel of numba==0.60.0")]
    skip = ("skip", "no wheel of numba==0.68.1 for Python 3.14")
    assert install.give_up(attempts, skip) == skip
    attempts.append(attempt("as-of-upload+extras", "import-failed", "ImportError: x"))
    kind, reason = install.give_up(attempts, skip)
    assert kind == "error" and reason.startswith("ImportError: x")
    assert reason.endswith("(every way failed)")


@pytest.mark.e2e  # builds a real environment from the package index
def test_an_early_release_installs_through_the_ladder(tmp_path, e2e_python):
    from racematrix.envspec import EnvSpec
    from racematrix.install import ProbeEnvironment, read_environment
    env = ProbeEnvironment(tmp_path / "env", e2e_python)
    env.create()
    spec = EnvSpec(e2e_python, ("numba-cuda==0.0.12",), True)
    # An early release that declares no dependency on numba: it imports
    # only once numba is named.
    installation = install.install_resolved(env, spec)
    resolution = installation.resolution
    assert installation.problem is None, resolution["attempts"]
    assert set(resolution) == set(install.UNRESOLVED)
    assert [a["outcome"] for a in resolution["attempts"]][-1] == "ok"
    assert resolution["way"] == "as-of-upload+extras+named"
    assert resolution["exclude_newer"].startswith("2024-07-")
    assert resolution["implementation"]["distribution"] == "numba-cuda"
    # Every package, named or not, is as the index had it on the day
    # (nothing newer left behind by an earlier way), and no pre-release.
    packages = installation.environment["packages"]
    assert packages == read_environment(env)["packages"]
    for name, version in packages.items():
        release = index.release_info(name, version)  # None: a pre-release
        assert release.upload_time.strftime("%Y-%m-%dT%H:%M:%SZ") <= \
            resolution["exclude_newer"], (name, version)
    # A second install finds it intact and reuses it.
    again = install.install_resolved(env, spec)
    assert again.resolution.pop("reused") and again.resolution.pop(
        "installed_at") and again.resolution == resolution
    assert resolution["installer"] == "uv"
    assert again.environment["packages"] == packages


@pytest.mark.e2e  # a real environment, as nox's virtualenv backend makes it
def test_under_nox_defaults_pip_installs_exactly_the_pins(tmp_path, e2e_python):
    """The pins uv resolved, installed by the environment's own pip; what
    they do not name (here a package left from before) goes."""
    from nox.virtualenv import VirtualEnv

    from racematrix.envspec import EnvSpec
    from racematrix.install import read_environment
    from racematrix.suites import Suite
    env = VirtualEnv(str(tmp_path / "env"), interpreter=e2e_python,
                     venv_backend="virtualenv")
    env.create()
    python = f"{env.bin}/python"
    subprocess.run(["uv", "pip", "install", "-q", "--python", python, "six"],
                   check=True)
    spec = EnvSpec(e2e_python, ("packaging==24.0",), True)
    installation = install.install_resolved(env, spec, suite=Suite(
        "tiny", tmp_path, re.compile("x"), smoke="import packaging"))
    assert installation.problem is None, installation.resolution
    assert installation.resolution["installer"] == "pip"
    pins = subprocess.run(
        ["uv", "pip", "compile", "-q", "--no-header", "--no-annotate",
         "--python", python, "-"],
        input="\n".join(installation.resolution["requirements"]),
        capture_output=True, text=True, check=True).stdout.split()
    packages = read_environment(env)["packages"]
    assert {n: v for n, v in packages.items() if n not in install.SEEDS} == \
        dict(pin.split("==") for pin in pins)
    assert "pip" in packages and packages["packaging"] == "24.0"

