"""Installing a release with its companions as of its upload, by a ladder
of ways each checked by a smoke launch (README "How releases are
installed"), or reusing that install; environments made outside nox."""
from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

from . import index
from .envspec import EnvSpec
from .procs import venv_environ
from .provenance import now_iso
from .suites import RUNNER_TOOLS, Suite, mwe_suite

logger = logging.getLogger(__name__)
MODULE_UNDER_TEST = "numba.cuda"
INSTALLED = "racematrix-installed.json"  # in an environment the ladder made
TIMEOUT = 900
UPLOAD_MARGIN = timedelta(days=1)  # companions usually land the same day
EXTRAS_VARIABLE = "RACEMATRIX_EXTRAS"  # space-separated; default cu12
SEEDS = {"pip", "setuptools", "wheel"}  # what virtualenv puts in, kept
Problem = tuple[str, str]  # (kind, reason); kind "skip", "bad-input", "error"
# A row's ``resolution`` before any way: what an install records.
UNRESOLVED = dict(way=None, exclude_newer=None, requirements=[], attempts=[],
                  implementation=None, installer=None)
# Every distribution by its normalised name: what rebuilds the environment.
READ_ENVIRONMENT = r"""
import json, platform, re, sys
from importlib import metadata
packages = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version
            for d in metadata.distributions() if d.metadata["Name"]}
print(json.dumps({"python": platform.python_version(),
                  "python_build": f"{platform.python_implementation()} "
                                  f"{sys.version}".replace("\n", " "),
                  "packages": dict(sorted(packages.items()))}))
"""


class ProbeEnvironment:
    """An environment outside nox with the parts of a nox Session we use."""
    venv_backend = "uv"

    def __init__(self, location: str | Path, python: str) -> None:
        # Absolute: the suite runs from a scratch folder.
        self.location = Path(location).absolute()
        self.bin = str(self.location / "bin")
        self.python = python

    def log(self, message: str) -> None:
        logger.info("%s", message)

    def create(self) -> None:
        if not (self.location / "bin" / "python").exists():
            subprocess.run(["uv", "venv", "-q", "-p", self.python,
                            str(self.location)], check=True,
                           env={"UV_PYTHON_DOWNLOADS": "never", **os.environ})


def read_environment(session: Any) -> dict[str, Any]:
    done = subprocess.run([f"{session.bin}/python", "-c", READ_ENVIRONMENT],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"cannot read the environment: {done.stderr}")
    return json.loads(done.stdout)


@dataclass
class Target:
    """A spec to install; its release is the first requirement pinned."""
    requirements: tuple[str, ...]
    tools: tuple[str, ...] = ()
    release: tuple[str, str] | None = None
    exclude_newer: str | None = None
    extras: tuple[str, ...] = ()
    requires_dist: tuple[str, ...] = ()
    companions: list[str] | None = None  # None: asked once a way needs them
    problem: Problem | None = None

    def with_extras(self, unpin_others: bool = False) -> list[str]:
        """The release with its wanted extras, the others as written or unpinned."""
        found = []
        for requirement in map(Requirement, self.requirements):
            if canonicalize_name(requirement.name) == (self.release or ("",))[0]:
                requirement.extras |= set(self.extras)
            elif unpin_others:
                requirement.specifier, requirement.marker = SpecifierSet(), None
            found.append(str(requirement))
        return found

    def named(self) -> list[str]:
        """That, the others by name, and the companions: what the first later
        release declaring any dependency declares and this one does not."""
        if self.companions is None and self.release:
            name, version = self.release
            self.companions = []  # where the index cannot say
            with contextlib.suppress(index.IndexLookupError):
                later = (dependencies(index.parse_core_metadata(
                    index.release_metadata(name, str(v)) or "")[1])
                    for v in index.list_releases(name) if v > Version(version))
                own = dependencies(self.requires_dist)
                self.companions = [n for n in next(filter(None, later), [])
                                   if n not in own]
        found = self.with_extras(unpin_others=True)
        present = {canonicalize_name(Requirement(r).name) for r in found}
        return found + [c for c in self.companions or () if c not in present]


class Way(NamedTuple):
    name: str
    requirements: tuple[str, ...]
    exclude_newer: str | None = None


def ways(target: Target) -> Iterator[Way]:
    """The ladder in order, lazily (the companions are looked up once their
    way is reached); a way that repeats the one before is left out."""
    yield (last := Way("as-asked", (*target.requirements, *target.tools)))
    if not (target.release and target.exclude_newer):
        return
    for name, asks in (("as-of-upload", lambda: target.requirements),
                       ("as-of-upload+extras", target.with_extras),
                       ("as-of-upload+extras+named", target.named)):
        way = Way(name, (*asks(), *target.tools), target.exclude_newer)
        if way[1:] != last[1:]:
            yield (last := way)


def parsed(texts: Iterable[str]) -> Iterator[Requirement]:
    """The requirements, those malformed left out (as installers do)."""
    for text in texts:
        try:
            yield Requirement(text)
        except InvalidRequirement:
            continue


def dependencies(requires: Iterable[str]) -> list[str]:
    """The names of a release's dependencies, its extras' apart."""
    return list(dict.fromkeys(canonicalize_name(r.name) for r in parsed(
        requires) if "extra" not in str(r.marker or "")))


def target(requirements: Iterable[str], tools: Iterable[str] = ()) -> Target:
    """The target: its release (the first requirement pinned exactly) and
    what the index says of that release, where it says."""
    found = Target(tuple(requirements), tuple(tools))
    for requirement in map(Requirement, found.requirements):
        pin = list(requirement.specifier)
        if len(pin) == 1 and pin[0].operator in ("==", "===") \
                and "*" not in pin[0].version:
            found.release = canonicalize_name(requirement.name), pin[0].version
            break
    with contextlib.suppress(index.IndexLookupError):  # uv's try says why
        if found.release is None or not (
                info := index.release_info(*found.release)):
            return found
        if info.yanked:
            why = next((f" ({f.yanked_reason})" for f in info.files
                        if f.yanked_reason), "")
            found.problem = ("skip", f"{'=='.join(found.release)} is yanked "
                                     f"on the index{why}")
        if info.upload_time:  # a day after, UTC, rounded up to the second
            found.exclude_newer = (info.upload_time + UPLOAD_MARGIN + timedelta(
                microseconds=999_999)).astimezone(timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%SZ")
        declared, requires = index.parse_core_metadata(
            index.release_metadata(*found.release) or "")
        # The declared extras named exactly (cu12, never test-cu12).
        wanted = {canonicalize_name(e)
                  for e in os.environ.get(EXTRAS_VARIABLE, "cu12").split()}
        found.extras = tuple(e for e in declared
                             if canonicalize_name(e) in wanted)
        found.requires_dist = tuple(requires)
    return found


def prerelease_arguments(target: Target) -> list[str]:
    """No pre-release, except of one required with a pre-release specifier."""
    allowed = dict.fromkeys(canonicalize_name(r.name) for r in parsed(
        (*target.requirements, *target.requires_dist))
        if r.specifier.prereleases)  # packaging's rule: != never
    return ["--prerelease", "disallow", *[
        arg for name in allowed
        for arg in ("--prerelease-package", f"{name}=allow")]]


@dataclass
class Installation:
    """How a spec was installed (a raw result's ``resolution``), or why not."""
    problem: Problem | None = None
    # UNRESOLVED's fields; attempts: {way, outcome: ok/install-failed/
    # import-failed/smoke-failed, reason}; a reused one: installed_at too.
    resolution: dict[str, Any] = field(
        default_factory=lambda: copy.deepcopy(UNRESOLVED))
    environment: dict[str, Any] = field(default_factory=dict)  # its packages
    detail: str = ""  # the installer's output where the last way failed


def stops_the_ladder(problem: Problem,
                     release: tuple[str, str] | None) -> bool:
    """Whether no later way can help (bad input, no index, no wheel)."""
    kind, reason = problem
    return kind == "bad-input" or bool(
        re.match(r"package index \S+ unreachable", reason)) or (
        kind == "skip" and release is not None
        and reason.startswith(f"no wheel of {release[0]}=="))


def give_up(attempts: list[dict[str, str]], first: Problem | None) -> Problem:
    """The first problem if a skip and nothing installed, else the last."""
    if first and first[0] == "skip" and \
            all(a["outcome"] == "install-failed" for a in attempts):
        return first
    return "error", f"{attempts[-1]['reason']} (every way failed)"


def install_resolved(session: Any, spec: EnvSpec, suite: Suite | None = None
                     ) -> Installation:
    """Install by the first way passing the smoke, or reuse that install."""
    if shutil.which("uv") is None:
        return Installation(("bad-input", "uv is not on PATH: the install "
                             "ladder needs it (`pip install uv`)"))
    suite = suite or mwe_suite()
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
    # A warm run (nox reuses environments): none, or not this one: install.
    with contextlib.suppress(OSError, ValueError, KeyError, RuntimeError):
        noted, environment = json.loads(record.read_text()), \
            read_environment(session)
        if noted["key"] == key and \
                noted["packages"].items() <= environment["packages"].items():
            logger.info("install %s: as installed on %s (%s); reused",
                        " ".join(spec.requirements), noted["installed_at"],
                        noted["way"])
            return Installation(None, {
                **{k: noted[k] for k in UNRESOLVED}, "reused": True,
                "installed_at": noted["installed_at"]}, environment)
    installation = run_ladder(session, spec, target(spec.requirements, tools),
                              smoke, provider)
    if installation.problem is None:
        record.write_text(json.dumps({
            **installation.resolution, "installed_at": now_iso(), "key": key,
            "packages": installation.environment["packages"]}))
    return installation


def run_ladder(session: Any, spec: EnvSpec, target: Target, smoke: list[str],
               provider: str | None) -> Installation:
    """Each way in turn: uv resolves it, the environment gets exactly that
    (by pip under nox's virtualenv or venv backend), the smoke launch runs."""
    installer = "uv" if session.venv_backend == "uv" else "pip"
    failed = Installation(target.problem)
    resolution = failed.resolution
    resolution["installer"] = installer
    first, python = None, f"{session.bin}/python"
    run = functools.partial(subprocess.run, capture_output=True, text=True,
                            timeout=TIMEOUT)
    # --color never: FORCE_COLOR (on CI) would colour what sync reads back.
    common = ["--color", "never", "--python", python, "--only-binary", ":all:"]
    for way, requirements, date in ways(target) if not target.problem else ():
        # Resolved alone, then the environment made exactly that (uv pip
        # install keeps installed packages that satisfy, newer or not).
        done = run(["uv", "pip", "compile", "-q", "--no-header", *common,
                    *prerelease_arguments(target),
                    *(["--exclude-newer", date] if date else []), "-"],
                   input="\n".join(requirements))
        pins = done.stdout
        if done.returncode == 0 and installer == "uv":
            done = run(["uv", "pip", "sync", "-q", *common, "-"], input=pins)
        elif done.returncode == 0:  # by pip: the pins, then drop the rest
            done = run([python, "-m", "pip", "install", "-q", "--only-binary",
                        ":all:", "--index-url", index.index_url(), "-r",
                        "/dev/stdin"], input=pins)
            stale = set(read_environment(session)["packages"]) - SEEDS - {
                canonicalize_name(r.name) for r in parsed(pins.splitlines())}
            if done.returncode == 0 and stale:
                done = run([python, "-m", "pip", "uninstall", "-q", "-y",
                            *sorted(stale)])
        if done.returncode != 0:
            failed.detail = done.stdout + done.stderr
            problem = classify_install_failure(failed.detail, spec)
            outcome, reason = "install-failed", problem[1]
        else:
            problem = None
            ran = run([python, "-c", SMOKE, *smoke], env=venv_environ(
                session.bin, {"NUMBA_ENABLE_CUDASIM": "1"}))
            outcome, reason, found = parse_smoke(ran.stdout + ran.stderr,
                                                 provider)
            if found:
                resolution["implementation"] = found
        resolution["attempts"].append(
            {"way": way, "outcome": outcome, "reason": reason})
        logger.info("install %s, %s%s: %s%s", " ".join(spec.requirements), way,
                    f" (index as of {date})" if date else "", outcome,
                    f": {reason}" if reason else "")
        if outcome == "ok":
            resolution.update(way=way, exclude_newer=date,
                              requirements=list(requirements))
            return Installation(None, resolution, read_environment(session))
        first = first or problem
        if problem and stops_the_ladder(problem, target.release):
            failed.problem = problem
            break
    failed.problem = failed.problem or give_up(resolution["attempts"], first)
    return failed


# uv's words for an install that cannot be, and what they mean for a row
# ({0}, {1}: the pattern's groups; {python}: the spec's Python; {cause}:
# a network failure's).
FAILURES = (
    (r"([\w.-]+==[\w.]+) has no (?:usable wheels|wheels with a matching "
     r"Python)", "skip", "no wheel of {0} for Python {python}"),
    (r"([\w.-]+==[\w.]+) depends on Python([<>=!~][^ ,]*(?:,[<>=!~][^ ,]*)*)",
     "skip", "{0} needs Python{1}, not {python}"),
    (r"there is no version of ([\w.-]+)==([\w.]+)", "bad-input",
     "{0}=={1} is not on the package index{near}"),
    (r"([\w.-]+) was not found in the package registry", "bad-input",
     "{0} is not on the package index; check the name in the spec"),
    # uv fetches <index>/<project>/: the index is the folder above.
    (r"Failed to fetch:? `?(https?://\S+?)/[^/\s`]+/?`?(?:\s|$)", "error",
     "package index {0} unreachable ({cause})"),
)


def classify_install_failure(output: str, spec: EnvSpec) -> Problem:
    """A skip (no wheel for this Python), bad input, or an error."""
    for pattern, kind, reason in FAILURES:
        if found := re.search(pattern, output):
            near = []
            if "{near}" in reason:
                with contextlib.suppress(index.IndexLookupError):
                    near = index.nearest_versions(
                        found[2], index.list_releases(found[1]))
            return kind, reason.format(
                *found.groups(), python=spec.python,
                cause=index.network_cause(output),
                near=f"; nearest on the index: {', '.join(near)}" * bool(near))
    # Else uv's error and its last ``cause:`` line, as one line.
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    error = next((line.split(":", 1)[1].strip() for line in lines
                  if re.match(r"(error|ERROR):", line)),
                 lines[-1] if lines else "no output")
    causes = [line.removeprefix("cause:").strip() for line in lines
              if line.startswith("cause:")]
    return "error", "install failed: " + (
        error + (f" ({causes[-1]})" if causes else ""))[:200]


def parse_smoke(output: str, provider: str | None = None
                ) -> tuple[str, str, dict[str, Any] | None]:
    """(outcome, reason, implementation); the module from ``provider``."""
    stages = {json.loads(line)["stage"]: json.loads(line)
              for line in output.splitlines() if line.startswith('{"stage"')}
    found = stages.get("imported", {}).get("implementation")
    lines = [line.strip() for line in output.splitlines()
             if line.strip() and not line.startswith("{")]
    error = next((line for line in reversed(lines)
                  if re.search("[Ee]rror", line)),
                 lines[-1] if lines else "no output")[:400]
    if found is None:
        return "import-failed", error, None
    source = found["distribution"] or "no installed distribution"
    if provider and canonicalize_name(source) != canonicalize_name(provider):
        return "import-failed", (
            f"{found['module']} comes from {source}, not from {provider}: "
            f"this release does not provide the code under test"), found
    return ("ok", "", found) if "launched" in stages else (
        "smoke-failed", error, found)


# ``python -c SMOKE module [code]``: where the module comes from, then one
# simulated thread (no race) calling cuda.local.array, or the suite's code.
SMOKE = r"""
import importlib, json, sys
from importlib import metadata
from pathlib import Path
name, code = sys.argv[1], (sys.argv[2:] or [None])[0]
found = {"module": name, "distribution": None, "path": None}
try:
    path = Path(importlib.import_module(name).__file__).resolve()
    owners = [d.metadata["Name"] for d in metadata.distributions()
              if any(Path(d.locate_file(f)).resolve() == path
                     for f in d.files or ())]
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
    def scratch(i):
        tmp = cuda.local.array(1, float64)
        tmp[0] = i + 1.0
        return tmp[0]

    @cuda.jit
    def kernel(out):
        out[0] = scratch(0)

    out = np.zeros(1)
    kernel[1, 1](out)
    assert out[0] == 1.0, out
print(json.dumps({"stage": "launched"}), flush=True)
"""
