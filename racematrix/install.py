"""Installing a release by the ladder of ``companions`` with uv, each way
checked by a smoke launch; an environment installed before is reused."""
from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from . import companions
from .companions import Installation, Problem, Target
from .envspec import EnvSpec
from .index import IndexLookupError, list_releases, nearest_versions, \
    unreachable_index
from .procs import venv_environ
from .provenance import now_iso
from .suites import MWE_SUITE, RUNNER_TOOLS, Suite
from .venv import read_environment, venv_python

logger = logging.getLogger(__name__)
MODULE_UNDER_TEST = "numba.cuda"
INSTALLED = "racematrix-installed.json"  # in an environment the ladder made
TIMEOUT = 900
# What an installation record holds besides its key and packages.
RECORDED = ("way", "exclude_newer", "requirements", "attempts",
            "implementation", "installed_at")


def install(session: Any, spec: EnvSpec) -> Problem | None:
    return install_resolved(session, spec).problem


def install_resolved(session: Any, spec: EnvSpec, every_way: bool = False,
                     suite: Suite | None = None) -> Installation:
    """Install the spec and the suite's tools, wheels only, by the first
    way that passes the smoke launch (``every_way``: try all, a survey)."""
    if shutil.which("uv") is None:
        return Installation(problem=("bad-input", "uv is not on PATH: the "
                                     "install ladder needs it (`pip install "
                                     "uv`)"))
    suite = suite or MWE_SUITE
    # A suite's own smoke code replaces the launch; the code under test
    # must still come from numba-cuda where the spec names it.
    provider = spec.target if suite.smoke is None or \
        spec.target == "numba-cuda" else None
    tools = tuple(dict.fromkeys([*RUNNER_TOOLS, *suite.requirements]))
    smoke = [MODULE_UNDER_TEST, *([suite.smoke] if suite.smoke else [])]
    key = hashlib.sha256(json.dumps([spec.python, list(spec.requirements),
                                     list(tools), SMOKE, smoke, provider])
                         .encode()).hexdigest()
    record = Path(session.bin).parent / INSTALLED
    try:  # a warm run: nox reuses environments
        noted = {} if every_way else json.loads(record.read_text())
        environment = read_environment(session) if noted else {}
        if noted["key"] == key and all(
                environment["packages"].get(name) == version
                for name, version in noted["packages"].items()):
            logger.info("install %s: as installed on %s (%s); reused",
                        " ".join(spec.requirements), noted["installed_at"],
                        noted["way"])
            return Installation(**{k: noted[k] for k in RECORDED},
                                environment=environment)
    except (OSError, ValueError, KeyError, RuntimeError):
        pass  # none, or not this installation: install
    installation = run_ladder(session, spec, companions.target(
        spec.requirements, tools), smoke, provider, every_way)
    if installation.problem is None and not every_way:
        record.write_text(json.dumps({
            **installation.resolution(), "installed_at": now_iso(),
            "key": key, "packages": installation.packages}))
    return installation


def run_ladder(session: Any, spec: EnvSpec, target: Target, smoke: list[str],
               provider: str | None, every_way: bool) -> Installation:
    """Each way in turn: uv installs it, then the smoke launch runs."""
    failed = Installation(problem=target.problem)
    won, first, python = None, None, venv_python(session)
    for way in companions.ways(target) if not target.problem else ():
        date = ["--exclude-newer", way.exclude_newer] if way.exclude_newer else []
        # Resolved alone, then the environment made exactly that: nothing
        # kept from an earlier way (uv pip install would keep installed
        # packages that satisfy, newer than the date or not). --color
        # never: FORCE_COLOR (on CI) would colour what sync reads back.
        common = ["--color", "never", "--python", python,
                  "--only-binary", ":all:"]
        done = subprocess.run(
            ["uv", "pip", "compile", "-q", "--no-header", *common,
             *companions.prerelease_arguments(target), *date, "-"],
            input="\n".join(way.requirements), capture_output=True,
            text=True, timeout=TIMEOUT)
        if done.returncode == 0:
            done = subprocess.run(["uv", "pip", "sync", "-q", *common, "-"],
                                  input=done.stdout, capture_output=True,
                                  text=True, timeout=TIMEOUT)
        problem = found = None
        if done.returncode != 0:
            failed.detail = done.stdout + done.stderr
            problem = classify_install_failure(failed.detail, spec)
            outcome, reason = "install-failed", problem[1]
        else:
            ran = subprocess.run(
                [python, "-c", SMOKE, *smoke], capture_output=True, text=True,
                timeout=TIMEOUT, env=venv_environ(
                    session.bin, {"NUMBA_ENABLE_CUDASIM": "1"}))
            outcome, reason, found = parse_smoke(ran.stdout + ran.stderr,
                                                 provider)
            failed.implementation = found or failed.implementation
        failed.attempts.append({"way": way.name, "outcome": outcome,
                                "reason": reason})
        logger.info("install %s, %s%s: %s%s", " ".join(spec.requirements),
                    way.name, f" (index as of {way.exclude_newer})"
                    if way.exclude_newer else "", outcome,
                    f": {reason}" if reason else "")
        if outcome == "ok" and won is None:
            won = Installation(None, way.name, way.exclude_newer,
                               list(way.requirements), failed.attempts, found,
                               read_environment(session))
            if not every_way:
                return won
        first = first or problem
        if problem and companions.stops_the_ladder(problem, target.release):
            failed.problem = problem
            break
    if failed.problem is None:
        failed.problem = companions.give_up(failed.attempts, first)
    return won or failed


# uv's words for an install that cannot be, and what they mean for a row
# ({0}, {1}: the pattern's groups; {python}: the spec's Python).
FAILURES = (
    (r"([\w.-]+==[\w.]+) has no (?:usable wheels|wheels with a matching "
     r"Python)", "skip", "no wheel of {0} for Python {python}"),
    (r"([\w.-]+==[\w.]+) depends on Python([<>=!~][^ ,]*(?:,[<>=!~][^ ,]*)*)",
     "skip", "{0} needs Python{1}, not {python}"),
    (r"there is no version of ([\w.-]+)==([\w.]+)", "bad-input",
     "{0}=={1} is not on the package index{near}"),
    (r"([\w.-]+) was not found in the package registry", "bad-input",
     "{0} is not on the package index; check the name in the spec"),
)


def classify_install_failure(output: str, spec: EnvSpec) -> Problem:
    """A skip (no wheel for this Python), the user's bad input (no such
    release or package), or an error with uv's cause."""
    for pattern, kind, reason in FAILURES:
        if found := re.search(pattern, output):
            return kind, reason.format(*found.groups(), python=spec.python,
                                       near="{near}" in reason
                                       and nearest_hint(*found.groups()))
    return "error", unreachable_index(output) or \
        f"install failed: {install_cause(output)}"


def nearest_hint(name: str, version: str) -> str:
    try:
        near = nearest_versions(version, list_releases(name))
    except IndexLookupError:
        near = []
    return f"; nearest on the index: {', '.join(near)}" if near else ""


def install_cause(output: str) -> str:
    """uv's error and its last ``cause:`` line, as one line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    error = next((line for line in lines if re.match(r"(error|ERROR):", line)),
                 None)
    if error is None:
        return (lines[-1] if lines else "no output")[:200]
    causes = [line.removeprefix("cause:").strip() for line in lines
              if line.startswith("cause:")]
    return (error.split(":", 1)[1].strip()
            + (f" ({causes[-1]})" if causes else ""))[:200]


def parse_smoke(output: str, provider: str | None = None
                ) -> tuple[str, str, dict[str, Any] | None]:
    """(outcome, reason, implementation) from SMOKE's output; the module
    must come from ``provider`` where given."""
    stages = {json.loads(line)["stage"]: json.loads(line)
              for line in output.splitlines() if line.startswith('{"stage"')}
    found = stages.get("imported", {}).get("implementation")
    lines = [line.strip() for line in output.splitlines()
             if line.strip() and not line.startswith("{")]
    error = next((line for line in reversed(lines)
                  if re.search("[Ee]rror", line)),
                 lines[-1] if lines else "no output")[:400]
    source = (found or {}).get("distribution") or "no installed distribution"
    if found is None:
        return "import-failed", error, None
    if provider and canonicalize_name(source) != canonicalize_name(provider):
        return "import-failed", (
            f"{found['module']} comes from {source}, not from {provider}: "
            f"this release does not provide the code under test"), found
    if "launched" not in stages:
        return "smoke-failed", error, found
    return "ok", "", found


# Run in the new environment as ``python -c SMOKE module [code]``: says
# where the module under test comes from, runs one simulated thread (no
# race possible) calling cuda.local.array in a device function, or a
# suite's own smoke code instead, and says that it returned.
SMOKE = r"""
import importlib, json, sys
from importlib import metadata
from pathlib import Path
name, code = sys.argv[1], (sys.argv[2:] or [None])[0]
found = {"module": name, "distribution": None, "path": None}
try:
    path = Path(importlib.import_module(name).__file__).resolve()
    # The deepest sys.path entry holding it: a project folder on
    # PYTHONPATH may hold the environment too.
    roots = [Path(e).resolve() for e in sys.path if e and Path(e).is_dir()]
    root = max((r for r in roots if path.is_relative_to(r)),
               key=lambda r: len(r.parts), default=None)
    owners = metadata.packages_distributions().get(
        path.relative_to(root).parts[0], []) if root else []
    found.update(distribution=(owners or [None])[0], path=str(path.parent))
except ImportError:
    if code is None:  # a suite's code may bring its own simulator
        raise
print(json.dumps({"stage": "imported", "implementation": found}), flush=True)
if code:
    exec(code)
else:
    import numpy as np
    from numba import cuda, float64

    @cuda.jit(device=True)
    def scratch_sum(i):
        tmp = cuda.local.array(2, float64)
        tmp[0] = i
        tmp[1] = 1.0
        return tmp[0] + tmp[1]

    @cuda.jit
    def kernel(out):
        out[0] = scratch_sum(0)

    out = np.zeros(1)
    kernel[1, 1](out)
    assert out[0] == 1.0, out
print(json.dumps({"stage": "launched"}), flush=True)
"""
