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


def list_releases(package, timeout=120):
    """Final releases of ``package`` on the configured index, oldest first."""
    try:
        listing = subprocess.run(
            [*_pip_command(), "index", "versions", package,
             "--disable-pip-version-check"],
            capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError) as error:
        raise IndexLookupError(f"cannot list releases of {package}: {error}") from None
    versions = parse_index_versions(listing.stdout)
    if not versions:
        raise IndexLookupError(f"{package} is not on the package index (pip index "
                          f"versions found no release); check the name")
    return versions


def nearest_versions(wanted, versions, count=2):
    """The releases closest to ``wanted`` on either side."""
    wanted = Version(str(wanted))
    below = [v for v in versions if v < wanted][-count:]
    above = [v for v in versions if v > wanted][:count]
    return [str(v) for v in below + above]
