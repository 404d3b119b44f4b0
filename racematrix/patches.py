"""Candidate fixes as a matrix axis, declared as data in
``[tool.racematrix.patches.<name>]``: one unified diff per code base, each
for one package and a range of its releases. A suite lists the patches it
runs under; ``none`` (unpatched) is always a column; MATRIX_PATCHES picks
some for one run."""
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from .errors import ConfigError
from .validation import require_valid

NONE = "none"


@dataclass(frozen=True)
class Diff:
    file: Path
    package: str
    releases: SpecifierSet

    @property
    def sha256(self):
        return hashlib.sha256(self.file.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Patch:
    name: str
    diffs: tuple
    description: str = ""

    def diff_for(self, package, version):
        """The diff meant for ``package`` at ``version``, or None."""
        package = canonicalize_name(package)
        for diff in self.diffs:
            if diff.package == package and \
                    diff.releases.contains(Version(version), prereleases=True):
                return diff
        return None


def load_patches(table, root):
    """Every patch declared in ``[tool.racematrix]`` (``table``), by name;
    a bad value is one ConfigError line naming the key."""
    declared = table.get("patches", {})
    if not isinstance(declared, dict):
        raise ConfigError("[tool.racematrix.patches] must be a table of "
                          "patches, e.g. [tool.racematrix.patches.my-fix] "
                          "with diffs = [{file, package, releases}]")
    return {name: parse_patch(name, patch, Path(root))
            for name, patch in declared.items()}


def parse_patch(name, table, root):
    where = f"[tool.racematrix.patches.{name}]"
    if name == NONE or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name):
        raise ConfigError(f"{where}: patch name {name!r} is not valid; "
                          f"expected lower-case letters, digits, '.', '_' "
                          f"or '-', and not {NONE!r}")
    require_valid(table, "patch", where)
    diffs = []
    for i, entry in enumerate(table["diffs"]):
        path = root / entry["file"]
        if not path.is_file():
            raise ConfigError(f"{where}.diffs[{i}].file: {entry['file']!r} is "
                              f"not a file under {root}; expected a unified "
                              f"diff under patches/")
        try:
            releases = SpecifierSet(entry["releases"])
        except InvalidSpecifier:
            raise ConfigError(f"{where}.diffs[{i}].releases: "
                              f"{entry['releases']!r} is not a PEP 440 "
                              f"specifier; expected e.g. '>=0.26'") from None
        diffs.append(Diff(path, canonicalize_name(entry["package"]),
                          releases))
    return Patch(name, tuple(diffs), table.get("description", ""))


def select_patches(listed, declared, environ):
    """The patch columns of one suite: ``none`` and the patches it lists,
    or those MATRIX_PATCHES names (``"none my-fix"``) where it is set."""
    names = [NONE, *listed]
    if "MATRIX_PATCHES" in environ:
        names = [n for n in re.split(r"[\s,]+", environ["MATRIX_PATCHES"])
                 if n]
        if not names:
            raise ConfigError("MATRIX_PATCHES is set but empty: unset it, or "
                              "name 'none' and/or declared patches")
    unknown = [n for n in names if n != NONE and n not in declared]
    if unknown:
        raise ConfigError(
            f"unknown patch {unknown[0]!r}: the declared patches are "
            f"{', '.join(sorted(declared)) or 'none'} "
            f"([tool.racematrix.patches.<name>] in pyproject.toml)")
    return tuple(dict.fromkeys(names))


def patched_packages(spec):
    """The packages a patch may change in ``spec``'s environment: its CUDA
    target first, then the other packages it names (a client that carries
    its own copy of the simulator, as CuBIE 0.15 and later do)."""
    from packaging.requirements import Requirement
    names = [canonicalize_name(Requirement(text).name)
             for text in spec.requirements]
    return list(dict.fromkeys([spec.target, *names]))


def applies(patch, spec):
    """Whether ``patch`` has a diff for the release ``spec`` pins of its
    CUDA target, or of another package it names; an unpinned package
    cannot be told before it is built, and gets no patched column."""
    from packaging.requirements import Requirement
    for package in patched_packages(spec):
        for text in spec.requirements:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) != package:
                continue
            pinned = [s.version for s in requirement.specifier
                      if s.operator in ("==", "===")]
            if pinned and patch.diff_for(package, pinned[0]) is not None:
                return True
    return False
