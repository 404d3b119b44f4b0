"""The matrix as data: ``[tool.racematrix]``, its suites and patches, the
MATRIX_* variables over it, and the order its sessions are handed out in."""
from __future__ import annotations

import contextlib
import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from .envspec import (DEFAULT_SUITE, EnvSpec, MatrixConfig, load_config,
                      overridden, project_config)
from .errors import BadInput
from .validation import problem

PROJECT = Path(__file__).resolve().parent.parent
# What the runner itself passes to pytest needs: --count and --timeout.
RUNNER_TOOLS = ("pytest", "pytest-repeat", "pytest-timeout")
NONE = "none"


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    signature: re.Pattern
    requirements: tuple[str, ...] = ()
    pytest_args: tuple[str, ...] = ()
    smoke: str | None = None  # code a fresh environment must run
    kinds: tuple[tuple[str, tuple[str, ...]], ...] = ()
    launch_time: bool = False  # its rows also time the MWE's launches


@dataclass(frozen=True)
class Diff:
    file: Path
    package: str
    releases: SpecifierSet


@dataclass(frozen=True)
class Patch:
    name: str
    diffs: tuple[Diff, ...]
    description: str = ""

    def diff_for(self, package: str, version: str) -> Diff | None:
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
                raise BadInput(f"{where}.file: {entry['file']!r} is not a "
                               f"file under {root}; expected a unified "
                               f"diff under patches/")
            try:
                releases = SpecifierSet(entry["releases"])
            except InvalidSpecifier:
                raise BadInput(f"{where}.releases: {entry['releases']!r} "
                               f"is not a PEP 440 specifier; expected "
                               f"e.g. '>=0.26'") from None
            diffs.append(Diff(path, canonicalize_name(entry["package"]),
                              releases))
        patches[name] = Patch(name, tuple(diffs), patch.get("description", ""))
    return patches


def patched_packages(spec: EnvSpec) -> list[str]:
    """What a patch may change: the CUDA target, then the packages named."""
    return list(dict.fromkeys([spec.target, *(
        canonicalize_name(Requirement(text).name)
        for text in spec.requirements)]))


def applies(patch: Patch, spec: EnvSpec) -> bool:
    """Whether ``patch`` has a diff for a release ``spec`` pins."""
    return any(patch.diff_for(requirement.name, specifier.version)
               for requirement in map(Requirement, spec.requirements)
               for specifier in requirement.specifier
               if specifier.operator in ("==", "==="))


def pick(variable: str, environ: Mapping[str, str], declared: Iterable[str],
         default: Iterable[str]) -> tuple[str, ...]:
    """The ``declared`` names ``variable`` gives, else ``default``."""
    declared = sorted(declared)

    def known(name: str) -> str:
        if name not in declared:
            source = variable if variable in environ else "the config"
            raise BadInput(f"{source} names unknown {name!r}: the declared "
                           f"ones are {', '.join(declared)}")
        return name
    return overridden(environ, variable, default, known)


@dataclass(frozen=True)
class Matrix:
    suites: dict[str, Suite]
    configs: dict[str, MatrixConfig]
    patches: dict[str, Patch]
    columns: dict[str, tuple[str, ...]]  # each suite's patches, NONE too

    def jobs(self, gpu_runner: str = "") -> dict[str, list]:
        """A CI job per ``env`` session, simulator off only on ``gpu_runner``."""
        jobs: dict[str, list] = {"include": [], "skipped": []}
        for spec in self.envs():
            session = f"env({spec.env_id})"
            if runs_on := "ubuntu-latest" if spec.sim else gpu_runner:
                jobs["include"].append({
                    "session": session, "python": spec.python,
                    "runs_on": runs_on, "artifact": f"raw-{spec.env_id}"})
            else:
                jobs["skipped"].append(session)
        return jobs

    def envs(self) -> list[EnvSpec]:
        """Every environment: each suite's own lists, crossed."""
        return [EnvSpec(python, spec, sim, name,
                        None if patch == NONE else patch)
                for name, config in self.configs.items()
                for python in config.pythons for spec in config.specs
                for sim in config.sims
                for patch in self.columns[name]
                if patch == NONE or applies(self.patches[patch], EnvSpec(
                    python, spec, sim, name))]


def load_matrix(table: Mapping[str, Any], environ: Mapping[str, str],
                root: str | Path) -> Matrix:
    """The selected suites (MATRIX_SPECS alone: the MWE), their lists."""
    if wrong := problem(table, "config", "[tool.racematrix] in pyproject.toml"):
        raise BadInput(wrong)
    if "MATRIX_SPECS" in environ and "MATRIX_SUITES" not in environ:
        environ = {**environ, "MATRIX_SUITES": DEFAULT_SUITE}
    declared = table["suites"]
    for name, suite in declared.items():  # every folder, picked or not
        if not (Path(root) / suite["path"]).is_dir():
            raise BadInput(
                f"[tool.racematrix.suites.{name}].path: {suite['path']!r} is "
                f"not a folder under {root}; expected the folder of the "
                f"suite's pytest tests, relative to the project root")
    suites, configs = {}, {}
    for name in pick("MATRIX_SUITES", environ, declared, [
            name for name, suite in declared.items()
            if suite.get("default", True)]):
        suite = declared[name]
        suites[name] = Suite(
            name, (Path(root) / suite["path"]).resolve(),
            re.compile(suite["signature"]),
            tuple(suite.get("requirements", ())),
            tuple(suite.get("pytest_args", ())), suite.get("smoke"),
            tuple((kind, tuple(globs))
                  for kind, globs in suite.get("kinds", {}).items()),
            suite.get("launch_time", False))
        try:  # the suite's own lists over the top level's
            configs[name] = load_config({**table, **suite}, environ)
        except BadInput as error:
            raise BadInput(f"suite {name}: {error}") from None
    patches = load_patches(table, root)
    return Matrix(suites, configs, patches, {
        name: pick("MATRIX_PATCHES", environ, [NONE, *patches],
                   [NONE, *declared[name].get("patches", ())])
        for name in suites})


@functools.cache
def mwe_suite() -> Suite:
    """The MWE's suite as pyproject.toml declares it (bisects, MWE figures)."""
    return load_matrix(project_config(PROJECT), {
        "MATRIX_SUITES": DEFAULT_SUITE}, PROJECT).suites[DEFAULT_SUITE]


def in_order(envs: Sequence[EnvSpec], results_dirs: Iterable[str | Path]
             ) -> list[EnvSpec]:
    """``envs`` the longest first (the time in the first folder's tables
    that has it), never recorded first: under ``-j`` no long one starts last."""
    recorded: dict[str, float] = {}
    for folder in results_dirs:
        with contextlib.suppress(OSError, ValueError, KeyError):
            for row in json.loads((Path(folder) / "failure_rates.json")
                                  .read_text())["rows"]:
                if row.get("runs") and row.get("seconds") is not None:
                    recorded.setdefault(row["env"].split("@", 1)[0],
                                        row["seconds"])
    return sorted(envs, key=lambda env: -recorded.get(env.env_id, math.inf))
