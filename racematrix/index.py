"""Releases on the package index that uv and pip are configured to use,
from the index's JSON simple API (PEP 691, upload times from PEP 700),
read with ``pypi-simple``."""
import functools
import io
import os
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime

from packaging.metadata import parse_email
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

DEFAULT_INDEX = "https://pypi.org/simple/"
# The variables uv and pip read, in the order uv gives them precedence.
INDEX_VARIABLES = ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL")


class IndexLookupError(LookupError):
    """The index could not be asked, or does not have the package."""


def index_url(environ=os.environ):
    """The simple-API root the installer uses: ``UV_DEFAULT_INDEX``, then
    ``UV_INDEX_URL``, then ``PIP_INDEX_URL``, else PyPI."""
    for name in INDEX_VARIABLES:
        value = environ.get(name, "").strip()
        if value:
            return value.rstrip("/") + "/"
    return DEFAULT_INDEX


@dataclass
class Release:
    """One final release as the index lists it: its files' earliest upload
    time, whether every file is yanked, and the Requires-Python of each
    file (None where a file gives none)."""
    version: Version
    upload_time: datetime | None = None
    yanked: bool = True
    yanked_reason: str | None = None
    requires_python: set = field(default_factory=set)
    files: list = field(default_factory=list)

    def admits(self, python):
        """Whether some file of this release may be installed on Python
        ``python`` ("3.12") by its Requires-Python."""
        for text in self.requires_python or {None}:
            if text is None:
                return True
            try:
                if SpecifierSet(text).contains(python, prereleases=True):
                    return True
            except InvalidSpecifier:
                return True  # installers ignore a malformed bound too
        return False


def releases_from_packages(packages):
    """Final releases (no pre-, dev- or unparseable versions) from a project
    page's ``DistributionPackage`` list, oldest first."""
    found = {}
    for package in packages:
        try:
            version = Version(package.version or "")
        except InvalidVersion:
            continue
        if version.is_prerelease or version.is_devrelease:
            continue
        release = found.setdefault(version, Release(version))
        release.files.append(package.filename)
        if package.upload_time is not None and (
                release.upload_time is None
                or package.upload_time < release.upload_time):
            release.upload_time = package.upload_time
        if not package.is_yanked:
            release.yanked = False
        else:
            release.yanked_reason = release.yanked_reason or package.yanked_reason
        release.requires_python.add(package.requires_python)
    return [found[v] for v in sorted(found)]


def project_page(package, timeout=60):
    """The project's page on the configured index (JSON API preferred)."""
    return _cached_page(canonicalize_name(package), index_url(), timeout)


@functools.lru_cache(maxsize=64)
def _cached_page(name, endpoint, timeout):
    import requests
    from pypi_simple import NoSuchProjectError, PyPISimple
    try:
        with PyPISimple(endpoint=endpoint) as client:
            return client.get_project_page(name, timeout=timeout)
    except NoSuchProjectError:
        raise IndexLookupError(f"{name} is not on the package index "
                               f"({endpoint}); check the name") from None
    except requests.ConnectionError as error:
        raise IndexLookupError(f"package index {endpoint} unreachable "
                               f"({network_cause(str(error))})") from None
    except (requests.RequestException, ValueError) as error:
        raise IndexLookupError(f"cannot read {name} from the package index "
                               f"{endpoint}: {network_cause(str(error))}") \
            from None


def project_releases(package):
    """Every final release of ``package``, oldest first, as ``Release``."""
    releases = releases_from_packages(project_page(package).packages)
    if not releases:
        raise IndexLookupError(f"{package} has no final release on the "
                               f"package index ({index_url()}); check the name")
    return releases


def release_info(package, version):
    """The ``Release`` of ``package`` ``version``, or None if the index
    lists no such final release."""
    wanted = Version(str(version))
    for release in project_releases(package):
        if release.version == wanted:
            return release
    return None


def list_releases(package, python=None):
    """Final releases of ``package`` on the configured index, oldest first:
    every one, or with ``python`` ("3.10") those whose Requires-Python
    admits that Python (the target's, not the Python running this)."""
    releases = project_releases(package)
    if python is None:
        return [r.version for r in releases]
    admitted = [r.version for r in releases if r.admits(python)]
    if not admitted:
        raise IndexLookupError(f"no release of {package} on the package index "
                               f"admits Python {python}; check the name, or "
                               f"try another Python")
    return admitted


def nearest_versions(wanted, versions, count=2):
    """The releases closest to ``wanted`` on either side."""
    wanted = Version(str(wanted))
    below = [v for v in versions if v < wanted][-count:]
    above = [v for v in versions if v > wanted][:count]
    return [str(v) for v in below + above]


def parse_core_metadata(text):
    """(extras, requirements) a release declares, from its core metadata
    (a wheel's METADATA): ``Provides-Extra`` and ``Requires-Dist``."""
    raw, _ = parse_email(text)
    return list(raw.get("provides_extra", [])), list(raw.get("requires_dist", []))


@functools.lru_cache(maxsize=256)
def release_metadata(package, version, timeout=120):
    """The core metadata text of one release: the PEP 658 metadata file
    where the index serves it, else the METADATA of its smallest wheel.
    None where the release has no wheel."""
    import requests
    from pypi_simple import PyPISimple
    wanted = Version(str(version))
    wheels = [p for p in project_page(package).packages
              if p.package_type == "wheel" and _same_version(p.version, wanted)]
    if not wheels:
        return None
    wheel = min(wheels, key=lambda p: (not p.has_metadata, p.size or 0))
    try:
        with PyPISimple(endpoint=index_url()) as client:
            if wheel.has_metadata:
                return client.get_package_metadata(wheel, timeout=timeout)
        response = requests.get(wheel.url, timeout=timeout)
        response.raise_for_status()
    except requests.RequestException as error:
        raise IndexLookupError(f"cannot fetch the metadata of {package} "
                               f"{version}: {network_cause(str(error))}") \
            from None
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        name = next(n for n in archive.namelist()
                    if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        return archive.read(name).decode("utf-8", errors="replace")


def _same_version(text, wanted):
    try:
        return Version(text or "") == wanted
    except InvalidVersion:
        return False


# The words of a network failure, as uv, requests and the OS put them, and
# the cause they name.
NETWORK_CAUSES = (
    (r"[Cc]onnection refused", "connection refused"),
    (r"dns error|[Nn]ame or service not known|Temporary failure in name "
     r"resolution|NameResolution|nodename nor servname", "host not found"),
    (r"[Tt]imed? ?out|timeout", "timed out"),
    (r"[Nn]etwork is unreachable|No route to host", "no route to the host"),
    (r"[Cc]onnection reset", "connection reset"),
    (r"certificate|SSL|TLS", "TLS error"),
)


def network_cause(text):
    """What a failed request's error chain (uv's "cause:" lines, or a
    requests exception) comes down to, in a few words."""
    for pattern, cause in NETWORK_CAUSES:
        if re.search(pattern, text):
            return cause
    status = re.search(r"\b([45]\d\d)\b (?:Client|Server) Error|status "
                       r"(?:code )?([45]\d\d)", text)
    if status:
        return f"HTTP {status.group(1) or status.group(2)}"
    lines = [line.strip().removeprefix("cause:").strip()
             for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else "no reason given")[:120]


def unreachable_index(output):
    """One line for an installer's output that failed to reach the index
    (``package index URL unreachable (connection refused)``), or None."""
    fetch = re.search(r"Failed to fetch:? `?(https?://[^\s`]+)", output)
    if not fetch:
        return None
    url = fetch.group(1).rstrip("/")
    # uv fetches <index>/<project>/: the index is the folder above.
    index = url.rsplit("/", 1)[0] if url.count("/") > 3 else url
    return f"package index {index} unreachable ({network_cause(output)})"
