"""What the matrix runs in each environment: one or more suites, declared as
data in ``[tool.racematrix.suites.<name>]`` of pyproject.toml.

A suite is a folder of pytest tests, the requirements it adds, and the
failure signature that counts as the bug. It may carry its own matrix lists
(``specs``, ``pythons``, ``sim``) and its own ``count`` and ``timeout``;
whatever it leaves out comes from ``[tool.racematrix]``. MATRIX_SUITES picks
some suites by name for one run.
"""
import re
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from .envspec import DEFAULT_SUITE, ConfigError, load_config
from .outcomes import RACE_SIGNATURE
from .validation import require_valid

PROJECT = Path(__file__).resolve().parent.parent
MWE = PROJECT / "mwe"
# What the MWE needs besides the package under test.
TEST_TOOLS = ("numpy", "pytest", "pytest-repeat", "pytest-timeout")
# What the runner itself passes to pytest needs: --count and --timeout.
RUNNER_TOOLS = ("pytest", "pytest-repeat", "pytest-timeout")
# Keys of a suite table that replace the top-level matrix's.
MATRIX_KEYS = ("specs", "pythons", "sim", "count", "timeout")


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    signature: re.Pattern
    requirements: tuple = ()
    description: str = ""
    pytest_args: tuple = ()
    # Code that must run in a fresh environment; None: the matrix's own.
    smoke: str | None = None
    # Only the keys the suite sets itself: {"specs": [...], "count": 3}.
    matrix: tuple = ()
    # Patches (racematrix.patches) it also runs under, besides none.
    patches: tuple = ()
    # Whether `nox -s matrix` runs it without MATRIX_SUITES naming it.
    default: bool = True
    # Kinds of test, (kind, globs) in order: each row counts runs per kind.
    kinds: tuple = ()
    # Whether its rows also time launches of the MWE's kernel.
    launch_time: bool = False

    def config(self, table, environ):
        """The matrix of this suite: ``[tool.racematrix]``'s lists with the
        suite's own keys in their place; MATRIX_PYTHONS / MATRIX_SPECS /
        MATRIX_SIM in ``environ`` still replace either."""
        merged = {key: value for key, value in table.items()
                  if key not in ("suites", "patches")}
        merged.update(dict(self.matrix))
        return load_config(merged, environ)


def load_suites(table, environ, root):
    """The suites to run, by name, from ``[tool.racematrix]`` (``table``)
    and MATRIX_SUITES in ``environ``; paths are relative to ``root``.

    Without a ``suites`` table the matrix runs one suite, the MWE's, as it
    always has.
    """
    declared = table.get("suites")
    if declared is None:
        declared = {DEFAULT_SUITE: {"path": "mwe", "launch_time": True,
                                    "signature": _mwe_signature()}}
    if not isinstance(declared, dict) or not declared:
        raise ConfigError("[tool.racematrix.suites] must be a table of "
                          "suites, e.g. [tool.racematrix.suites.mwe] with "
                          "path and signature")
    suites = {name: parse_suite(name, suite_table, Path(root))
              for name, suite_table in declared.items()}
    return {name: suites[name] for name in select(suites, environ)}


def select(suites, environ):
    """The names MATRIX_SUITES picks ("cubie", "mwe cubie" or "mwe,cubie"),
    in its order; every declared suite that runs by default when it is
    unset."""
    if "MATRIX_SUITES" not in environ:
        return [name for name, suite in suites.items() if suite.default]
    names = [name for name in re.split(r"[\s,]+", environ["MATRIX_SUITES"])
             if name]
    if not names:
        raise ConfigError("MATRIX_SUITES is set but empty: unset it to run "
                          "every declared suite, or name some of: "
                          + ", ".join(sorted(suites)))
    unknown = [name for name in names if name not in suites]
    if unknown:
        raise ConfigError(
            f"MATRIX_SUITES names unknown suite {unknown[0]!r}: the declared "
            f"suites are {', '.join(sorted(suites))}")
    return list(dict.fromkeys(names))


def parse_suite(name, table, root):
    """One suite from its table; a bad value is one ConfigError line
    naming the key, the value and what is expected."""
    where = f"[tool.racematrix.suites.{name}]"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", str(name)):
        raise ConfigError(f"{where}: suite name {name!r} is not valid; "
                          f"expected letters, digits, '.', '_' or '-', "
                          f"starting with a letter or digit")
    require_valid(table, "suite", where)
    path = (root / table["path"]).resolve()
    if not path.is_dir():
        raise ConfigError(f"{where}.path: {table['path']!r} is not a folder "
                          f"under {root}; expected the folder of the "
                          f"suite's pytest tests, relative to the project "
                          f"root")
    signature = re.compile(table["signature"])  # the schema's format: regex
    requirements = tuple(table.get("requirements", ()))
    for requirement in requirements:
        try:
            Requirement(requirement)
        except InvalidRequirement as error:
            raise ConfigError(
                f"{where}.requirements: {requirement!r} is not a "
                f"requirement ({str(error).splitlines()[0]}); expected one "
                f"requirement per string, e.g. 'pytest-timeout>=2'") from None
    matrix = tuple((key, table[key]) for key in MATRIX_KEYS if key in table)
    for key, value in matrix:
        try:
            load_config({key: value}, {})
        except ConfigError as error:
            raise ConfigError(f"{where}.{key}: {error}") from None
    return Suite(name=name, path=path, signature=signature,
                 requirements=requirements,
                 description=table.get("description", ""),
                 pytest_args=tuple(table.get("pytest_args", ())),
                 smoke=table.get("smoke"),
                 matrix=matrix, patches=tuple(table.get("patches", ())),
                 default=table.get("default", True),
                 launch_time=table.get("launch_time", False),
                 kinds=tuple((kind, tuple(globs)) for kind, globs in
                             table.get("kinds", {}).items()))


def _mwe_signature():
    return RACE_SIGNATURE.pattern


# The MWE as a suite, for runs that name none (bisects, the MWE's figures).
MWE_SUITE = Suite(name=DEFAULT_SUITE, path=MWE, signature=RACE_SIGNATURE,
                  requirements=TEST_TOOLS, launch_time=True)
