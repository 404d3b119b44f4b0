"""Releases on the package index uv uses, read with pypi-simple (PEP 691
pages, PEP 700 upload times, PEP 658 metadata)."""
from __future__ import annotations

import contextlib
import functools
import io
import os
import re
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from packaging.metadata import parse_email
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

if TYPE_CHECKING:  # imported where used: pypi_simple takes 0.4 s to import
    from pypi_simple import DistributionPackage

# The variables uv and pip read, in uv's order of precedence.
INDEX_VARIABLES = ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL")
TIMEOUT = 120


class IndexLookupError(LookupError):
    """The index could not be asked, or does not have the package."""


def index_url(environ: Mapping[str, str] = os.environ) -> str:
    found = [environ.get(name, "").strip() for name in INDEX_VARIABLES]
    return next((v.rstrip("/") + "/" for v in found if v), "https://pypi.org/simple/")


@dataclass
class Release:
    """One final release and its files on the index."""
    version: Version
    files: list[DistributionPackage]

    @property
    def upload_time(self) -> datetime | None:
        return min((f.upload_time for f in self.files if f.upload_time),
                   default=None)

    @property
    def yanked(self) -> bool:
        return all(f.is_yanked for f in self.files)

    def admits(self, python: str) -> bool:
        """Whether a file's Requires-Python admits Python ``python``."""
        for file in self.files:
            try:
                if file.requires_python is None or SpecifierSet(
                        file.requires_python).contains(python, prereleases=True):
                    return True
            except InvalidSpecifier:
                return True  # installers ignore a malformed bound too
        return False


def releases_from_packages(packages: Iterable[DistributionPackage]
                           ) -> list[Release]:
    """Final releases (no pre- or dev-releases), oldest first."""
    found: dict[Version, list[DistributionPackage]] = {}
    for package in packages:
        with contextlib.suppress(InvalidVersion):
            if not (version := Version(package.version or "")).is_prerelease:
                found.setdefault(version, []).append(package)
    return [Release(version, found[version]) for version in sorted(found)]


@functools.lru_cache(maxsize=64)
def releases(package: str) -> list[Release]:
    """The final releases of ``package`` on the configured index (cached)."""
    package, endpoint = canonicalize_name(package), index_url()
    import requests
    from pypi_simple import NoSuchProjectError, PyPISimple
    try:
        with PyPISimple(endpoint=endpoint) as client:
            page = client.get_project_page(package, timeout=TIMEOUT)
    except NoSuchProjectError:
        raise IndexLookupError(f"{package} is not on the package index "
                               f"({endpoint}); check the name") from None
    except (requests.RequestException, ValueError) as error:
        raise IndexLookupError(f"cannot read {package} from the package index "
                               f"{endpoint}: {network_cause(str(error))}") \
            from None
    return releases_from_packages(page.packages)


def release_info(package: str, version: str) -> Release | None:
    return next((r for r in releases(package) if r.version == Version(version)),
                None)


def list_releases(package: str, python: str | None = None) -> list[Version]:
    """Final releases, oldest first; with ``python``, those that admit it."""
    found = [r.version for r in releases(package)
             if python is None or r.admits(python)]
    if not found:
        raise IndexLookupError(
            f"{package} has no final release on the package index "
            f"({index_url()}){f' for Python {python}' if python else ''}; "
            f"check the name{', or try another Python' if python else ''}")
    return found


def nearest_versions(wanted: str | Version, versions: Iterable[Version]
                     ) -> list[str]:
    """The two releases closest to ``wanted`` on either side."""
    wanted = Version(str(wanted))
    return [str(v) for v in [v for v in versions if v < wanted][-2:]
            + [v for v in versions if v > wanted][:2]]


def parse_core_metadata(text: str) -> tuple[list[str], list[str]]:
    """(Provides-Extra, Requires-Dist) of a release's core metadata."""
    raw, _ = parse_email(text)
    return list(raw.get("provides_extra", [])), list(raw.get("requires_dist", []))


@functools.lru_cache(maxsize=256)
def release_metadata(package: str, version: str) -> str | None:
    """A release's PEP 658 metadata, else its smallest wheel's; None: no wheel."""
    import requests
    from pypi_simple import PyPISimple
    release = release_info(package, version)
    wheels = [f for f in release.files if f.package_type == "wheel"] \
        if release else []
    if not wheels:
        return None
    wheel = min(wheels, key=lambda p: (not p.has_metadata, p.size or 0))
    try:
        if wheel.has_metadata:
            with PyPISimple(endpoint=index_url()) as client:
                return client.get_package_metadata(wheel, timeout=TIMEOUT)
        response = requests.get(wheel.url, timeout=TIMEOUT)
        response.raise_for_status()
    except requests.RequestException as error:
        raise IndexLookupError(f"cannot fetch the metadata of {package} "
                               f"{version}: {network_cause(str(error))}") \
            from None
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        name = next(n for n in archive.namelist()
                    if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        return archive.read(name).decode("utf-8", errors="replace")


# The words of a network failure, as uv, requests and the OS put them.
NETWORK_CAUSES = {
    r"(?i)connection refused": "connection refused",
    r"(?i)dns error|name or service not known|name resolution|nodename nor "
    r"servname": "host not found",
    r"(?i)timed? ?out": "timed out",
    r"(?i)network is unreachable|no route to host": "no route to the host",
    r"(?i)connection reset": "connection reset",
    r"certificate|SSL|TLS": "TLS error",
}


def network_cause(text: str) -> str:
    """What a failed request's error chain comes down to, in a few words."""
    lines = [line.strip().removeprefix("cause:").strip()
             for line in text.splitlines() if line.strip()]
    return next((c for p, c in NETWORK_CAUSES.items() if re.search(p, text)),
                (lines[-1] if lines else "no reason given")[:120])

