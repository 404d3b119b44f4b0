"""The ladder of ways to install a release with its companions as of its
upload (README "How releases are installed"), as data, and its rules."""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from . import index

# Companions released with a release usually land the same day.
UPLOAD_MARGIN = timedelta(days=1)
EXTRAS_VARIABLE = "RACEMATRIX_EXTRAS"  # space-separated; default cu12
Problem = tuple[str, str]  # (kind, reason); kind "skip", "bad-input", "error"


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
        """The release's requirement with its wanted extras, the others as
        written (or by name only)."""
        found = list(self.requirements)
        for i, text in enumerate(found):
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == (self.release or ("",))[0]:
                if set(self.extras) <= requirement.extras:
                    continue  # as written: a way that repeats one is left out
                requirement.extras |= set(self.extras)
            elif unpin_others:
                requirement.specifier, requirement.marker = SpecifierSet(), None
            else:
                continue
            found[i] = str(requirement)
        return found

    def named(self) -> list[str]:
        """That, the others by name, and the companions its successor names."""
        if self.companions is None and self.release:
            self.companions = successor_companions(
                self.requires_dist, later_requires(*self.release))
        found = self.with_extras(unpin_others=True)
        present = {canonicalize_name(Requirement(r).name) for r in found}
        return found + [c for c in self.companions or ()
                        if canonicalize_name(c) not in present]


# The ladder, in order: each way's name, whether it takes the index as of
# the release's upload, and the requirements it asks for (tools added).
WAYS: dict[str, tuple[bool, Callable[[Target], Iterable[str]]]] = {
    "as-asked": (False, lambda t: t.requirements),
    "as-of-upload": (True, lambda t: t.requirements),
    "as-of-upload+extras": (True, Target.with_extras),
    "as-of-upload+extras+named": (True, Target.named),
}


@dataclass(frozen=True)
class Way:
    name: str
    requirements: tuple[str, ...]
    exclude_newer: str | None = None


def ways(target: Target) -> Iterator[Way]:
    """The ways, lazily (a way's lookups wait until it is reached), each
    unless it repeats an earlier one."""
    seen = set()
    for name, (as_of_upload, asks) in WAYS.items():
        if as_of_upload and not (target.release and target.exclude_newer):
            return
        way = Way(name, (*asks(target), *target.tools),
                  target.exclude_newer if as_of_upload else None)
        if (way.requirements, way.exclude_newer) not in seen:
            seen.add((way.requirements, way.exclude_newer))
            yield way


def pinned_release(requirements: Iterable[str]) -> tuple[str, str] | None:
    for text in requirements:
        requirement = Requirement(text)
        pins = list(requirement.specifier)
        if len(pins) == 1 and pins[0].operator in ("==", "===") \
                and "*" not in pins[0].version:
            return canonicalize_name(requirement.name), pins[0].version
    return None


def exclude_newer_for(upload_time: datetime) -> str:
    """A day after the upload, UTC, rounded up to the second."""
    moment = (upload_time + UPLOAD_MARGIN).astimezone(timezone.utc)
    moment += timedelta(microseconds=-moment.microsecond % 1_000_000)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def wanted_extras(declared: Iterable[str],
                  environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The declared extras named exactly (``cu12``, never ``test-cu12``)."""
    wanted = {canonicalize_name(e)
              for e in environ.get(EXTRAS_VARIABLE, "cu12").split()}
    return tuple(e for e in declared if canonicalize_name(e) in wanted)


def unconditional_names(requires_dist: Iterable[str]) -> list[str]:
    """Names of the dependencies every install gets (no extra marker)."""
    names: dict[str, None] = {}
    for text in requires_dist:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if "extra" not in str(requirement.marker or ""):
            names[canonicalize_name(requirement.name)] = None
    return list(names)


def successor_companions(own_requires: Iterable[str],
                         later_requires: Iterable[Iterable[str]]) -> list[str]:
    """What the first later release declaring any dependency declares and
    this one does not (``later_requires``: oldest first, read lazily)."""
    own = unconditional_names(own_requires)
    for requires in later_requires:
        if names := unconditional_names(requires):
            return [n for n in names if n not in own]
    return []


def later_requires(name: str, version: str) -> Iterator[list[str]]:
    try:
        for later in index.list_releases(name):
            if later > Version(version):
                text = index.release_metadata(name, str(later))
                yield index.parse_core_metadata(text)[1] if text else []
    except index.IndexLookupError:
        return


def target(requirements: Iterable[str], tools: Iterable[str] = ()) -> Target:
    """The target, with what the index says of its release where it says."""
    found = Target(tuple(requirements), tuple(tools),
                   pinned_release(requirements))
    if found.release is None:
        return found
    name, version = found.release
    try:
        info = index.release_info(name, version)
        if info is None:
            return found
        if info.yanked:
            why = f" ({info.yanked_reason})" if info.yanked_reason else ""
            found.problem = ("skip", f"{name}=={version} is yanked on the "
                                     f"index{why}")
        if info.upload_time:
            found.exclude_newer = exclude_newer_for(info.upload_time)
        if metadata := index.release_metadata(name, version):
            declared, requires = index.parse_core_metadata(metadata)
            found.extras = wanted_extras(declared)
            found.requires_dist = tuple(requires)
    except index.IndexLookupError:  # uv's own try says what is wrong
        pass
    return found


def prerelease_arguments(target: Target) -> list[str]:
    """uv's options: no pre-release, except of a package that the spec or
    the release requires with a pre-release specifier."""
    allowed: dict[str, None] = {}
    for text in (*target.requirements, *target.requires_dist):
        try:
            requirement = Requirement(text)
            if any(Version(s.version.rstrip(".*")).is_prerelease
                   for s in requirement.specifier):
                allowed[canonicalize_name(requirement.name)] = None
        except (InvalidRequirement, InvalidVersion):
            continue
    return ["--prerelease", "disallow", *[
        arg for name in allowed
        for arg in ("--prerelease-package", f"{name}=allow")]]


@dataclass
class Installation:
    """How a spec was installed, or the problem why it could not be."""
    problem: Problem | None = None
    way: str | None = None
    exclude_newer: str | None = None
    requirements: list[str] = field(default_factory=list)
    # {way, outcome: ok, install-failed, import-failed or smoke-failed,
    # reason} of each way tried.
    attempts: list[dict[str, str]] = field(default_factory=list)
    implementation: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None  # venv.read_environment's
    installed_at: str | None = None  # an earlier run's, found intact
    # uv's output where the last way failed to install: kept with a failed
    # attempt's record, not in the resolution.
    detail: str = ""

    @property
    def packages(self) -> dict[str, str]:
        return (self.environment or {}).get("packages", {})

    def resolution(self) -> dict[str, Any]:
        """The ``resolution`` field of a raw result."""
        reused = {"reused": True, "installed_at": self.installed_at} \
            if self.installed_at else {}
        return {"way": self.way, "exclude_newer": self.exclude_newer,
                "requirements": list(self.requirements),
                "attempts": list(self.attempts),
                "implementation": self.implementation, **reused}


def stops_the_ladder(problem: Problem,
                     release: tuple[str, str] | None) -> bool:
    """Whether no later way can help: the index lacks what the spec names,
    is out of reach, or has no wheel of the release for this Python."""
    kind, reason = problem
    return kind == "bad-input" or bool(
        re.match(r"package index \S+ unreachable", reason)) or (
        kind == "skip" and release is not None
        and reason.startswith(f"no wheel of {release[0]}=="))


def give_up(attempts: list[dict[str, str]], first: Problem | None) -> Problem:
    """Once every way failed: the first problem where it was a skip and no
    way installed, else an error with the last reason."""
    if first and first[0] == "skip" and \
            all(a["outcome"] == "install-failed" for a in attempts):
        return first
    return "error", f"{attempts[-1]['reason']} (every way failed)"


def outcomes_by_way(attempts: list[dict[str, str]]) -> dict[str, str]:
    """{way: outcome}; a way left out for repeating the one before shares
    that one's outcome."""
    found, last = {}, None
    tried = {a["way"]: a["outcome"] for a in attempts}
    for way in WAYS:
        last = tried.get(way, last)
        if last is not None:
            found[way] = last
    return found
