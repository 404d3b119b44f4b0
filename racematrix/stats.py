"""Statistics for flaky outcomes (SciPy imported only where used)."""
from __future__ import annotations

import math


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """Wilson's 95% interval (low, high); (0, 1) without trials."""
    if not 0 <= successes <= trials:  # SciPy 1.18 answers nan, not an error
        raise ValueError(f"{successes} successes in {trials} trials")
    if trials == 0:
        return (0.0, 1.0)
    from scipy.stats import binomtest
    interval = binomtest(successes, trials).proportion_ci(method="wilson")
    return (max(0.0, float(interval.low)), min(1.0, float(interval.high)))


def runs_to_rule_out(failure_rate: float, miss_probability: float) -> int:
    """The fewest n with (1 - failure_rate) ** n <= miss_probability."""
    if failure_rate == 1:
        return 1
    return math.ceil(math.log(miss_probability) / math.log1p(-failure_rate))
