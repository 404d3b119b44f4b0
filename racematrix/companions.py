"""Installing one release the way its own users had it.

A fixed ladder of ways, the first that installs, imports and passes a
smoke launch wins:

1. ``as-asked``: the requirements as given, newest companions;
2. ``as-of-upload``: the same, with the index as it was one day after the
   release's upload (``uv pip compile --exclude-newer``);
3. ``as-of-upload+extras``: that, plus the release's own extras that the
   user wants (``RACEMATRIX_EXTRAS``, default ``cu12``);
4. ``as-of-upload+extras+named``: that, plus the companions named without
   pins: the other packages of the spec, and the dependencies that the next
   release declaring any declares and this one does not.

Each way resolves with ``uv pip compile`` and makes the environment exactly
that with ``uv pip sync``, so that no way inherits packages from the one
before. Pre-releases are never picked, except for a package that the
release itself (or the user) requires with a pre-release specifier.

The release is the spec's first requirement pinned with ``==``; the code
under test must come from the spec's target distribution. Nothing here
knows about any particular package: the module under test, the provider
and the smoke script are the caller's.
"""
import json
import os
import re
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import timedelta, timezone

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from . import index

WAYS = ("as-asked", "as-of-upload", "as-of-upload+extras",
        "as-of-upload+extras+named")
# Companions released together with a release usually land the same day.
UPLOAD_MARGIN = timedelta(days=1)
DEFAULT_EXTRAS = "cu12"
EXTRAS_VARIABLE = "RACEMATRIX_EXTRAS"


@dataclass(frozen=True)
class Way:
    """One rung of the ladder: what is passed to the resolver."""
    name: str
    requirements: tuple
    exclude_newer: str | None = None


@dataclass
class Attempt:
    way: str
    outcome: str  # "ok", "install-failed", "import-failed", "smoke-failed"
    reason: str = ""
    # The installer's whole output where it failed: kept with a failed
    # attempt's record (``rawresult.record``), not in the resolution.
    detail: str = field(default="", repr=False, compare=False)


@dataclass
class Installation:
    """How a spec was installed (or why it could not be): ``problem`` is
    None or (kind, reason) with kind "skip", "bad-input" or "error"."""
    problem: tuple | None = None
    way: str | None = None
    exclude_newer: str | None = None
    requirements: list = field(default_factory=list)
    attempts: list = field(default_factory=list)
    implementation: dict | None = None
    packages: dict = field(default_factory=dict)

    @property
    def detail(self):
        """The full text behind ``problem``: the last failed way's output."""
        return next((a.detail for a in reversed(self.attempts) if a.detail),
                    "")

    def resolution(self):
        """The ``resolution`` field of a raw result."""
        return {"way": self.way, "exclude_newer": self.exclude_newer,
                "requirements": list(self.requirements),
                "attempts": [{key: value for key, value in asdict(a).items()
                              if key != "detail"} for a in self.attempts],
                "implementation": self.implementation}


# ---- pure decisions -------------------------------------------------------

def pinned_release(requirements):
    """(name, version) of the first requirement pinned to one version with
    ``==``: the release being installed; None when nothing is pinned."""
    for text in requirements:
        requirement = Requirement(text)
        specifiers = list(requirement.specifier)
        if len(specifiers) == 1 and specifiers[0].operator in ("==", "===") \
                and "*" not in specifiers[0].version:
            return canonicalize_name(requirement.name), specifiers[0].version
    return None


def exclude_newer_for(upload_time, margin=UPLOAD_MARGIN):
    """The ``--exclude-newer`` timestamp for a release uploaded at
    ``upload_time`` (an aware datetime): one day later, UTC, RFC 3339."""
    moment = (upload_time + margin).astimezone(timezone.utc)
    if moment.microsecond:  # whole seconds, rounded up: never before a day
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def wanted_extras(environ=os.environ):
    """The extras a release is installed with where it declares them:
    ``RACEMATRIX_EXTRAS`` (space-separated), default ``cu12``."""
    text = environ.get(EXTRAS_VARIABLE, DEFAULT_EXTRAS)
    return tuple(canonicalize_name(e) for e in text.split())


def pick_extras(declared, wanted):
    """The declared extras that are wanted, in the release's own order.
    Only exact names count: ``cu12`` picks ``cu12``, never ``test-cu12``."""
    wanted = {canonicalize_name(w) for w in wanted}
    return [e for e in declared if canonicalize_name(e) in wanted]


def with_extras(text, extras):
    """A requirement string with ``extras`` added to its own."""
    requirement = Requirement(text)
    if not extras or set(extras) <= requirement.extras:
        return text
    requirement.extras |= set(extras)
    return str(requirement)


def unpinned(text):
    """A requirement by name only (extras kept; version and marker
    dropped)."""
    requirement = Requirement(text)
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    return f"{requirement.name}{extras}"


def unconditional_names(requires_dist):
    """Canonical names of the dependencies that every install gets (no
    extra in the marker)."""
    names = []
    for text in requires_dist:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if requirement.marker and "extra" in str(requirement.marker):
            continue
        name = canonicalize_name(requirement.name)
        if name not in names:
            names.append(name)
    return names


def successor_companions(version, later_requires_dist, own_requires_dist):
    """Names that the nearest later release declaring any dependency
    declares and ``version`` does not. ``later_requires_dist`` is
    [(version, requires_dist)] of later releases, oldest first."""
    own = set(unconditional_names(own_requires_dist))
    for later, requires in later_requires_dist:
        if Version(str(later)) <= Version(str(version)):
            continue
        names = unconditional_names(requires)
        if names:
            return [n for n in names if n not in own]
    return []


def prerelease_arguments(requirements, release_requires_dist=()):
    """uv options so that pre-releases are never picked, except for a
    package that a requirement (the user's, or the release's own) names
    with a pre-release specifier."""
    allowed = []
    for text in [*requirements, *release_requires_dist]:
        try:
            requirement = Requirement(text)
        except InvalidRequirement:
            continue
        if any(Version(s.version.rstrip(".*")).is_prerelease
               for s in requirement.specifier if s.version.rstrip(".*")):
            name = canonicalize_name(requirement.name)
            if name not in allowed:
                allowed.append(name)
    return ["--prerelease", "disallow",
            *[arg for name in allowed
              for arg in ("--prerelease-package", f"{name}=allow")]]


def plan_ways(requirements, tools, release=None, exclude_newer=None,
              extras=(), companions=()):
    """The ladder for one spec, without rungs that would repeat an earlier
    one. ``requirements`` is the spec's, ``tools`` what every environment
    gets on top; ``release`` (name, version) is the pinned release."""
    requirements = list(requirements)
    ways = [Way("as-asked", (*requirements, *tools))]
    if release is None or exclude_newer is None:
        return ways
    ways.append(Way("as-of-upload", (*requirements, *tools), exclude_newer))
    name = release[0]
    position = next(i for i, r in enumerate(requirements)
                    if canonicalize_name(Requirement(r).name) == name)
    extended = list(requirements)
    extended[position] = with_extras(requirements[position], extras)
    ways.append(Way("as-of-upload+extras", (*extended, *tools),
                    exclude_newer))
    named = [extended[position]]
    for i, text in enumerate(requirements):
        if i != position:
            named.append(unpinned(text))
    present = {canonicalize_name(Requirement(r).name) for r in named}
    named += [c for c in companions if canonicalize_name(c) not in present]
    ways.append(Way("as-of-upload+extras+named", (*named, *tools),
                    exclude_newer))
    unique, seen = [], set()
    for way in ways:
        key = (way.requirements, way.exclude_newer)
        if key not in seen:
            seen.add(key)
            unique.append(way)
    return unique


# install.classify_install_failure's reason for an index it cannot reach.
UNREACHABLE = re.compile(r"package index \S+ unreachable")


def stops_the_ladder(problem, release):
    """Whether a failed way's (kind, reason) ends the ladder: the spec
    names something the index lacks, the release itself has no wheel
    for this Python, or the index cannot be reached (no other way can
    change any of these)."""
    kind, reason = problem
    if kind == "bad-input" or UNREACHABLE.match(reason):
        return True
    return kind == "skip" and release is not None and \
        reason.startswith(f"no wheel of {release[0]}==")


def give_up(attempts, problems):
    """(kind, reason) once every way failed: "skip" when the first failure
    was a missing wheel and no way got as far as an install, else "error"
    with the last way's reason."""
    first = next((p for p in problems if p), None)
    if first and first[0] == "skip" and \
            all(a.outcome == "install-failed" for a in attempts):
        return first
    return "error", f"{attempts[-1].reason} (every way failed)"


def outcomes_by_way(attempts):
    """{way: outcome} over the whole ladder: a rung that was not tried
    because it repeated the one before shares that rung's outcome."""
    tried = {a["way"]: a["outcome"] for a in attempts}
    found, last = {}, None
    for way in WAYS:
        last = tried.get(way, last)
        if last is not None:
            found[way] = last
    return found


def parse_pins(compiled):
    """{name: version} from ``uv pip compile`` output."""
    pins = {}
    for line in compiled.splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            pins[canonicalize_name(name.split("[")[0].strip())] = \
                version.split(";")[0].strip()
    return pins


def parse_smoke(output):
    """(outcome, reason, implementation) from the smoke script's output:
    it prints one JSON line when the module imported and another when the
    launch returned."""
    implementation, launched = None, False
    for line in output.splitlines():
        if line.startswith("{") and '"stage"' in line:
            record = json.loads(line)
            if record["stage"] == "imported":
                implementation = record["implementation"]
            elif record["stage"] == "launched":
                launched = True
    if implementation is None:
        return "import-failed", last_error_line(output), None
    if not launched:
        return "smoke-failed", last_error_line(output), implementation
    return "ok", "", implementation


def check_provider(implementation, provider):
    """None when the module under test comes from ``provider``, else the
    reason it does not."""
    got = implementation.get("distribution")
    if got and canonicalize_name(got) == canonicalize_name(provider):
        return None
    source = got or "no installed distribution"
    return (f"{implementation['module']} comes from {source}, not from "
            f"{provider}: this release does not provide the code under test")


def last_error_line(output):
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if ("Error" in line or "error" in line) and not line.startswith("{"):
            return line[:400]
    return (lines[-1] if lines else "no output")[:400]


# ---- the real ladder ------------------------------------------------------

class Ladder:
    """Installs one spec into an existing virtual environment.

    ``classify(output)`` turns a failed resolution's output into (kind,
    reason) as ``runner.classify_install_failure`` does; ``smoke`` is the
    script run in the environment (argv: module, provider), ``module`` the
    module under test and ``provider`` the distribution that must provide
    it.
    """

    def __init__(self, python, *, tools, classify, smoke, module, provider,
                 sim_environ, log=print, timeout=900):
        self.python = python
        self.tools = tuple(tools)
        self.classify = classify
        self.smoke = smoke
        self.module = module
        self.provider = provider
        self.sim_environ = sim_environ
        self.log = log
        self.timeout = timeout

    def install(self, requirements, every_way=False):
        """Try the ladder's ways in order; the first that works wins. With
        ``every_way`` the later ways are tried too (a survey of which ways
        work; the environment is left as the last way made it)."""
        release = pinned_release(requirements)
        facts = self._release_facts(release) if release else {}
        if facts.get("problem"):
            return Installation(problem=facts["problem"])
        plan = dict(requirements=requirements, tools=self.tools,
                    release=release, exclude_newer=facts.get("exclude_newer"),
                    extras=facts.get("extras", ()))
        prerelease = prerelease_arguments(requirements,
                                          facts.get("requires_dist", ()))
        ways = [w for w in plan_ways(**plan) if w.name != WAYS[3]]
        attempts, problems, implementation, won = [], [], None, None
        tried = set()
        while ways:
            way = ways.pop(0)
            tried.add((way.requirements, way.exclude_newer))
            attempt, problem, pins, found = self._try(way, prerelease)
            attempts.append(attempt)
            implementation = found or implementation
            date = f" (index as of {way.exclude_newer})" if way.exclude_newer else ""
            self.log(f"install {' '.join(requirements)}, {way.name}{date}: "
                     f"{attempt.outcome}"
                     f"{': ' + attempt.reason if attempt.reason else ''}")
            if attempt.outcome == "ok" and won is None:
                won = Installation(None, way.name, way.exclude_newer,
                                   list(way.requirements), attempts, found, pins)
                if not every_way:
                    return won
            if problem and stops_the_ladder(problem, release):
                return won or Installation(problem, attempts=attempts)
            problems.append(problem)
            if not ways and plan["exclude_newer"] and way.name != WAYS[3]:
                # Companions are only looked up once the cheaper ways failed.
                named = [w for w in plan_ways(
                    **plan, companions=self._successor_companions(release, facts))
                    if w.name == WAYS[3]
                    and (w.requirements, w.exclude_newer) not in tried]
                ways.extend(named)
        return won or Installation(give_up(attempts, problems),
                                   attempts=attempts,
                                   implementation=implementation)

    def _release_facts(self, release):
        name, version = release
        try:
            info = index.release_info(name, version)
        except index.IndexLookupError:
            return {}
        if info is None:
            return {}
        if info.yanked:
            why = f" ({info.yanked_reason})" if info.yanked_reason else ""
            return {"problem": ("skip", f"{name}=={version} is yanked on the "
                                        f"index{why}")}
        facts = {"exclude_newer": exclude_newer_for(info.upload_time)
                 if info.upload_time else None}
        try:
            metadata = index.release_metadata(name, version)
        except index.IndexLookupError:
            metadata = None
        if metadata:
            declared, requires = index.parse_core_metadata(metadata)
            facts["extras"] = tuple(pick_extras(declared, wanted_extras()))
            facts["requires_dist"] = tuple(requires)
        return facts

    def _successor_companions(self, release, facts):
        name, version = release
        try:
            later = [r.version for r in index.project_releases(name)
                     if r.version > Version(version)]
        except index.IndexLookupError:
            return []

        def declared():
            for candidate in later:
                text = index.release_metadata(name, str(candidate))
                if text:
                    requires = index.parse_core_metadata(text)[1]
                    yield candidate, requires
                    if unconditional_names(requires):
                        return
        try:
            return successor_companions(version, list(declared()),
                                        facts.get("requires_dist", ()))
        except index.IndexLookupError:
            return []

    def _run(self, command, **kwargs):
        return subprocess.run(command, capture_output=True, text=True,
                              timeout=self.timeout, **kwargs)

    def _try(self, way, prerelease):
        """(Attempt, problem or None, pins, implementation) for one way."""
        date = ["--exclude-newer", way.exclude_newer] if way.exclude_newer else []
        # --color never: FORCE_COLOR (set on CI) would colour the
        # requirements that sync reads back.
        compiled = self._run(["uv", "pip", "compile", "-q", "--no-header",
                              "--color", "never",
                              "--python", self.python, "--only-binary",
                              ":all:", *prerelease, *date, "-"],
                             input="\n".join(way.requirements) + "\n")
        if compiled.returncode != 0:
            output = compiled.stdout + compiled.stderr
            problem = self.classify(output)
            return Attempt(way.name, "install-failed", problem[1],
                           output), problem, {}, None
        synced = self._run(["uv", "pip", "sync", "-q", "--color", "never",
                            "--python", self.python,
                            "--only-binary", ":all:", "-"],
                           input=compiled.stdout)
        if synced.returncode != 0:
            output = synced.stdout + synced.stderr
            problem = self.classify(output)
            return Attempt(way.name, "install-failed", problem[1],
                           output), problem, {}, None
        pins = parse_pins(compiled.stdout)
        smoke = self._run([self.python, "-c", self.smoke, self.module],
                          env=self.sim_environ)
        outcome, reason, implementation = parse_smoke(smoke.stdout + smoke.stderr)
        if outcome != "import-failed" and implementation and self.provider:
            wrong = check_provider(implementation, self.provider)
            if wrong:
                outcome, reason = "import-failed", wrong
        return Attempt(way.name, outcome, reason), None, pins, implementation
