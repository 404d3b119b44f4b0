"""Candidate fixes as a matrix axis (``[tool.racematrix.patches.<name>]``,
checked by the config's schema): one unified diff per code base, each for
one package and a range of its releases. ``none`` (unpatched) is always a
column; MATRIX_PATCHES picks some for one run (``suites.pick``)."""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from .errors import ConfigError

if TYPE_CHECKING:
    from .envspec import EnvSpec

NONE = "none"


@dataclass(frozen=True)
class Diff:
    file: Path
    package: str
    releases: SpecifierSet

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.file.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Patch:
    name: str
    diffs: tuple[Diff, ...]
    description: str = ""

    def diff_for(self, package: str, version: str) -> Diff | None:
        """The diff meant for ``package`` at ``version``, or None."""
        return next((diff for diff in self.diffs
                     if diff.package == canonicalize_name(package) and
                     diff.releases.contains(Version(version),
                                            prereleases=True)), None)


def load_patches(table: Mapping[str, Any], root: str | Path
                 ) -> dict[str, Patch]:
    """Every patch ``[tool.racematrix]`` (``table``) declares, by name."""
    patches = {}
    for name, patch in table.get("patches", {}).items():
        diffs = []
        for i, entry in enumerate(patch["diffs"]):
            where = f"[tool.racematrix.patches.{name}].diffs[{i}]"
            path = Path(root) / entry["file"]
            if not path.is_file():
                raise ConfigError(f"{where}.file: {entry['file']!r} is not a "
                                  f"file under {root}; expected a unified "
                                  f"diff under patches/")
            try:
                releases = SpecifierSet(entry["releases"])
            except InvalidSpecifier:
                raise ConfigError(f"{where}.releases: {entry['releases']!r} "
                                  f"is not a PEP 440 specifier; expected "
                                  f"e.g. '>=0.26'") from None
            diffs.append(Diff(path, canonicalize_name(entry["package"]),
                              releases))
        patches[name] = Patch(name, tuple(diffs), patch.get("description", ""))
    return patches


def patched_packages(spec: EnvSpec) -> list[str]:
    """What a patch may change in ``spec``'s environment: its CUDA target,
    then the other packages it names (CuBIE's own copy of the simulator)."""
    return list(dict.fromkeys([spec.target, *(
        canonicalize_name(Requirement(text).name)
        for text in spec.requirements)]))


def applies(patch: Patch, spec: EnvSpec) -> bool:
    """Whether ``patch`` has a diff for a release ``spec`` pins; an
    unpinned package gets no patched column."""
    return any(patch.diff_for(requirement.name, specifier.version)
               for requirement in map(Requirement, spec.requirements)
               for specifier in requirement.specifier
               if specifier.operator in ("==", "==="))
