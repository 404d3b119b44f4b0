"""The bisect on launch time: the rule that tells two releases' launch
times apart, and the search for the adjacent pair where launch time jumps.

The rule compares whole distributions, never single launches, with two
one-sided tests: the Mann-Whitney U test (Wilcoxon rank-sum) on the launch
times, for a shift of the bulk, and Fisher's exact test on the share of
stalls (launches longer than a few times the fast end's median), for the
tail: a fixed simulator's launches are a mixture of quick ones and
lock-convoy stalls of seconds, and at some loads only the stalls differ.
Both need no assumption about the shape of the distribution, and both stay
right when launches past the limit are recorded at the limit (a censored
value outranks, and counts as a stall beyond, every finished launch, as it
should when both releases share the limit). Launches are added in batches
until the rule decides or a cap is reached; each look tests at ``alpha``
divided by the number of looks the cap allows, and each of the two tests at
half of that (Bonferroni), so looking again does not inflate the error
rate. Both tests are SciPy's (``racematrix.stats``).
"""
import math
from dataclasses import asdict, dataclass, field

from .errors import ConfigError
from .search import (Probed, boundary, find_ends, guess_indices, narrow,
                     probe_limit, span_text)
from .stats import fisher_greater, mann_whitney_greater, quantile


@dataclass(frozen=True)
class TimeRule:
    """How launches are taken and compared: ``first`` launches at first,
    ``step`` more at each further look, at most ``cap``; every look tests at
    ``alpha`` / (number of looks the cap allows). Launch times drift with
    the machine's load, so nothing is compared with launches taken at
    another time: the ends' launches alternate with each other, and a
    release being placed is compared only with the ends' launches taken in
    turn with its own (release, fast end, slow end, release, ...)."""
    alpha: float = 0.01
    # 7 launches a side are the fewest where a complete split (every
    # launch of one slower than every launch of the other) decides at the
    # first look: p = 1 / C(14, 7) = 0.00029 < 0.01 / 5 / 2. (Smaller
    # steps mean more looks, each at a smaller alpha: with steps of 4, a
    # 1.5x slowdown under changing load was no longer placed.)
    first: int = 7
    step: int = 7
    cap: int = 35
    stall_factor: float = 3.0

    def __post_init__(self):
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha must be in (0, 1), got {self.alpha}")
        if not 1 <= self.first <= self.cap or self.step < 1 or \
                not self.stall_factor > 1:
            raise ConfigError(f"need 1 <= first <= cap, step >= 1 and "
                              f"stall_factor > 1, got "
                              f"first={self.first}, step={self.step}, "
                              f"cap={self.cap}, "
                              f"stall_factor={self.stall_factor}")

    @property
    def looks(self):
        return 1 + math.ceil((self.cap - self.first) / self.step)

    @property
    def alpha_per_look(self):
        return self.alpha / self.looks

    def launches_at(self, look):
        """Launches wanted at look 0, 1, ...: first, first+step, ..., cap."""
        return min(self.first + look * self.step, self.cap)

    def describe(self):
        return (f"slower = one-sided Mann-Whitney U on launch times (launches "
                f"past the limit ranked at the limit) or one-sided Fisher "
                f"exact test on the share of stalls (launches over "
                f"{self.stall_factor:g} x the fast end's median, or cut at "
                f"the limit), each at "
                f"half the look's alpha; {self.first} launches, then "
                f"{self.step} more per look up to {self.cap}; each look at "
                f"p < {self.alpha:g}/{self.looks} = {self.alpha_per_look:.4g};"
                f" a release's launches alternate with the ends' and are "
                f"compared only with the ends' launches taken in turn with "
                f"them")


def slower(x, y, stall_at, limit=math.inf):
    """p-values that launches ``x`` are slower than ``y``: by ranks (the
    bulk of the launches), and by the share of stalls, launches longer than
    ``stall_at`` seconds or cut at ``limit`` (the tail: a lock convoy
    stalls a few launches for seconds while the rest run as before). A
    launch cut at the limit is a stall whatever the fast end's median has
    drifted to since the limit was set."""
    def stalled(s):
        return s > stall_at or s >= limit
    stalls = (sum(map(stalled, x)), sum(map(stalled, y)))
    return {"rank": mann_whitney_greater(x, y)[1],
            "stalls": fisher_greater(stalls[0], len(x), stalls[1], len(y))}


def significant(p_values, rule):
    """Either test below its share of the look's alpha (Bonferroni)."""
    return min(p_values.values()) < rule.alpha_per_look / len(p_values)


def compare_ends(old, new, rule, limit=math.inf):
    """Which way launch time moved from ``old`` to ``new`` samples:
    ("rose" | "fell" | None, p-values of rising, p-values of falling).
    A stall is a launch longer than ``rule.stall_factor`` times the median
    of the end taken as the fast one, or cut at ``limit``."""
    p_rose = slower(new, old, rule.stall_factor * quantile(old, 0.5), limit)
    p_fell = slower(old, new, rule.stall_factor * quantile(new, 0.5), limit)
    if significant(p_rose, rule) and not significant(p_fell, rule):
        return "rose", p_rose, p_fell
    if significant(p_fell, rule) and not significant(p_rose, rule):
        return "fell", p_rose, p_fell
    return None, p_rose, p_fell


def classify(samples, fast, slow, rule, limit=math.inf):
    """"slow" when ``samples`` are slower than the fast end's and not faster
    than the slow end's; "fast" the other way round; "between" when they
    differ from both ends; None when the launches so far cannot tell.
    Returns (verdict, p-values of slower than the fast end, p-values of
    faster than the slow end)."""
    stall_at = rule.stall_factor * quantile(fast, 0.5)
    p_slower = slower(samples, fast, stall_at, limit)
    p_faster = slower(slow, samples, stall_at, limit)
    verdict = {(True, False): "slow", (False, True): "fast",
               (True, True): "between"}.get(
        (significant(p_slower, rule), significant(p_faster, rule)))
    return verdict, p_slower, p_faster


SPEEDS = ("slow", "fast")


@dataclass
class TimeProbe:
    """What timing one release found; ``verdict`` is "slow"/"fast" once
    classified, "measured" for an end, "between"/"undecided" when the rule
    could not place it, "error"/"skipped" when it could not be timed."""
    version: str
    verdict: str = "measured"
    samples: list = field(default_factory=list)
    past_limit: int = 0
    race_errors: int = 0
    reason: str = ""
    seconds: float = 0.0
    p_values: dict = field(default_factory=dict)

    @property
    def usable(self):
        return self.verdict not in ("error", "skipped") and bool(self.samples)

    def to_json(self):
        data = asdict(self)
        data.update(n=len(self.samples),
                    median=quantile(self.samples, 0.5),
                    p95=quantile(self.samples, 0.95))
        return data


@dataclass
class TimeBisectResult:
    versions: list
    tested: list
    boundary: dict | None
    summary: str
    direction: str | None
    rule: TimeRule

    @property
    def decisive_probes(self):
        return len({p.version for p in self.tested if p.verdict in SPEEDS})

    def to_json(self):
        return {"releases": self.versions,
                "tested": [p.to_json() for p in self.tested],
                "boundary": self.boundary, "summary": self.summary,
                "direction": self.direction,
                "decisive_probes": self.decisive_probes,
                "probe_limit": probe_limit(len(self.versions)),
                "rule": {**asdict(self.rule), "looks": self.rule.looks,
                         "alpha_per_look": self.rule.alpha_per_look,
                         "text": self.rule.describe()}}


def bisect_on_time(versions, measure, rule=TimeRule(), guess=()):
    """Search ``versions`` (oldest first) for the adjacent pair where launch
    time jumps; releases in ``guess`` (e.g. the race bisect's pair) are
    placed before the middle is tried (``search.narrow``).

    ``measure(version, launches)`` times one release and returns a
    ``TimeProbe`` with at least ``launches`` samples (fewer only when its
    budget ran out), or with verdict "error"/"skipped" when the release
    cannot be timed; called again with more launches it adds to what it
    has. Where ``measure`` has a ``limit`` (seconds), samples at it were
    cut there, and count as stalls. Releases that cannot be timed, or that the rule cannot place, are
    skipped like ``git bisect skip``: the nearest untested neighbour is
    tried instead.
    """
    timed = Probed(versions, measure)
    versions, tested = timed.versions, timed.by_version

    def limit():  # the prober's, which it may lower after the first release
        value = getattr(measure, "limit", None)
        return math.inf if value is None else value

    def finish(boundary, summary, direction=None):
        for index in ends_at:
            end = tested[versions[index]]
            if end.usable and end.p_values:
                end.reason = (f"end of the range: {len(end.samples)} launches"
                              f", median {median_text(end)}; ends differ: p "
                              f"rising {_p_text(end.p_values['rose'])}, "
                              f"falling {_p_text(end.p_values['fell'])}")
        return TimeBisectResult(versions, timed.in_order(), boundary,
                                summary, direction, rule)


    ends_at = []
    lo, hi, why = find_ends(versions, lambda i: timed(i, rule.first).usable,
                            ("time", "timed"))
    if why:
        return finish(None, why)
    ends_at = [lo, hi]
    direction = None
    for look in range(rule.looks):
        # The ends in turn; then either one short of launches (one that
        # could not be timed further) topped up alone.
        timed(lo, rule.launches_at(look), alongside=(hi,))
        old, new = (timed(i, rule.launches_at(look)) for i in (lo, hi))
        direction, p_rose, p_fell = compare_ends(old.samples, new.samples,
                                                 rule, limit())
        for probe in (old, new):
            probe.p_values = {"rose": p_rose, "fell": p_fell}
        if direction or not (old.usable and new.usable):
            break
    if not direction:
        return finish(None, f"launch time does not differ between the ends "
                            f"({versions[lo]}: median "
                            f"{median_text(tested[versions[lo]])}, "
                            f"{versions[hi]}: median "
                            f"{median_text(tested[versions[hi]])}; "
                            f"p = {_p_text(p_rose)} rising, "
                            f"{_p_text(p_fell)} falling; needs < "
                            f"{rule.alpha_per_look / 2:.3g})")
    old_speed, new_speed = ("fast", "slow") if direction == "rose" \
        else ("slow", "fast")
    tested[versions[lo]].verdict = old_speed
    tested[versions[hi]].verdict = new_speed
    end_index = {old_speed: lo, new_speed: hi}
    ends_p_values = {"rose": p_rose, "fell": p_fell}

    def classified(index):
        """Launches added until the rule places the release, or the cap;
        each of its launches is followed by one of each end, and only
        those launches of the ends are compared with it."""
        verdict = None
        beside = {speed: [] for speed in end_index}
        for look in range(rule.looks):
            before = {speed: len(tested[versions[i]].samples)
                      for speed, i in end_index.items()}
            probe = timed(index, rule.launches_at(look),
                          alongside=(end_index["fast"], end_index["slow"]))
            if not probe.usable:
                return probe
            for speed, i in end_index.items():
                end = tested[versions[i]]
                end.verdict, end.p_values = speed, ends_p_values
                beside[speed] += end.samples[before[speed]:]
            if not (beside["fast"] and beside["slow"]):
                break  # an end can no longer be timed
            verdict, p_slower, p_faster = classify(
                probe.samples, beside["fast"], beside["slow"], rule, limit())
            probe.p_values = {"slower_than_fast_end": p_slower,
                              "faster_than_slow_end": p_faster}
            if verdict or len(probe.samples) < rule.launches_at(look):
                break
        probe.verdict = verdict or "undecided"
        probe.reason = _probe_reason(probe, rule) if probe.p_values else \
            "an end of the range could not be timed beside it"
        return probe

    lo, hi, stuck = narrow(
        lo, hi, old_speed, lambda i: classified(i).verdict,
        lambda i: versions[i] in tested
        and tested[versions[i]].verdict not in SPEEDS, SPEEDS,
        first=guess_indices(versions, guess))
    if stuck:
        return finish(boundary(tested, versions, lo, hi),
                      f"launch time {direction} between {versions[lo]} "
                      f"and {versions[hi]}; the releases between "
                      f"({span_text(versions[lo + 1:hi])}) could not be "
                      f"placed", direction)
    return finish(boundary(tested, versions, lo, hi),
                  f"launch time {direction} between {versions[lo]} (median "
                  f"{median_text(tested[versions[lo]])}) and {versions[hi]} "
                  f"(median {median_text(tested[versions[hi]])})", direction)


def median_text(probe):
    """The median, marked as a lower bound where half or more of the
    launches were cut at the limit (the median is then the limit's)."""
    median = quantile(probe.samples, 0.5)
    if median is None:
        return "–"
    if probe.samples and 2 * probe.past_limit >= len(probe.samples):
        return f">= {median:.2f} s, the limit"
    return f"{median:.2f} s"


def _probe_reason(probe, rule):
    p = probe.p_values
    return (f"{len(probe.samples)} launches, median {median_text(probe)}; "
            f"p slower than fast end {_p_text(p['slower_than_fast_end'])}, "
            f"faster than slow end {_p_text(p['faster_than_slow_end'])}; "
            f"decides below {rule.alpha_per_look / 2:.3g}")


def _p_text(p_values):
    return "(" + ", ".join(f"{name} {p:.3g}" for name, p in
                           p_values.items()) + ")"
