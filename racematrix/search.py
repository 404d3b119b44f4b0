"""The bisect's search over releases for the adjacent pair whose verdicts
differ, on the race or on the launch price ("alike" or "slower")."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .outcomes import Outcome
from .rawresult import decide_verdict
from .stats import runs_to_rule_out, wilson_interval

MISS_PROBABILITY = 0.001
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
    seconds: float = 0.0
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


class Search:
    """The releases; ``search(index, *how)`` probes one and keeps it."""

    def __init__(self, versions: Sequence[object],
                 probe: Callable[..., Probe]) -> None:
        self.versions = [str(v) for v in versions]
        self.probe = probe
        self.tested: dict[str, Probe] = {}

    def __call__(self, index: int, *how: Any) -> Probe:
        version = self.versions[index]
        self.tested[version] = self.probe(version, *how)
        return self.tested[version]

    def verdict(self, index: int) -> str:
        return self.tested[self.versions[index]].verdict

    def result(self, lo_hi: tuple[int, int] | None, summary: str,
               **fields: Any) -> BisectResult:
        found = None if lo_hi is None else {
            side: {"version": self.versions[i], "verdict": self.verdict(i)}
            for side, i in zip(("before", "after"), lo_hi)}
        return BisectResult(list(self.tested.values()), found, summary,
                            **fields)

    def ends(self, placed: Callable[[int], bool]) -> tuple[int, int] | str:
        """The first and the last release ``placed``, or why not two."""
        n = len(self.versions)
        lo = next((i for i in range(n) if placed(i)), None)
        if lo is None:
            return "no release in the range could be tested" if n else \
                "no release to test in the range"
        hi = next((i for i in range(n - 1, lo, -1) if placed(i)), None)
        if hi is None:
            return f"only {self.versions[lo]} could be tested; nothing to " \
                "compare it with"
        return lo, hi

    def settle(self, lo: int, hi: int, look: Callable[[int], Probe],
               guess: Sequence[str] = (), **fields: Any) -> BisectResult:
        """Between the ends, ``look`` places releases, ``guess`` first."""
        v, low = self.versions, self.verdict(lo)
        if low == self.verdict(hi):
            return self.result(None, f"both ends ({v[lo]}, {v[hi]}) are "
                               f"{low}: nothing flips in this range", **fields)
        guesses = [v.index(str(g)) for g in guess if str(g) in v]
        while hi - lo > 1:
            guesses = [i for i in guesses if lo < i < hi]
            mid, first = (lo + hi) // 2, guesses[:1]
            order = sorted(range(lo + 1, hi), key=lambda i: (
                i not in first, abs(i - mid), i))
            guesses = guesses[1:]
            index = next((i for i in order if (
                v[i] not in self.tested or self.verdict(i) in USABLE)
                and look(i).verdict in USABLE), None)
            if index is None:
                between = v[lo + 1:hi]
                span = between[0] if len(between) == 1 else \
                    f"{len(between)} releases, {between[0]} to {between[-1]}"
                return self.result((lo, hi), f"the verdict flips between "
                                   f"{v[lo]} and {v[hi]}; the releases "
                                   f"between ({span}) could not be placed",
                                   **fields)
            lo, hi = (index, hi) if self.verdict(index) == low else (lo, index)
        what = (f"the bug is {'fixed' if low == 'reproduced' else 'introduced'}"
                if low in RACE else
                f"launch time {'rose' if low == 'alike' else 'fell'}")
        return self.result((lo, hi), f"{what} between {v[lo]} ({low}) and "
                           f"{v[hi]} ({self.verdict(hi)})", **fields)


def bisect_releases(versions: Sequence[object], probe: Callable[..., Probe],
                    initial_runs: int = 0, guess: Sequence[str] = ()
                    ) -> BisectResult:
    """Where the verdict flips, on the race or (``initial_runs`` 0) time."""
    search = Search(versions, probe)
    v, how = search.versions, (initial_runs, True) if initial_runs else ()
    found = search.ends(lambda i: search(i, *how).verdict in USABLE)
    if isinstance(found, str):
        return search.result(None, found)
    lo, hi = found
    if not initial_runs:
        return search.settle(lo, hi, search, guess)
    ends = search.tested[v[lo]], search.tested[v[hi]]
    if not any(p.verdict == "reproduced" for p in ends):
        # A rare bug can hide from a first look at both ends.
        ends = search(lo, ESCALATION * initial_runs, True), \
            search(hi, ESCALATION * initial_runs, True)
    reproducing = [p for p in ends if p.verdict == "reproduced"]
    if not reproducing:
        return search.result(None, f"the bug was reproduced at neither end "
                             f"({v[lo]}: 0 of {ends[0].runs} runs, {v[hi]}: "
                             f"0 of {ends[1].runs}): nothing flips in this "
                             f"range")
    if len(reproducing) == 1:
        # To rule out: the other end and about half the probes between.
        clean = 1 + math.ceil(math.log2(max(hi - lo, 2))) / 2
        end = reproducing[0]
        runs = firming_runs(end.failures, end.runs, clean)
        if runs > end.runs:
            reproducing = [search(v.index(end.version), runs, True)]
    # The lower 95% bound at the reproducing end(s): "not reproduced" safe.
    rate = max(min(wilson_interval(p.failures, p.runs)[0]
                   for p in reproducing), 1e-4)
    needed = runs_to_rule_out(rate, MISS_PROBABILITY)
    for index in (lo, hi):
        if search.verdict(index) == "not-reproduced":
            search(index, needed)
    return search.settle(lo, hi, lambda i: search(i, needed), guess,
                         runs_to_rule_out=needed, rate_used=rate)


def firming_runs(failures: int, runs: int, clean_probes: float) -> int:
    """``runs`` or a doubling, whichever costs the fewest runs in all with
    ``clean_probes`` releases ruled out at the rate's lower 95% bound."""
    if not failures:
        return runs
    rate = failures / runs

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
    return decide_verdict({
        Outcome.TARGET: failures, Outcome.PASS: runs - failures,
        Outcome.OTHER: 0, Outcome.HANG: 0, Outcome.SKIP: 0})[0]
