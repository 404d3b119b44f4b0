"""Finding the adjacent pair of releases where the race's verdict flips,
when the outcome is flaky and some releases cannot be built.

The search is ``git bisect`` with two changes: a "not reproduced" verdict is
only given after enough runs that, at the failure rate measured at the
reproducing end of the range, missing the bug has a chance below
``MISS_PROBABILITY``; and a release that cannot be built or imported is
skipped like ``git bisect skip``, trying its neighbours instead.
"""
import math
from dataclasses import asdict, dataclass, field

from .outcomes import Outcome
from .rawresult import decide_verdict
from .search import (Probed, boundary, find_ends, guess_indices, narrow,
                     span_text)
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


def bisect_releases(versions, probe, initial_runs, guess=()):
    """Search ``versions`` (oldest first) for the adjacent pair whose
    verdicts differ; releases in ``guess`` are tried before the middle
    (``search.narrow``).

    ``probe(version, min_runs)`` tests one release and returns a ``Probe``:
    "reproduced" as soon as one target failure is seen, "not-reproduced"
    once ``min_runs`` runs passed, "error"/"skipped" when the release cannot
    be tested. Calling it again for the same version with a larger
    ``min_runs`` adds runs to what it already has; ``probe(version,
    min_runs, whole=True)`` runs on to ``min_runs`` runs whatever it sees
    (a failure rate, not a verdict).

    Where one end reproduces and its rate is known poorly, it first gets
    more runs (``firming_runs``): a release ruled out needs runs in
    proportion to the lower bound of that rate, so a few runs more at the
    end with the bug can spare many at each release without it.
    """
    test = Probed(versions, probe)
    versions, tested = test.versions, test.by_version

    def finish(boundary, summary, needed=None, rate=None):
        return BisectResult(versions, test.in_order(), boundary, summary,
                            needed, rate)

    # The ends' first look goes to the end of its runs: a rate, not only a
    # verdict. Later looks stop at the first failure.
    lo, hi, why = find_ends(
        versions, lambda i: test(i, initial_runs, whole=True).verdict
        in USABLE)
    if why:
        return finish(None, why)
    ends = tested[versions[lo]], tested[versions[hi]]
    if not any(p.verdict == "reproduced" for p in ends):
        # A rare bug can hide from a first look at both ends; look harder
        # before saying it is absent from the range.
        ends = test(lo, ESCALATION * initial_runs, whole=True), \
            test(hi, ESCALATION * initial_runs, whole=True)
    reproducing = [p for p in ends if p.verdict == "reproduced"]
    if not reproducing:
        return finish(None, f"the bug was reproduced at neither end "
                            f"({versions[lo]}: 0 of {ends[0].runs} runs, "
                            f"{versions[hi]}: 0 of {ends[1].runs}): nothing "
                            f"flips in this range")
    if len(reproducing) == 1:
        end = lo if ends[0].verdict == "reproduced" else hi
        # The releases to rule out: the other end, and about half the
        # probes between the ends.
        clean = 1 + math.ceil(math.log2(max(hi - lo, 2))) / 2
        runs = firming_runs(reproducing[0].failures, reproducing[0].runs,
                            clean)
        if runs > reproducing[0].runs:
            reproducing = [test(end, runs, whole=True)]
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
        and tested[versions[i]].verdict not in USABLE, USABLE,
        first=guess_indices(versions, guess))
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


# The most runs firming_runs gives the reproducing end: this many times
# its first look.
FIRMING_GROWTH = 16


def firming_runs(failures, runs, clean_probes):
    """How many runs the reproducing end should have in all, ``runs`` (no
    more) or a doubling of it, whichever makes the fewest runs in all: its
    own plus ``clean_probes`` releases ruled out, each with
    ``runs_to_rule_out`` at the lower 95% bound of the rate. Runs not yet
    made are counted at the rate seen so far (``failures`` of ``runs``)."""
    if not failures or not runs:
        return runs
    rate = failures / runs

    def cost(total):
        low = wilson_interval(round(rate * total), total)[0]
        return total + clean_probes * runs_to_rule_out(max(low, 1e-4),
                                                       MISS_PROBABILITY)
    best, total = runs, runs
    while total * 2 <= FIRMING_GROWTH * runs:
        total *= 2
        if cost(total) < cost(best):
            best = total
    return best


def decide_probe(failures, runs, min_runs, env_problem=None, whole=False):
    """A probe's verdict from what it has seen so far, or None to keep
    running; ``whole`` (runs asked for a rate) keeps it running to
    ``min_runs`` whatever it has seen."""
    if env_problem:
        return env_problem
    if runs < min_runs and (whole or not failures):
        return None
    return decide_verdict({Outcome.TARGET: failures, Outcome.PASS:
                           runs - failures, Outcome.OTHER: 0, Outcome.HANG: 0,
                           Outcome.SKIP: 0})[0]
