"""Statistics for flaky outcomes: Wilson's interval (SciPy's), how many
passing runs rule a bug out, and the chance that runs all pass. SciPy is
imported where it is used: nox's own process loads this package for every
session, and most sessions need no statistics."""
from __future__ import annotations

import math


def wilson_interval(successes: int, trials: int,
                    confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion, as (low, high);
    (0.0, 1.0) for no trials: nothing is known."""
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got "
                         f"{successes} of {trials}")
    if trials == 0:
        return (0.0, 1.0)
    from scipy.stats import binomtest
    interval = binomtest(successes, trials).proportion_ci(
        confidence_level=confidence, method="wilson")
    return (max(0.0, float(interval.low)), min(1.0, float(interval.high)))


def runs_to_rule_out(failure_rate: float, miss_probability: float) -> int:
    """Runs without a failure needed before "not reproduced" may be said:
    the smallest n with (1 - failure_rate) ** n <= miss_probability."""
    if not 0 < failure_rate <= 1:
        raise ValueError(f"failure rate must be in (0, 1], got {failure_rate}")
    if not 0 < miss_probability < 1:
        raise ValueError(f"miss probability must be in (0, 1), got "
                         f"{miss_probability}")
    if failure_rate == 1:
        return 1
    return math.ceil(math.log(miss_probability) / math.log1p(-failure_rate))


def chance_all_pass(failure_rate: float, runs: int) -> float:
    """The chance that ``runs`` independent runs, each failing with
    ``failure_rate``, all pass."""
    if not 0 <= failure_rate <= 1:
        raise ValueError(f"failure rate must be in [0, 1], got {failure_rate}")
    return (1 - failure_rate) ** runs
