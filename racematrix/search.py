"""The bisect's search over releases for the adjacent pair whose verdicts
differ, on the race or on the launch price ("alike" or "slower")."""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .outcomes import Outcome
from .rawresult import decide_verdict
from .stats import runs_to_rule_out, wilson_interval

MISS_PROBABILITY = 0.001
# The runs of a race bisect's first look at each end.
INITIAL_RUNS = 22
# The first look's runs times this at each end where neither reproduced.
ESCALATION = 10
# The most runs firming_runs gives the reproducing end, times its first look.
FIRMING_GROWTH = 16
RACE = ("reproduced", "not-reproduced")
PRICE = ("alike", "slower")
USABLE = RACE + PRICE


@dataclass
class Probe:
    """One release's verdict, runs, A/Bs and how it was installed."""
    version: str
    verdict: str
    runs: int = 0
    failures: int = 0
    reason: str = ""
    tries: int = 0
    launch: dict | None = None
    way: str | None = None
    exclude_newer: str | None = None
    requirements: list = field(default_factory=list)
    attempts: list = field(default_factory=list)
    packages: dict = field(default_factory=dict)
    implementation: dict | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.launch:  # the installed side's launches, as the report reads
            data.update({k: self.launch.get(k) for k in ("n", "median", "p95")})
        return data


@dataclass
class BisectResult:
    tested: list[Probe]
    boundary: dict | None
    summary: str
    runs_to_rule_out: int | None = None
    rate_used: float | None = None

    @property
    def decisive_probes(self) -> int:
        return sum(p.verdict in USABLE for p in self.tested)


def probe_limit(n: int) -> int:
    """The decisive probes a search of ``n`` releases may take."""
    return (max(n, 1) - 1).bit_length() + 3


def bisect_releases(versions: Sequence[object], probe: Callable[..., Probe],
                    initial_runs: int = 0, guess: Sequence[str] = ()
                    ) -> BisectResult:
    """Where the verdict flips, on the race or (``initial_runs`` 0) time:
    the ends, then halving between them, ``guess`` first."""
    v, tested = [str(version) for version in versions], {}

    def look(i: int, *how: Any) -> str:
        tested[v[i]] = probe(v[i], *how)
        return tested[v[i]].verdict

    def result(pair: tuple[int, int] | None, summary: str,
               **fields: Any) -> BisectResult:
        return BisectResult(list(tested.values()), pair and {
            side: {"version": v[i], "verdict": tested[v[i]].verdict}
            for side, i in zip(("before", "after"), pair)}, summary, **fields)
    how: tuple[Any, ...] = (initial_runs, True) if initial_runs else ()
    lo = next((i for i in range(len(v)) if look(i, *how) in USABLE), None)
    if lo is None:
        return result(None, "no release in the range could be tested" if v
                      else "no release to test in the range")
    hi = next((i for i in range(len(v) - 1, lo, -1)
               if look(i, *how) in USABLE), None)
    if hi is None:
        return result(None, f"only {v[lo]} could be tested; nothing to "
                      f"compare it with")
    how, fields = (), {}
    if initial_runs:
        if "reproduced" not in (tested[v[lo]].verdict, tested[v[hi]].verdict):
            # A rare bug can hide from a first look at both ends.
            look(lo, ESCALATION * initial_runs, True)
            look(hi, ESCALATION * initial_runs, True)
        ends = tested[v[lo]], tested[v[hi]]
        reproducing = [p for p in ends if p.verdict == "reproduced"]
        if not reproducing:
            return result(None, f"the bug was reproduced at neither end "
                          f"({v[lo]}: 0 of {ends[0].runs} runs, {v[hi]}: 0 "
                          f"of {ends[1].runs}): nothing flips in this range")
        if len(reproducing) == 1:
            # To rule out: the other end and about half the probes between.
            end = reproducing[0]
            clean = 1 + math.ceil(math.log2(max(hi - lo, 2))) / 2
            look(v.index(end.version),
                 firming_runs(end.failures, end.runs, clean), True)
            reproducing = [tested[end.version]]
        # The lower 95% bound at the reproducing end(s): "not reproduced" safe.
        rate = max(min(wilson_interval(p.failures, p.runs)[0]
                       for p in reproducing), 1e-4)
        needed = runs_to_rule_out(rate, MISS_PROBABILITY)
        for end_index in (lo, hi):  # a reproducing end keeps its probe
            look(end_index, needed)
        how, fields = (needed,), {"runs_to_rule_out": needed,
                                  "rate_used": rate}
    low = tested[v[lo]].verdict
    if low == tested[v[hi]].verdict:
        return result(None, f"both ends ({v[lo]}, {v[hi]}) are {low}: "
                      f"nothing flips in this range", **fields)
    guesses = [v.index(str(g)) for g in guess if str(g) in v]
    while hi - lo > 1:
        # Each release between is looked at once: a placed one moves an end.
        first = next((i for i in guesses
                      if lo < i < hi and v[i] not in tested), None)
        mid = (lo + hi) // 2
        order = sorted(range(lo + 1, hi), key=lambda i: (
            i != first, abs(i - mid), i))
        placed = next((i for i in order if v[i] not in tested
                       and look(i, *how) in USABLE), None)
        if placed is None:
            between = v[lo + 1:hi]
            span = between[0] if len(between) == 1 else \
                f"{len(between)} releases, {between[0]} to {between[-1]}"
            return result((lo, hi), f"the verdict flips between {v[lo]} and "
                          f"{v[hi]}; the releases between ({span}) could not "
                          f"be placed", **fields)
        lo, hi = (placed, hi) if tested[v[placed]].verdict == low else \
            (lo, placed)
    what = (f"the bug is {'fixed' if low == 'reproduced' else 'introduced'}"
            if low in RACE else
            f"launch time {'rose' if low == 'alike' else 'fell'}")
    return result((lo, hi), f"{what} between {v[lo]} ({low}) and {v[hi]} "
                  f"({tested[v[hi]].verdict})", **fields)


def firming_runs(failures: int, runs: int, clean_probes: float) -> int:
    """``runs`` or a doubling, whichever costs the fewest runs in all with
    ``clean_probes`` releases ruled out at the rate's lower 95% bound."""
    rate = failures / runs  # 0: every doubling costs more

    def cost(total: int) -> float:
        low = wilson_interval(round(rate * total), total)[0]
        return total + clean_probes * runs_to_rule_out(max(low, 1e-4),
                                                       MISS_PROBABILITY)
    doublings = [runs * 2 ** k for k in range(FIRMING_GROWTH.bit_length())]
    return min(doublings, key=cost)


def decide_probe(failures: int, runs: int, min_runs: int,
                 whole: bool = False) -> str | None:
    """A race probe's verdict so far, or None to run on."""
    if runs < min_runs and (whole or not failures):
        return None
    return decide_verdict(Counter({Outcome.TARGET: failures,
                                   Outcome.PASS: runs - failures}))[0]
