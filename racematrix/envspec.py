"""One matrix environment, and the normal forms of what a user types for it."""
from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import InvalidVersion, Version

from .errors import BadInput

SPECIFIER_WORDS = {"==": "-", "!=": "-ne", "<=": "-le", ">=": "-ge",
                   "~=": "-compat", "<": "-lt", ">": "-gt", "===": "-"}
# The suite whose environments keep the ids they had before suites existed.
DEFAULT_SUITE = "mwe"


@dataclass(frozen=True)
class EnvSpec:
    python: str
    requirements: tuple[str, ...]
    sim: bool
    suite: str = DEFAULT_SUITE
    patch: str | None = None  # a candidate fix (racematrix.suites)

    @property
    def target(self) -> str:
        """What ``numba.cuda`` resolves to: numba-cuda where installed."""
        names = {canonicalize_name(Requirement(r).name)
                 for r in self.requirements}
        return "numba-cuda" if "numba-cuda" in names else "numba"

    @property
    def env_id(self) -> str:
        """``py3.11-numba-0.60.0-sim1``, ``cubie-py3.12-...`` (not the
        MWE's suite), ``...-0.30.4+patch.my-fix-sim1`` (patched): the raw
        file's name and nox's session id, ``env(py3.11-...)``."""
        parts = []  # each file-name-safe, hashed where not readable
        for text in self.requirements:
            requirement = Requirement(text)
            slug: str = canonicalize_name(requirement.name) + "".join(
                "." + extra for extra in sorted(requirement.extras)) + "".join(
                SPECIFIER_WORDS[specifier.operator] + specifier.version
                for specifier in sorted(requirement.specifier, key=str))
            safe = re.sub(r"[^A-Za-z0-9._+-]", "_", slug)
            if safe != slug or requirement.url or requirement.marker or \
                    "===" in str(requirement.specifier):
                safe += "-h" + hashlib.sha256(normalize_requirement(
                    text).encode()).hexdigest()[:8]
            parts.append(safe)
        patched = f"+patch.{self.patch}" if self.patch else ""
        env_id = (f"py{self.python}-{'+'.join(parts)}{patched}"
                  f"-sim{int(self.sim)}")
        return env_id if self.suite == DEFAULT_SUITE else \
            f"{self.suite}-{env_id}"


def parse_spec(text: str) -> tuple[str, ...]:
    """A requirement set in one normal form (PEP 440 equal: one env)."""
    # A direct reference, `numba @ https://...`, is one requirement.
    requirements = re.sub(r"\s*@\s*", "@", text).split()
    normal = []
    for requirement in requirements:
        try:
            normal.append(normalize_requirement(requirement))
        except InvalidRequirement as error:
            raise BadInput(f"malformed requirement {requirement!r} in "
                           f"{text!r}: {str(error).splitlines()[0]}"
                           ) from None
    return tuple(dict.fromkeys(normal))


def normalize_requirement(text: str) -> str:
    """Name canonical, exact pins in PEP 440's normal form with three release
    parts (``Numba==0.60`` -> ``numba==0.60.0``)."""
    requirement = Requirement(text)
    requirement.name = canonicalize_name(requirement.name)
    pins = []
    for specifier in requirement.specifier:
        version = specifier.version
        if specifier.operator in ("==", "!=") and not version.endswith(".*"):
            with contextlib.suppress(InvalidVersion):
                normal = Version(canonicalize_version(version))
                base = normal.base_version  # trailing zeros stripped, padded
                version = str(normal).replace(
                    base, base + ".0" * (3 - len(normal.release)), 1)
        pins.append(specifier.operator + version)
    requirement.specifier = SpecifierSet(",".join(pins))
    return str(requirement)


def parse_package(text: str) -> str:
    """A package name in PEP 503's normal form (``Numba_CUDA`` -> ``numba-cuda``)."""
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", text):
        raise BadInput(f"malformed package name {text!r}: give a name as "
                       f"on the index, e.g. 'numba-cuda'")
    return canonicalize_name(text)


def parse_python(text: str) -> str:
    if re.fullmatch(r"3\.\d", text):
        raise BadInput(f"unsupported Python {text}: the matrix needs 3.10 or "
                       f"newer")
    if not re.fullmatch(r"3\.(1\d|[2-9]\d)", text):  # as the config's schema
        raise BadInput(f"malformed Python version {text!r}: give X.Y, e.g. "
                       f"'3.11'")
    return text


def parse_sim(text: str) -> bool:
    if text not in ("0", "1"):
        raise BadInput(f"malformed simulator flag {text!r}: give 1 "
                       f"(simulator on) or 0 (off)")
    return text == "1"


@dataclass(frozen=True)
class MatrixConfig:
    pythons: tuple[str, ...]
    specs: tuple[tuple[str, ...], ...]
    sims: tuple[bool, ...]
    count: int
    timeout: int
    launches: int
    max_launches: int


def project_config(project: str | Path) -> dict[str, Any]:
    """``[tool.racematrix]`` of ``project``'s pyproject.toml."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: a dependency there
        import tomli as tomllib
    return tomllib.loads((Path(project) / "pyproject.toml").read_text())[
        "tool"]["racematrix"]


def overridden(environ: Mapping[str, str], variable: str,
               default: Iterable[Any], parse: Callable[[str], Any],
               separator: str = r"[\s,]+") -> tuple:
    """``default``, or the list ``variable`` gives; each parsed, once."""
    items = [str(item) for item in default]
    if variable in environ:
        items = [item for item in re.split(separator, environ[variable])
                 if item.strip()]  # parse_spec splits a spec's own spaces
        if not items:
            raise BadInput(f"{variable} is set but empty: unset it to use the "
                           f"configured list, or give a value")
    return tuple(dict.fromkeys(map(parse, items)))


def load_config(table: Mapping[str, Any], environ: Mapping[str, str]
                ) -> MatrixConfig:
    """A schema-checked table's lists, MATRIX_* over them."""
    launches = table.get("launches", 3)
    if "MATRIX_LAUNCHES" in environ:
        if not environ["MATRIX_LAUNCHES"].strip().isdigit():
            raise BadInput(f"MATRIX_LAUNCHES={environ['MATRIX_LAUNCHES']!r}"
                           f" is not valid; expected a whole number of "
                           f"launches per MWE row (0: no launch time)")
        launches = int(environ["MATRIX_LAUNCHES"])
    return MatrixConfig(
        overridden(environ, "MATRIX_PYTHONS", table.get("pythons", []),
                   parse_python),
        overridden(environ, "MATRIX_SPECS", table.get("specs", []), parse_spec,
                   ";"),
        overridden(environ, "MATRIX_SIM", table.get("sim", [1, 0]), parse_sim),
        table.get("count", 1), table.get("timeout", 120), launches,
        max(table.get("max_launches", 8), launches))
