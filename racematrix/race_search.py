"""Finding the adjacent pair of releases where the race's verdict flips,
when the outcome is flaky and some releases cannot be built.

The search is ``git bisect`` with two changes: a "not reproduced" verdict is
only given after enough runs that, at the failure rate measured at the
reproducing end of the range, missing the bug has a chance below
``MISS_PROBABILITY``; and a release that cannot be built or imported is
skipped like ``git bisect skip``, trying its neighbours instead.
"""
from dataclasses import asdict, dataclass, field

from .search import Probed, boundary, find_ends, narrow, span_text
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
    test = Probed(versions, probe)
    versions, tested = test.versions, test.by_version

    def finish(boundary, summary, needed=None, rate=None):
        return BisectResult(versions, test.in_order(), boundary, summary,
                            needed, rate)

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
        return finish(boundary(tested, versions, lo, hi),
                      f"the verdict flips between {versions[lo]} and "
                      f"{versions[hi]}; the releases between "
                      f"({span_text(versions[lo + 1:hi])}) could not be "
                      f"tested", needed, rate)
    change = "fixed" if low_verdict == "reproduced" else "introduced"
    return finish(boundary(tested, versions, lo, hi),
                  f"the bug is {change} between {versions[lo]} "
                  f"({tested[versions[lo]].verdict}) and {versions[hi]} "
                  f"({tested[versions[hi]].verdict})", needed, rate)


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
