"""Releases on the package index the user's pip configuration points at."""
import importlib.util
import shutil
import subprocess
import sys

from packaging.version import InvalidVersion, Version


class IndexLookupError(LookupError):
    """The index could not be asked, or does not have the package."""


def _pip_command():
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    uvx = shutil.which("uvx")
    if uvx:
        return [uvx, "pip"]
    raise IndexLookupError("cannot list releases: neither pip nor uvx is "
                           "available; install one of them")


def parse_index_versions(output):
    """Versions from ``pip index versions`` output, oldest first, without
    pre-releases and development releases."""
    for line in output.splitlines():
        if line.startswith("Available versions:"):
            found = set()
            for text in line.split(":", 1)[1].split(","):
                try:
                    version = Version(text.strip())
                except InvalidVersion:
                    continue
                if not (version.is_prerelease or version.is_devrelease):
                    found.add(version)
            return sorted(found)
    return []


def list_releases(package, python=None, timeout=120):
    """Final releases of ``package`` on the configured index, oldest first:
    every one, or with ``python`` ("3.10") those whose Requires-Python
    admits that Python. pip would otherwise judge by the Python it runs on,
    which is nox's, not the environment's."""
    admits = ["--python-version", python] if python else \
        ["--ignore-requires-python"]
    try:
        listing = subprocess.run(
            [*_pip_command(), "index", "versions", package, *admits,
             "--disable-pip-version-check"],
            capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as error:
        raise IndexLookupError(f"cannot list releases of {package}: {error}") from None
    versions = parse_index_versions(listing.stdout)
    if not versions and python:
        raise IndexLookupError(f"no release of {package} on the package index "
                               f"admits Python {python}; check the name, or "
                               f"try another Python")
    if not versions:
        raise IndexLookupError(f"{package} is not on the package index (pip "
                               f"index versions found no release); check the "
                               f"name")
    return versions


def nearest_versions(wanted, versions, count=2):
    """The releases closest to ``wanted`` on either side."""
    wanted = Version(str(wanted))
    below = [v for v in versions if v < wanted][-count:]
    above = [v for v in versions if v > wanted][:count]
    return [str(v) for v in below + above]
