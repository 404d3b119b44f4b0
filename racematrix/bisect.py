"""Finding the adjacent pair of releases where the verdict flips, when the
outcome is flaky and some releases cannot be built.

The search is ``git bisect`` with two changes: a "not reproduced" verdict is
only given after enough runs that, at the failure rate measured at the
reproducing end of the range, missing the bug has a chance below
``MISS_PROBABILITY``; and a release that cannot be built or imported is
skipped like ``git bisect skip``, trying its neighbours instead.
"""
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .results import write_text_atomic
from .stats import runs_to_rule_out, wilson_interval

MISS_PROBABILITY = 0.001
# How many times the first look's runs each end gets when neither end
# reproduced at first.
ESCALATION = 10
USABLE = ("reproduced", "not-reproduced")


@dataclass
class Probe:
    """What testing one release found."""
    version: str
    verdict: str
    runs: int = 0
    failures: int = 0
    reason: str = ""
    seconds: float = 0.0
    # How the release was installed (``companions.Installation``): the way
    # of the ladder that won, the index date it used, the requirements
    # passed, every way tried, the resolved version of every package, and
    # where the code under test came from.
    way: str | None = None
    exclude_newer: str | None = None
    requirements: list = field(default_factory=list)
    attempts: list = field(default_factory=list)
    packages: dict = field(default_factory=dict)
    implementation: dict | None = None

    def to_json(self):
        return asdict(self)


@dataclass
class BisectResult:
    versions: list
    tested: list
    boundary: dict | None
    summary: str
    runs_to_rule_out: int | None
    rate_used: float | None

    @property
    def decisive_probes(self):
        return len({p.version for p in self.tested if p.verdict in USABLE})


def bisect_releases(versions, probe, initial_runs):
    """Search ``versions`` (oldest first) for the adjacent pair whose
    verdicts differ.

    ``probe(version, min_runs)`` tests one release and returns a ``Probe``:
    "reproduced" as soon as one target failure is seen, "not-reproduced"
    once ``min_runs`` runs passed, "error"/"skipped" when the release cannot
    be tested. Calling it again for the same version with a larger
    ``min_runs`` adds runs to what it already has.
    """
    versions = [str(v) for v in versions]
    tested = {}

    def test(index, min_runs):
        result = probe(versions[index], min_runs)
        tested[versions[index]] = result
        return result


    def finish(boundary, summary, needed=None, rate=None):
        order = {v: i for i, v in enumerate(versions)}
        return BisectResult(versions, sorted(tested.values(),
                                             key=lambda p: order[p.version]),
                            boundary, summary, needed, rate)

    lo, hi, why = find_ends(
        versions, lambda i: test(i, initial_runs).verdict in USABLE)
    if why:
        return finish(None, why)
    ends = tested[versions[lo]], tested[versions[hi]]
    if not any(p.verdict == "reproduced" for p in ends):
        # A rare bug can hide from a first look at both ends; look harder
        # before saying it is absent from the range.
        ends = test(lo, ESCALATION * initial_runs), \
            test(hi, ESCALATION * initial_runs)
    reproducing = [p for p in ends if p.verdict == "reproduced"]
    if not reproducing:
        return finish(None, f"the bug was reproduced at neither end "
                            f"({versions[lo]}: 0 of {ends[0].runs} runs, "
                            f"{versions[hi]}: 0 of {ends[1].runs}): nothing "
                            f"flips in this range")
    # The weakest rate we can vouch for: the lower 95% bound at the
    # reproducing end(s), so that "not reproduced" stays safe.
    rate = min(wilson_interval(p.failures, p.runs)[0] for p in reproducing)
    rate = max(rate, 1e-4)
    needed = runs_to_rule_out(rate, MISS_PROBABILITY)
    for index in (lo, hi):
        if tested[versions[index]].verdict == "not-reproduced":
            test(index, needed)
    if tested[versions[lo]].verdict == tested[versions[hi]].verdict:
        return finish(None, f"both ends ({versions[lo]}, {versions[hi]}) are "
                            f"{tested[versions[lo]].verdict}: nothing flips "
                            f"in this range", needed, rate)
    low_verdict = tested[versions[lo]].verdict
    lo, hi, stuck = narrow(
        lo, hi, low_verdict, lambda i: test(i, needed).verdict,
        lambda i: versions[i] in tested
        and tested[versions[i]].verdict not in USABLE, USABLE)
    if stuck:
        return finish(_boundary(tested, versions, lo, hi),
                      f"the verdict flips between {versions[lo]} and "
                      f"{versions[hi]}; the releases between "
                      f"({span_text(versions[lo + 1:hi])}) could not be "
                      f"tested", needed, rate)
    change = "fixed" if low_verdict == "reproduced" else "introduced"
    return finish(_boundary(tested, versions, lo, hi),
                  f"the bug is {change} between {versions[lo]} "
                  f"({tested[versions[lo]].verdict}) and {versions[hi]} "
                  f"({tested[versions[hi]].verdict})", needed, rate)


def find_ends(versions, usable_at, verb=("test", "tested")):
    """The first and the last release for which ``usable_at(index)`` holds
    (it tests the release), searched from either end: (lo, hi, None), or
    (lo, hi, why) where the range has no two such releases. ``verb`` words
    the reason: ("time", "timed") for the bisect on time."""
    if not versions:
        return None, None, f"no release to {verb[0]} in the range"
    lo = next((i for i in range(len(versions)) if usable_at(i)), None)
    if lo is None:
        return None, None, f"no release in the range could be {verb[1]}"
    hi = next((i for i in range(len(versions) - 1, lo, -1) if usable_at(i)),
              None)
    if hi is None:
        return lo, None, (f"only {versions[lo]} could be {verb[1]}; nothing "
                          f"to compare it with")
    return lo, hi, None


def narrow(lo, hi, low_verdict, decide, known_unusable, usable):
    """``git bisect`` between indices ``lo`` and ``hi``, whose verdicts
    differ, with skipping: ``decide(index)`` tests a release and returns its
    verdict; one not in ``usable`` is skipped, and the untested release
    nearest the middle is tried instead (``known_unusable(index)`` says a
    release was already found untestable). Returns (lo, hi, stuck): stuck
    is True when no release between could be placed."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        candidates = sorted(range(lo + 1, hi), key=lambda i: (abs(i - mid), i))
        for index in candidates:
            if known_unusable(index):
                continue
            verdict = decide(index)
            if verdict in usable:
                break
        else:
            return lo, hi, True
        if verdict == low_verdict:
            lo = index
        else:
            hi = index
    return lo, hi, False


def span_text(between):
    """``0.25.0``, or ``3 releases, 0.25.0 to 0.27.0``."""
    return between[0] if len(between) == 1 else \
        f"{len(between)} releases, {between[0]} to {between[-1]}"


def _boundary(tested, versions, lo, hi):
    return {"before": {"version": versions[lo],
                       "verdict": tested[versions[lo]].verdict},
            "after": {"version": versions[hi],
                      "verdict": tested[versions[hi]].verdict}}


def decide_probe(failures, runs, min_runs, env_problem=None):
    """A probe's verdict from what it has seen so far, or None to keep
    running."""
    if env_problem:
        return env_problem
    if failures:
        return "reproduced"
    if runs >= min_runs:
        return "not-reproduced"
    return None


def probe_limit(n):
    return (max(n, 1) - 1).bit_length() + 3


def render_bisect(data):
    pins = " ".join(data["with"]) or "none"
    lines = [f"# Bisect: {data['package']} on Python {data['python']} "
             f"(simulator {'on' if data['sim'] else 'off'})", "",
             f"**{data['summary']}.**", "",
             f"Releases in range: {len(data['releases'])} "
             f"({data['releases'][0] if data['releases'] else '–'} to "
             f"{data['releases'][-1] if data['releases'] else '–'}); "
             f"extra requirements: {pins}; decisive probes: "
             f"{data['decisive_probes']} (limit {data['probe_limit']}); "
             f"{data['seconds']} s.", ""]
    excluded = data.get("excluded_by_requires_python") or []
    if excluded:
        lines += [f"Left out before the search: {len(excluded)} releases "
                  f"({_span(excluded)}) whose Requires-Python excludes "
                  f"Python {data['python']}.", ""]
    if data["rate_used"] is not None:
        lines += [f"A release counts as not reproduced after "
                  f"{data['runs_to_rule_out']} passing runs: the lower 95% "
                  f"bound of the failure rate at the reproducing end, "
                  f"{100 * data['rate_used']:.1f}% per run, misses the bug "
                  f"that often with probability below "
                  f"{data['miss_probability']:.1%}.", ""]
    lines += ["| version | verdict | runs | failures | installed | reason |",
              "|---|---|---|---|---|---|"]
    shown = data.get("shown_packages", [])
    for first, last, probe, count in condensed_probes(data["tested"]):
        version = first if count == 1 else f"{first} – {last} ({count} releases)"
        lines.append(f"| {version} | {probe['verdict']} | {probe['runs']} | "
                     f"{probe['failures']} | "
                     f"{installed_cell(probe, shown)} | "
                     f"{probe['reason'].replace('|', '/')} |")
    provenance = data["provenance"]
    lines += ["", f"Command: `{provenance['command']}`; finished "
                  f"{provenance['finished']} on {provenance['machine']['os']}, "
                  f"{provenance['machine']['cores']} cores."]
    return "\n".join(lines) + "\n"


def installed_cell(probe, shown):
    """How a probe's release was installed, for the table: the way, the
    index date, and the resolved versions of the packages in ``shown``."""
    if not probe.get("way"):
        tried = ", ".join(a["way"] for a in probe.get("attempts", []))
        return f"tried {tried}" if tried else ""
    date = f" as of {probe['exclude_newer'][:10]}" if probe.get("exclude_newer") else ""
    packages = probe.get("packages", {})
    versions = ", ".join(f"{name} {packages[name]}" for name in shown
                         if name in packages)
    return f"{probe['way']}{date}" + (f": {versions}" if versions else "")


def bisect_stem(package, python, sim, start=None, end=None):
    """The file name (without suffix) of a bisect: by package and Python,
    and by range where ``--from`` or ``--to`` narrowed it, so that a
    narrower search never replaces a wider one."""
    stem = f"{package}-py{python}"
    if start or end:
        stem += f"-{start or 'first'}-{end or 'last'}"
    return stem + ("" if sim else "-sim0")


def widest_bisects(bisects):
    """Of several bisects of the same package, Python, simulator flag and
    extra requirements, the one over the most releases (the newest among
    equals); others are dropped. For a report that shows one per search."""
    kept = {}
    for data in bisects:
        key = (data.get("package"), data.get("python"), data.get("sim"),
               tuple(data.get("with") or ()))
        rank = (len(data.get("releases") or ()),
                data.get("provenance", {}).get("finished", ""))
        if key not in kept or rank > kept[key][0]:
            kept[key] = (rank, data)
    return [data for _, data in kept.values()]


def _span(versions):
    return versions[0] if len(versions) == 1 else \
        f"{versions[0]} to {versions[-1]}"


def condensed_probes(tested):
    """Consecutive releases that could not be tested for the same reason
    (no wheel for this Python, or one import error), as one entry each:
    (first, last, probe, count)."""
    groups = []
    for probe in tested:
        key = _untested_reason(probe)
        if key and groups and groups[-1][4] == key:
            first, _, kept, count, _ = groups[-1]
            groups[-1] = (first, probe["version"], kept, count + 1, key)
        else:
            groups.append((probe["version"], probe["version"], probe, 1, key))
    return [(first, last, dict(probe, reason=key) if count > 1 else probe,
             count) for first, last, probe, count, key in groups]


def _untested_reason(probe):
    """The reason a release could not be tested, without its version, or
    None for a release that was tested."""
    if probe["verdict"] in USABLE:
        return None
    reason = probe["reason"]
    if probe["verdict"] == "skipped" and reason.startswith("no wheel"):
        return "no wheel for " + reason.rsplit(" for ", 1)[-1]
    return reason


def rerender_bisects(folder):
    """Rewrite every ``.md`` in ``folder`` from its ``.json``."""
    for path in sorted(Path(folder).glob("*.json")):
        data = json.loads(path.read_text())
        if data.get("metric") == "launch-time":
            from .timing import render_time_bisect
            text = render_time_bisect(data)
        else:
            text = render_bisect(data)
        write_text_atomic(path.with_suffix(".md"), text)
