"""What one matrix environment is: a Python, a requirement set, a simulator
flag; and how the matrix's lists are read from pyproject.toml and the
MATRIX_* environment variables."""
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .errors import ConfigError  # noqa: F401  (envspec.ConfigError, as before)

MIN_PYTHON = (3, 10)
SPECIFIER_WORDS = {"==": "-", "!=": "-ne", "<=": "-le", ">=": "-ge",
                   "~=": "-compat", "<": "-lt", ">": "-gt", "===": "-"}




# The suite whose environments keep the ids they had before suites existed.
DEFAULT_SUITE = "mwe"


@dataclass(frozen=True)
class EnvSpec:
    python: str
    requirements: tuple
    sim: bool
    suite: str = DEFAULT_SUITE
    # A candidate fix applied after install (racematrix.patches), or None.
    patch: str | None = None

    @property
    def target(self):
        """Which CUDA target ``numba.cuda`` resolves to in this
        environment: the out-of-tree package when it is installed."""
        names = {canonicalize_name(Requirement(r).name)
                 for r in self.requirements}
        return "numba-cuda" if "numba-cuda" in names else "numba"

    @property
    def spec(self):
        return " ".join(self.requirements)

    @property
    def env_id(self):
        """``py3.11-numba-0.60.0-sim1``; other suites than the MWE's are
        prefixed with their name (``cubie-py3.12-...``), so that their raw
        files sit beside the MWE's; a patched environment names its patch
        (``py3.12-numba-cuda-0.30.4+patch.my-fix-sim1``)."""
        patched = f"+patch.{self.patch}" if self.patch else ""
        env_id = (f"py{self.python}-{spec_slug(self.requirements)}{patched}"
                  f"-sim{int(self.sim)}")
        return env_id if self.suite == DEFAULT_SUITE else f"{self.suite}-{env_id}"


def spec_slug(requirements):
    """A file-name-safe form of a requirement set, distinct for every
    distinct set: readable where the words say it all (``numba-0.60.0``,
    ``numba-ge0.60-lt0.61``), with a short hash of the requirement where
    they cannot (a direct reference, a marker, a wildcard, ``===``, which
    reads like ``==``)."""
    parts = []
    for text in requirements:
        requirement = Requirement(text)
        slug = canonicalize_name(requirement.name)
        if requirement.extras:
            slug += "." + ".".join(sorted(requirement.extras))
        for specifier in sorted(requirement.specifier, key=str):
            slug += SPECIFIER_WORDS[specifier.operator] + specifier.version
        safe = re.sub(r"[^A-Za-z0-9._+-]", "_", slug)
        if requirement.url:
            # The file or repository it names, where that reads well.
            tail = re.sub(r"[^A-Za-z0-9._+-]", "_", requirement.url.rstrip(
                "/").rsplit("/", 1)[-1].split("#")[0].split("?")[0])[:40]
            safe += "-at-" + (tail + "-" if tail.strip("_") else "")
        if safe != slug or requirement.url or requirement.marker or any(
                s.operator == "===" for s in requirement.specifier):
            digest = hashlib.sha256(normalize_requirement(text).encode())
            safe = safe.rstrip("-") + "-h" + digest.hexdigest()[:8]
        parts.append(safe)
    return "+".join(parts)


def parse_spec(text):
    """A requirement set, ``"numba-cuda==0.30.4 numba==0.68.1"``, as a tuple
    of requirement strings in one normal form, so that two spellings of one
    environment (``numba==0.60`` and ``numba==0.60.0``, PEP 440 equal) are
    one environment."""
    # A direct reference, `numba @ https://...`, is one requirement.
    requirements = tuple(re.sub(r"\s*@\s*", " @", text).replace(
        " @", "@").split())
    if not requirements:
        raise ConfigError("empty requirement set: give at least one "
                          "requirement, e.g. 'numba==0.60.0'")
    normal = []
    for requirement in requirements:
        try:
            normal.append(normalize_requirement(requirement))
        except InvalidRequirement as error:
            raise ConfigError(f"malformed requirement {requirement!r} in "
                              f"{text!r}: {str(error).splitlines()[0]}") from None
    return tuple(dict.fromkeys(normal))


def normalize_requirement(text):
    """``text`` with its name canonical and each exact pin's version in
    PEP 440 normal form, padded to at least three parts (``Numba==0.60`` ->
    ``numba==0.60.0``); other specifiers keep their order-free normal form."""
    requirement = Requirement(text)
    name = canonicalize_name(requirement.name)
    if requirement.extras:
        name += "[" + ",".join(sorted(requirement.extras)) + "]"
    specifiers = []
    for specifier in sorted(requirement.specifier, key=str):
        version = specifier.version
        if specifier.operator in ("==", "!=") and not version.endswith(".*"):
            version = pad_version(version)
        specifiers.append(specifier.operator + version)
    marker = f"; {requirement.marker}" if requirement.marker else ""
    url = f" @ {requirement.url}" if requirement.url else ""
    return name + url + ",".join(specifiers) + marker


def pad_version(text):
    """PEP 440 normal form with exactly three release parts where trailing
    zeros allow (``0.60`` and ``0.60.0.0`` -> ``0.60.0``)."""
    try:
        version = Version(text)
    except InvalidVersion:
        return text
    release = list(version.release)
    while len(release) > 3 and release[-1] == 0:
        release.pop()
    release += [0] * (3 - len(release))
    epoch = f"{version.epoch}!" if version.epoch else ""
    suffix = str(version)[len(version.base_version):]
    return epoch + ".".join(map(str, release)) + suffix


def parse_package(text):
    """A package name as a user typed it, in PEP 503's normal form
    (``Numba_CUDA`` -> ``numba-cuda``): one name, one file, one row."""
    if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", text):
        raise ConfigError(f"malformed package name {text!r}: give a name as "
                          f"on the index, e.g. 'numba-cuda'")
    return canonicalize_name(text)


def parse_python(text):
    if not re.fullmatch(r"3\.\d+", text):
        raise ConfigError(f"malformed Python version {text!r}: give X.Y, "
                          f"e.g. '3.11'")
    if tuple(map(int, text.split("."))) < MIN_PYTHON:
        raise ConfigError(f"unsupported Python {text}: the matrix needs "
                          f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer")
    return text


def parse_sim(text):
    if text not in ("0", "1"):
        raise ConfigError(f"malformed simulator flag {text!r}: give 1 "
                          f"(simulator on) or 0 (off)")
    return text == "1"


@dataclass(frozen=True)
class MatrixConfig:
    pythons: tuple
    specs: tuple
    sims: tuple
    count: int
    timeout: int
    launches: int = 3
    max_launches: int = 8

    def envs(self):
        return [EnvSpec(python, spec, sim) for python in self.pythons
                for spec in self.specs for sim in self.sims]


def project_config(project: str | Path) -> dict:
    """``[tool.racematrix]`` of ``project``'s pyproject.toml."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: nox brings tomli
        import tomli as tomllib
    return tomllib.loads((Path(project) / "pyproject.toml").read_text())[
        "tool"]["racematrix"]


def load_config(table, environ):
    """The matrix from ``[tool.racematrix]`` of pyproject.toml, with the
    MATRIX_PYTHONS / MATRIX_SPECS / MATRIX_SIM variables in ``environ``
    replacing the configured lists. The table is checked against
    ``schemas/config.schema.json`` first: a bad value is one line naming
    the key, the value and what is expected."""
    from .validation import require_valid
    require_valid(table, "config", "[tool.racematrix] in pyproject.toml")
    pythons = table.get("pythons", [])
    specs = table.get("specs", [])
    sims = [str(flag) for flag in table.get("sim", [1, 0])]
    if "MATRIX_PYTHONS" in environ:
        pythons = _split("MATRIX_PYTHONS", environ["MATRIX_PYTHONS"], None)
    if "MATRIX_SPECS" in environ:
        specs = _split("MATRIX_SPECS", environ["MATRIX_SPECS"], ";")
    if "MATRIX_SIM" in environ:
        sims = _split("MATRIX_SIM", environ["MATRIX_SIM"], None)
    launches = table.get("launches", 3)
    if "MATRIX_LAUNCHES" in environ:
        text = environ["MATRIX_LAUNCHES"].strip()
        if not text.isdigit():
            raise ConfigError(f"MATRIX_LAUNCHES={environ['MATRIX_LAUNCHES']!r}"
                              f" is not valid; expected a whole number of "
                              f"launches per MWE row (0: no launch time)")
        launches = int(text)
    return MatrixConfig(
        pythons=_unique(parse_python(p) for p in pythons),
        specs=_unique(parse_spec(s) for s in specs),
        sims=_unique(parse_sim(s) for s in sims),
        count=table.get("count", 1),
        timeout=table.get("timeout", 120),
        launches=launches,
        max_launches=max(table.get("max_launches", 8), launches),
    )


def _split(name, value, separator):
    items = [item.strip() for item in value.split(separator)]
    items = [item for item in items if item]
    if not items:
        raise ConfigError(f"{name} is set but empty: unset it to use the "
                          f"configured list, or give at least one value")
    return items


def _unique(items):
    return tuple(dict.fromkeys(items))
