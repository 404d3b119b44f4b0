import json

import pytest
from packaging.version import Version
from pypi_simple import ProjectPage

from racematrix import index


def page(data_dir, name):
    """A project page as the index's JSON API served it (trimmed copy)."""
    data = json.loads((data_dir / f"index-{name}.json").read_text())
    return ProjectPage.from_json_data(data, f"https://pypi.org/simple/{name}/")


def releases(data_dir, name):
    return index.releases_from_packages(page(data_dir, name).packages)


def test_final_releases_oldest_first_without_prereleases(data_dir):
    versions = [str(r.version) for r in releases(data_dir, "numba-cuda")]
    assert versions == sorted(versions, key=Version)
    assert "0.19.2rc0" not in versions and "0.19.2" in versions
    # 0.0.17.1 is a four-part final release, not a pre-release.
    assert "0.0.17.1" in versions
    assert len(versions) == len(set(versions))


def test_upload_time_is_the_earliest_file_of_a_release(data_dir):
    raw = json.loads((data_dir / "index-numba-cuda.json").read_text())
    wanted = min(f["upload-time"] for f in raw["files"]
                 if f["filename"].split("-")[1] == "0.21.1")
    release = next(r for r in releases(data_dir, "numba-cuda")
                   if str(r.version) == "0.21.1")
    assert len(release.files) > 2
    assert release.upload_time.strftime("%Y-%m-%dT%H:%M:%S") == wanted[:19]
    assert release.upload_time.utcoffset().total_seconds() == 0


def test_yanked_releases_are_recognised_with_their_reason(data_dir):
    found = {str(r.version): r for r in releases(data_dir, "cuda-python")}
    assert not found["11.8.3"].yanked
    assert found["11.8.4"].yanked and found["11.8.5"].yanked
    assert any((f.yanked_reason or "").startswith("https://")
               for f in found["11.8.4"].files)


@pytest.mark.parametrize("python, admitted, excluded", [
    ("3.10", ["0.55.2", "0.61.2"], ["0.54.1"]),
    ("3.12", ["0.61.2"], ["0.54.1", "0.55.2"]),
    ("3.9", ["0.54.1", "0.55.2"], []),
])
def test_requires_python_is_judged_for_the_target_python(data_dir, python,
                                                         admitted, excluded):
    found = {str(r.version): r for r in releases(data_dir, "numba")}
    for version in admitted:
        assert found[version].admits(python), version
    for version in excluded:
        assert not found[version].admits(python), version


def test_files_without_requires_python_admit_any(data_dir):
    found = {str(r.version): r for r in releases(data_dir, "numba-cuda")}
    assert {f.requires_python for f in found["0.0.0"].files} == {None}
    assert found["0.0.0"].admits("3.14")


@pytest.mark.parametrize("environ, url", [
    ({}, "https://pypi.org/simple/"),
    ({"PIP_INDEX_URL": "https://pip.example/simple"}, "https://pip.example/simple/"),
    ({"PIP_INDEX_URL": "https://pip.example/simple/",
      "UV_INDEX_URL": "https://uv.example/simple/"}, "https://uv.example/simple/"),
    ({"PIP_INDEX_URL": "https://pip.example/simple/",
      "UV_INDEX_URL": "https://uv.example/simple/",
      "UV_DEFAULT_INDEX": "https://default.example/simple"},
     "https://default.example/simple/"),
    ({"UV_DEFAULT_INDEX": "  "}, "https://pypi.org/simple/"),
])
def test_index_url_follows_uv_then_pip(environ, url):
    assert index.index_url(environ) == url


def test_core_metadata_extras_and_requirements(data_dir):
    extras, requires = index.parse_core_metadata(
        (data_dir / "metadata-numba-cuda-0.18.1.txt").read_text())
    assert extras[:2] == ["cu11", "cu12"] and "test-cu12" in extras
    assert "numba>=0.60.0" in requires
    extras, requires = index.parse_core_metadata(
        (data_dir / "metadata-numba-cuda-0.0.12.txt").read_text())
    assert extras == [] and requires == []


def test_nearest_versions():
    versions = [Version(v) for v in ("0.23.0", "0.24.0", "0.26.0", "0.27.0",
                                     "0.28.0")]
    assert index.nearest_versions("0.25.0", versions) == [
        "0.23.0", "0.24.0", "0.26.0", "0.27.0"]


@pytest.mark.e2e  # asks the package index
def test_unknown_project_is_one_line():
    with pytest.raises(index.IndexLookupError, match="not on the package index"):
        index.list_releases("no-such-project-racematrix-xyz")
