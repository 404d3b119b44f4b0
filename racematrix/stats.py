"""Statistics for flaky outcomes and launch times, on SciPy where SciPy has
the test: Wilson's interval, how many passing runs rule a bug out, quantiles,
and the two one-sided tests that tell launch-time distributions apart.

SciPy is imported where it is used: nox's own process loads this package for
every session, and most sessions need no statistics.
"""
import math
import statistics

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes, trials, confidence=0.95):
    """Wilson score interval for a binomial proportion, as (low, high)
    (``scipy.stats.binomtest(...).proportion_ci(method="wilson")``).

    Returns (0.0, 1.0) when there are no trials: nothing is known.
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got "
                         f"{successes} of {trials}")
    if trials == 0:
        return (0.0, 1.0)
    from scipy.stats import binomtest
    interval = binomtest(successes, trials).proportion_ci(
        confidence_level=confidence, method="wilson")
    return (max(0.0, float(interval.low)), min(1.0, float(interval.high)))


def runs_to_rule_out(failure_rate, miss_probability):
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


def chance_all_pass(failure_rate, runs):
    """The chance that ``runs`` independent runs, each failing with
    ``failure_rate``, all pass."""
    if not 0 <= failure_rate <= 1:
        raise ValueError(f"failure rate must be in [0, 1], got {failure_rate}")
    return (1 - failure_rate) ** runs


def quantile(samples, q):
    """The q-quantile by linear interpolation between order statistics
    (NumPy's default), None for no samples."""
    if not samples:
        return None
    if len(samples) == 1:
        return samples[0]
    if q == 0.5:
        return statistics.median(samples)
    return statistics.quantiles(samples, n=100, method="inclusive")[
        round(q * 100) - 1]


def mann_whitney_greater(x, y):
    """One-sided Mann-Whitney U test that ``x`` tends to be larger than
    ``y`` (``scipy.stats.mannwhitneyu``, exact where it can be, else the
    normal approximation with tie and continuity correction). Returns
    (U of x, p-value)."""
    if not len(x) or not len(y):
        raise ValueError("the rank test needs samples on both sides")
    if len(set(x) | set(y)) == 1:  # every value tied: no evidence either way
        return len(x) * len(y) / 2, 1.0
    from scipy.stats import mannwhitneyu
    result = mannwhitneyu(x, y, alternative="greater")
    return float(result.statistic), float(result.pvalue)


def fisher_greater(hits, n, other_hits, other_n):
    """One-sided Fisher exact test that a share of ``hits`` in ``n`` is
    larger than ``other_hits`` in ``other_n`` (``scipy.stats.fisher_exact``).
    """
    from scipy.stats import fisher_exact
    return float(fisher_exact([[hits, n - hits],
                               [other_hits, other_n - other_hits]],
                              alternative="greater").pvalue)
