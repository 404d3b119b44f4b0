"""The whole matrix: every suite that runs, each with its own lists
(``[tool.racematrix]`` with the suite's keys in their place, and the
MATRIX_* variables over both)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .envspec import DEFAULT_SUITE, EnvSpec
from .patches import NONE, applies, load_patches, select_patches
from .suites import load_suites


@dataclass(frozen=True)
class Matrix:
    suites: dict    # name -> suites.Suite
    configs: dict   # name -> envspec.MatrixConfig
    patches: dict | None = None     # name -> patches.Patch
    columns: dict | None = None     # suite name -> its patch columns ("none", ...)

    @property
    def pythons(self) -> tuple:
        return _union(config.pythons for config in self.configs.values())

    @property
    def sims(self) -> tuple:
        return _union(config.sims for config in self.configs.values())

    def envs(self) -> list[EnvSpec]:
        return [env_of(combination) for combination in self.combinations()]

    def combinations(self) -> list[tuple]:
        """(Python, suite, spec, simulator flag, patch or None) of every
        environment, each suite with its own lists: one matrix session
        each, and no session for a combination outside a suite's lists. A
        patch column holds the specs whose pinned release it has a diff
        for."""
        found = []
        for name, config in self.configs.items():
            for python in config.pythons:
                for spec in config.specs:
                    for sim in config.sims:
                        for patch in (self.columns or {}).get(name, (NONE,)):
                            env = EnvSpec(python, spec, sim, name)
                            if patch == NONE:
                                found.append((python, name, spec, sim, None))
                            elif applies((self.patches or {})[patch], env):
                                found.append((python, name, spec, sim, patch))
        return found


def load_matrix(table: dict, environ: Mapping[str, str],
                root: str | Path) -> Matrix:
    """Every selected suite with its lists. Where MATRIX_SPECS is set and
    MATRIX_SUITES is not, only the MWE's suite runs: specs written for the
    MWE mean nothing to another suite."""
    if "MATRIX_SPECS" in environ and "MATRIX_SUITES" not in environ:
        environ = {**environ, "MATRIX_SUITES": DEFAULT_SUITE}
    suites = load_suites(table, environ, root)
    configs = {name: suite.config(table, environ)
               for name, suite in suites.items()}
    patches = load_patches(table, root)
    columns = {name: select_patches(suite.patches, patches, environ)
               for name, suite in suites.items()}
    return Matrix(suites, configs, patches, columns)


def param_id(suite: str, spec: tuple) -> str:
    """The id of a (suite, spec) pair in nox's session names: the MWE's
    as before (``numba==0.60.0``), others prefixed (``cubie: cubie==...``)."""
    text = " ".join(spec)
    return text if suite == DEFAULT_SUITE else f"{suite}: {text}"


def env_of(combination: tuple) -> EnvSpec:
    """The ``EnvSpec`` of one of ``Matrix.combinations()``' tuples."""
    python, suite, spec, sim, patch = combination
    return EnvSpec(python, spec, sim, suite, patch)


def session_id(python: str, suite: str, spec: tuple, sim: bool,
               patch: str | None = None) -> str:
    """The parameters of a matrix session's name, in nox's parentheses:
    ``3.11, numba==0.60.0, sim1`` (``matrix(3.11, numba==0.60.0, sim1)``),
    ``3.12, numba-cuda==0.30.4, patch my-fix, sim1`` where patched."""
    patched = f", patch {patch}" if patch else ""
    return f"{python}, {param_id(suite, spec)}{patched}, sim{int(sim)}"


def _union(lists: Iterable[Iterable]) -> tuple:
    return tuple(dict.fromkeys(item for items in lists for item in items))
