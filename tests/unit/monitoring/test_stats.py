"""The statistics against hand-computed and textbook values, and the sequential test by simulation."""

import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from recsys.monitoring.stats import (
    Estimate,
    always_valid_p_value,
    bin_counts,
    confidence_sequence,
    effective_wilson,
    ks_2samp,
    mean_of_users,
    mixture_sd,
    msprt_log_likelihood_ratio,
    psi,
    quantile_edges,
    ratio_estimate,
    ratio_of_user_sums,
    srm_test,
    wilson_interval,
)

# ---------------------------------------------------------------- PSI


def test_psi_matches_hand_computed_value():
    # sum (a - e) ln(a / e) = -0.15 ln 0.4 - 0.05 ln 0.8 + 0.05 ln 1.2 + 0.15 ln 1.6
    expected = -0.15 * math.log(0.4) - 0.05 * math.log(0.8) + 0.05 * math.log(1.2) + 0.15 * math.log(1.6)
    assert psi([0.25, 0.25, 0.25, 0.25], [0.1, 0.2, 0.3, 0.4], epsilon=0) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.2282, abs=1e-4)


def test_psi_takes_counts_as_well_as_shares():
    from_shares = psi([1, 1, 1, 1], [1, 2, 3, 4], epsilon=0)
    assert psi([25, 25, 25, 25], [10, 20, 30, 40], epsilon=0) == pytest.approx(from_shares)


def test_psi_smoothing_keeps_an_empty_bin_finite_and_large():
    value = psi([0.5, 0.5], [1.0, 0.0])
    assert math.isfinite(value) and value > 2.0
    with pytest.raises(ValueError, match="empty on one side only"):
        psi([0.5, 0.5], [1.0, 0.0], epsilon=0)


def test_psi_rejects_mismatched_bins():
    with pytest.raises(ValueError, match="3 expected bins but 2 actual bins"):
        psi([1, 1, 1], [1, 1])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1000), min_size=1, max_size=12).filter(lambda xs: sum(xs) > 0),
       st.lists(st.floats(0, 1000), min_size=12, max_size=12))
def test_psi_is_nonnegative_and_zero_for_identical(expected, actual):
    actual = actual[: len(expected)]
    assert psi(expected, expected) == pytest.approx(0.0, abs=1e-12)
    if sum(actual) > 0:
        assert psi(expected, actual) >= 0.0


def test_quantile_bins_hold_equal_shares_of_continuous_data():
    values = np.arange(1000, dtype=float)
    edges = quantile_edges(values, 10)
    assert len(edges) == 9
    assert bin_counts(values, edges).tolist() == [100] * 10


def test_quantile_bins_of_repeated_values_have_no_empty_baseline_bin():
    values = np.array([0.0] * 60 + [1.0] * 25 + [2.0] * 10 + [5.0] * 5)
    edges = quantile_edges(values, 10)
    assert edges.tolist() == [0.0, 1.0, 2.0]  # the maximum is not an edge
    assert bin_counts(values, edges).tolist() == [60, 25, 10, 5]


# ---------------------------------------------------------------- KS


def test_ks_statistic_matches_hand_computed_value():
    # F_a climbs 0.25 at 1..4, F_b 0.2 at 3..7: the widest gap is at x = 4, 1.0 - 0.4.
    result = ks_2samp(np.array([1, 2, 3, 4]), np.array([3, 4, 5, 6, 7]))
    assert result.statistic == pytest.approx(0.6)


@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5])
def test_ks_matches_scipy_asymptotic(shift):
    rng = np.random.default_rng(7)
    a, b = rng.normal(0, 1, 700), np.round(rng.normal(shift, 1, 400), 1)  # rounding makes ties
    ours, theirs = ks_2samp(a, b), scipy_stats.ks_2samp(a, b, method="asymp")
    assert ours.statistic == pytest.approx(theirs.statistic, abs=1e-12)
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-300)


def test_ks_detects_a_known_shift_and_not_the_null():
    rng = np.random.default_rng(3)
    base = rng.normal(0, 1, 3000)
    assert ks_2samp(base, rng.normal(0.3, 1, 3000)).p_value < 1e-10
    assert ks_2samp(base, rng.normal(0, 1, 3000)).p_value > 0.01


# ---------------------------------------------------------------- intervals


@pytest.mark.parametrize(
    "successes, n, low, high",
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", score method.
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718),
     (29, 29, 0.8830, 1.0)],
)
def test_wilson_interval_matches_textbook_values(successes, n, low, high):
    got = wilson_interval(successes, n, 0.95)
    assert got == pytest.approx((low, high), abs=5e-5)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 100_000), st.data(), st.sampled_from([0.8, 0.9, 0.95, 0.99]))
def test_wilson_interval_contains_the_point_estimate(n, data, confidence):
    successes = data.draw(st.integers(0, n))
    low, high = wilson_interval(successes, n, confidence)
    assert 0.0 <= low <= successes / n <= high <= 1.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 30), st.floats(0, 1)), min_size=2, max_size=60))
def test_clustered_ctr_interval_contains_the_estimate(users):
    exposures = np.array([n for n, _ in users], dtype=float)
    clicks = np.floor(exposures * np.array([share for _, share in users]))
    estimate = ratio_of_user_sums(clicks, exposures)
    low, high = effective_wilson(estimate, int(exposures.sum()))
    assert low - 1e-12 <= estimate.value <= high + 1e-12


def test_delta_method_with_one_exposure_per_user_is_the_binomial_variance():
    clicks = np.array([1] * 30 + [0] * 70, dtype=float)
    estimate = ratio_of_user_sums(clicks, np.ones(100))
    # The sample variance (ddof=1) of 0/1 data over m: p(1-p)/(m-1).
    assert estimate.value == pytest.approx(0.3)
    assert estimate.variance == pytest.approx(0.3 * 0.7 / 99)
    # ...so the effective sample size is m - 1 and the interval the plain Wilson one at that size.
    assert effective_wilson(estimate, 100) == pytest.approx(wilson_interval(0.3 * 99, 99))
    assert effective_wilson(estimate, 100) == pytest.approx(wilson_interval(30, 100), abs=1e-3)


def test_delta_method_widens_the_interval_when_users_cluster():
    # Half the users click every time, half never: 1000 exposures but effectively about 100 users.
    exposures = np.full(100, 10.0)
    clicks = np.array([10.0] * 50 + [0.0] * 50)
    estimate = ratio_of_user_sums(clicks, exposures)
    clustered, naive = effective_wilson(estimate, 1000), wilson_interval(500, 1000)
    assert clustered[1] - clustered[0] > 2.5 * (naive[1] - naive[0])


def test_ratio_estimate_agrees_with_the_definition_of_the_delta_method():
    rng = np.random.default_rng(0)
    n = rng.integers(1, 9, 200).astype(float)
    x = rng.binomial(n.astype(int), 0.2).astype(float)
    ratio, variance = ratio_estimate(x.sum(), n.sum(), (x * x).sum(), (n * n).sum(), (x * n).sum(), n.size)
    r = x.sum() / n.sum()
    residual = x - r * n  # linearisation of R around the means
    assert ratio == pytest.approx(r)
    assert variance == pytest.approx(residual.var(ddof=1) / (n.size * n.mean() ** 2))


def test_mean_of_users_variance_is_s2_over_m():
    estimate = mean_of_users(np.array([0.0, 1.0, 2.0, 3.0]))
    assert estimate == Estimate(1.5, np.var([0, 1, 2, 3], ddof=1) / 4)


# ---------------------------------------------------------------- SRM


def test_srm_known_chi_square_values():
    balanced = srm_test({"a": 5050, "b": 4950}, {"a": 1, "b": 1})
    assert balanced.statistic == pytest.approx(1.0)
    assert balanced.p_value == pytest.approx(0.3173, abs=1e-4)
    broken = srm_test({"a": 5200, "b": 4800}, {"a": 50, "b": 50})
    assert broken.statistic == pytest.approx(16.0)
    assert broken.p_value == pytest.approx(6.334e-5, rel=1e-3)


def test_srm_against_unequal_weights_and_three_variants():
    result = srm_test({"a": 800, "b": 100, "c": 100}, {"a": 0.8, "b": 0.1, "c": 0.1})
    assert result.statistic == pytest.approx(0.0) and result.p_value == pytest.approx(1.0)
    # 3 variants: 2 degrees of freedom; chi2 = 20^2/100 + 20^2/100 = 8, p = exp(-8/2).
    shifted = srm_test({"a": 800, "b": 120, "c": 80}, {"a": 0.8, "b": 0.1, "c": 0.1})
    assert shifted.statistic == pytest.approx(8.0)
    assert shifted.p_value == pytest.approx(math.exp(-4))


def test_srm_traffic_on_a_zero_weight_variant_is_a_mismatch_and_unknown_variants_are_named():
    assert srm_test({"a": 10, "b": 3}, {"a": 1, "b": 0}).p_value == 0.0
    with pytest.raises(ValueError, match=r"variants \['z'\] have traffic but no configured weight"):
        srm_test({"a": 10, "z": 3}, {"a": 1})


# ---------------------------------------------------------------- mSPRT


def test_msprt_likelihood_ratio_formula():
    # Λ = sqrt(V / (V + τ²)) exp(τ² δ² / (2 V (V + τ²))) at V = 1, τ = 1, δ = 2: sqrt(1/2) e^1.
    assert float(np.exp(msprt_log_likelihood_ratio(2.0, 1.0, 1.0))) == pytest.approx(math.sqrt(0.5) * math.e)
    assert float(msprt_log_likelihood_ratio(0.5, 0.0, 1.0)) == 0.0  # no variance estimate: no evidence


def test_confidence_sequence_excludes_zero_exactly_when_p_is_below_alpha():
    for difference in np.linspace(0, 0.05, 51):
        p = float(always_valid_p_value(difference, 1e-4, 0.01))
        low, high = confidence_sequence(difference, 1e-4, 0.01, 0.05)
        assert (p < 0.05) == (low > 0 or high < 0)


def _simulated_looks(rng, experiments, users_per_arm, looks, ctr_a, ctr_b):
    """Cumulative per-arm CTR estimates and delta-method variances at each look, shape (experiments, looks)."""
    exposures = 1 + rng.poisson(3, size=(experiments, 2, users_per_arm))
    concentration = 10.0  # users differ: per-user CTR ~ Beta with this total, so exposures cluster
    mean = np.array([ctr_a, ctr_b])[None, :, None]
    user_ctr = rng.beta(mean * concentration, (1 - mean) * concentration, size=exposures.shape)
    clicks = rng.binomial(exposures, user_ctr).astype(float)
    exposures = exposures.astype(float)
    at = np.linspace(users_per_arm / looks, users_per_arm, looks).astype(int) - 1
    sums = [np.cumsum(v, axis=2)[:, :, at] for v in (clicks, exposures, clicks**2, exposures**2, clicks * exposures)]
    ratio, variance = ratio_estimate(*sums, at + 1)
    return ratio[:, 0], ratio[:, 1], variance[:, 0] + variance[:, 1]


def test_msprt_keeps_type_one_error_under_twenty_looks_where_naive_tests_do_not():
    alpha, looks = 0.05, 20
    control, challenger, variance = _simulated_looks(np.random.default_rng(2024), 400, 2000, looks, 0.1, 0.1)
    difference = challenger - control
    tau = mixture_sd(control, challenger, 0.1)
    sequential = always_valid_p_value(difference, variance, tau)
    naive = 2 * (1 - np.vectorize(NormalDist().cdf)(np.abs(difference) / np.sqrt(variance)))
    sequential_fpr = np.mean(np.any(sequential < alpha, axis=1))
    naive_fpr = np.mean(np.any(naive < alpha, axis=1))
    single_look_fpr = np.mean(naive[:, -1] < alpha)
    # 400 experiments: the standard error of a 5% rate is about 1.1 points.
    assert sequential_fpr <= alpha + 0.025
    assert naive_fpr > alpha + 0.07  # peeking at a fixed-horizon test 20 times inflates it several-fold
    assert single_look_fpr <= alpha + 0.035  # the clustered variance itself is right at one look


def test_msprt_detects_a_real_lift():
    control, challenger, variance = _simulated_looks(np.random.default_rng(99), 100, 2000, 20, 0.10, 0.13)
    p = always_valid_p_value(challenger - control, variance, mixture_sd(control, challenger, 0.1))
    detected = np.any(p < 0.05, axis=1)
    assert detected.mean() >= 0.8
    first_look = np.argmax(p < 0.05, axis=1)[detected]
    assert np.median(first_look) < 19  # it stops before the end, not only at the last look
