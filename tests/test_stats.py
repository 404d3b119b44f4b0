
import pytest

from racematrix.stats import runs_to_rule_out, wilson_interval


@pytest.mark.parametrize("successes, trials, low, high", [
    # Reference values from the closed form (Wilson 1927), z = 1.96.
    (0, 10, 0.0, 0.2775),
    (5, 10, 0.2366, 0.7634),
    (10, 10, 0.7225, 1.0),
    (25, 44, 0.4222, 0.7032),
    (0, 22, 0.0, 0.1487),
])
def test_wilson_interval_matches_reference(successes, trials, low, high):
    got = wilson_interval(successes, trials)
    assert got[0] == pytest.approx(low, abs=1e-4)
    assert got[1] == pytest.approx(high, abs=1e-4)


def test_wilson_interval_without_trials_is_uninformative():
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_interval_rejects_impossible_counts():
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


@pytest.mark.parametrize("rate, miss, expected", [
    (0.5, 0.001, 10), (0.1, 0.001, 66), (1.0, 0.001, 1), (0.036, 0.001, 189)])
def test_runs_to_rule_out(rate, miss, expected):
    runs = runs_to_rule_out(rate, miss)
    assert runs == expected
    assert (1 - rate) ** runs <= miss
    assert runs == 1 or (1 - rate) ** (runs - 1) > miss
