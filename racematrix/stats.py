"""Statistics for flaky outcomes."""
import math

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes, trials, z=Z95):
    """Wilson score interval for a binomial proportion, as (low, high).

    Returns (0.0, 1.0) when there are no trials: nothing is known.
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got "
                         f"{successes} of {trials}")
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    z2 = z * z
    denominator = 1 + z2 / trials
    centre = (p + z2 / (2 * trials)) / denominator
    half = (z / denominator) * math.sqrt(
        p * (1 - p) / trials + z2 / (4 * trials * trials))
    return (max(0.0, centre - half), min(1.0, centre + half))


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
