"""Statistical primitives of the monitoring jobs: PSI, KS, Wilson, delta method, mSPRT, SRM.

Pure numpy (scipy only for the KS and chi-square tail probabilities). The
functions that the A/B analysis runs once per look also accept numpy arrays,
element by element, so the type-I error of the sequential test can be checked
by simulating thousands of looks at once with the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy import stats as scipy_stats

# Added to every bin share before PSI so that an empty bin gives a large but finite term.
PSI_EPSILON = 1e-4


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = PSI_EPSILON) -> float:
    """Population stability index sum((a - e) * ln(a / e)) over bins, from shares or counts.

    Both sides are normalised to shares, smoothed with `epsilon` and renormalised.
    Each term is >= 0 (a - e and ln(a / e) have the same sign), so PSI >= 0, with 0
    exactly when the two distributions are equal.
    """
    e, a = _shares(expected, "expected"), _shares(actual, "actual")
    if e.shape != a.shape:
        raise ValueError(f"psi: {e.size} expected bins but {a.size} actual bins")
    if epsilon > 0:
        e, a = (e + epsilon) / (1 + epsilon * e.size), (a + epsilon) / (1 + epsilon * a.size)
    elif np.any((e == 0) != (a == 0)):
        raise ValueError("psi: a bin is empty on one side only; use epsilon > 0")
    nonzero = (e > 0) & (a > 0)
    return float(np.sum((a[nonzero] - e[nonzero]) * np.log(a[nonzero] / e[nonzero])))


def _shares(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"psi: {name} must be a non-empty 1-d array of bin shares or counts")
    if np.any(values < 0) or not np.all(np.isfinite(values)):
        raise ValueError(f"psi: {name} has a negative or non-finite bin")
    total = values.sum()
    if total <= 0:
        raise ValueError(f"psi: {name} has no mass")
    return values / total


def quantile_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges at the baseline's quantiles, so that each bin holds about 1/bins of it.

    Edges are actual data values (inverted-CDF quantiles), deduplicated, and the
    maximum is dropped: bins are (-inf, e0], (e0, e1], ..., (e_last, inf), so each
    bin holds at least one baseline value even when values repeat (counts, flags).
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return np.empty(0)
    levels = np.arange(1, bins) / bins
    edges = np.unique(np.quantile(values, levels, method="inverted_cdf"))
    return edges[edges < values.max()]


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of `values` in the len(edges) + 1 bins (-inf, e0], ..., (e_last, inf)."""
    index = np.searchsorted(edges, np.asarray(values, dtype=float), side="left")
    return np.bincount(index, minlength=len(edges) + 1)


@dataclass(frozen=True)
class KsResult:
    statistic: float
    p_value: float


def ks_2samp(a: np.ndarray, b: np.ndarray) -> KsResult:
    """Two-sample two-sided Kolmogorov-Smirnov test.

    D = max |F_a(x) - F_b(x)| over the pooled points; the p-value is Smirnov's
    asymptotic one (the distribution of D for n = n_a * n_b / (n_a + n_b)), the same
    as scipy.stats.ks_2samp(method="asymp"). The drift job compares thousands of
    values, where the asymptotic form is accurate and the exact one is slow.
    """
    a, b = np.sort(np.asarray(a, dtype=float)), np.sort(np.asarray(b, dtype=float))
    if a.size == 0 or b.size == 0:
        raise ValueError("ks_2samp: both samples need at least one value")
    pooled = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, pooled, side="right") / a.size
    cdf_b = np.searchsorted(b, pooled, side="right") / b.size
    statistic = float(np.max(np.abs(cdf_a - cdf_b)))
    effective_n = max(1.0, np.round(a.size * b.size / (a.size + b.size)))
    p_value = float(np.clip(scipy_stats.kstwo.sf(statistic, effective_n), 0.0, 1.0))
    return KsResult(statistic, p_value)


def z_value(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError("confidence: must lie in (0, 1)")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion. `n` may be an effective (non-integer) sample size."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"wilson_interval: successes {successes} outside [0, n={n}]")
    z = z_value(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denominator
    half = z / denominator * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # Clamped to contain p: at 0 or n successes rounding could put the bound a hair past it.
    return (float(max(0.0, min(p, center - half))), float(min(1.0, max(p, center + half))))


@dataclass(frozen=True)
class Estimate:
    """A metric's point estimate and the variance of that estimate."""

    value: float
    variance: float


def ratio_estimate(sum_x, sum_n, sum_xx, sum_nn, sum_xn, users):
    """R = sum(x_u) / sum(n_u) over users u, and its delta-method variance.

    For ratio metrics whose unit of randomisation (the user) differs from the unit
    of analysis (the exposure): clicks x_u over exposures n_u per user. Treating the
    exposures as independent would understate the variance, since one user's
    exposures are correlated. With m users, means x̄, n̄ and sample (co)variances,
    Var(R) ≈ (s_x² - 2 R s_xn + R² s_n²) / (m n̄²).
    Works element-wise on arrays of sums; needs at least 2 users.
    """
    m = np.asarray(users, dtype=float)
    sum_x, sum_n = np.asarray(sum_x, dtype=float), np.asarray(sum_n, dtype=float)
    ratio = sum_x / sum_n
    var_x = (sum_xx - sum_x**2 / m) / (m - 1)
    var_n = (sum_nn - sum_n**2 / m) / (m - 1)
    cov = (sum_xn - sum_x * sum_n / m) / (m - 1)
    mean_n = sum_n / m
    variance = np.maximum(var_x - 2 * ratio * cov + ratio**2 * var_n, 0.0) / (m * mean_n**2)
    return ratio, variance


def ratio_of_user_sums(x: np.ndarray, n: np.ndarray) -> Estimate:
    """`ratio_estimate` from per-user numerators and denominators."""
    x, n = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    if x.size < 2 or n.sum() <= 0:
        return Estimate(float(x.sum() / n.sum()) if n.sum() > 0 else float("nan"), float("nan"))
    ratio, variance = ratio_estimate(x.sum(), n.sum(), (x * x).sum(), (n * n).sum(), (x * n).sum(), x.size)
    return Estimate(float(ratio), float(variance))


def mean_of_users(values: np.ndarray) -> Estimate:
    """Per-user mean (users are independent) and the variance of that mean, s² / m."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return Estimate(float(values.mean()) if values.size else float("nan"), float("nan"))
    return Estimate(float(values.mean()), float(values.var(ddof=1) / values.size))


def effective_wilson(estimate: Estimate, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson interval of a clustered proportion on its effective sample size (Korn & Graubard).

    n_eff = p(1 - p) / Var(p), capped at n: the count of independent trials with the
    variance the delta method measured. With one exposure per user it is the plain
    Wilson interval; it stays inside [0, 1] and behaves at rates near 0.
    """
    p, variance = estimate.value, estimate.variance
    if not np.isfinite(p):
        return (0.0, 1.0)
    n_eff = float(n) if not np.isfinite(variance) or variance <= 0 else min(float(n), p * (1 - p) / variance)
    if n_eff <= 0:
        n_eff = float(n)
    return wilson_interval(p * n_eff, n_eff, confidence)


def normal_interval(estimate: Estimate, confidence: float = 0.95) -> tuple[float, float]:
    if not np.isfinite(estimate.variance):
        return (float("nan"), float("nan"))
    half = z_value(confidence) * float(np.sqrt(estimate.variance))
    return (estimate.value - half, estimate.value + half)


def mixture_sd(control_value, challenger_value, relative_sd: float):
    """τ of the mSPRT mixture: `relative_sd` times the metric's level, i.e. the relative lift the test is tuned to.

    Scaling by the observed level is a plug-in, like the variance; the simulated
    type-I error rate in the tests covers it. Element-wise.
    """
    return relative_sd * np.abs(np.asarray(control_value, dtype=float) + challenger_value) / 2


def msprt_log_likelihood_ratio(difference, variance, tau):
    """log Λ of the mixture SPRT of H0: δ = 0 with a N(0, τ²) mixture over δ (Johari et al.).

    `difference` is the estimated δ (treatment - control), approximately normal with
    `variance` V. Λ = sqrt(V / (V + τ²)) · exp(τ² δ̂² / (2 V (V + τ²))) is a
    nonnegative martingale under H0 with mean 1, so by Ville's inequality
    P(Λ ever reaches 1/α) ≤ α: rejecting at any look where Λ ≥ 1/α keeps the
    type-I error at α however often one looks. Element-wise; Λ = 1 where V or τ is 0.
    """
    difference, variance, tau = np.broadcast_arrays(
        np.asarray(difference, dtype=float), np.asarray(variance, dtype=float), np.asarray(tau, dtype=float)
    )
    tau2 = tau**2
    usable = (variance > 0) & (tau2 > 0) & np.isfinite(variance) & np.isfinite(difference)
    v = np.where(usable, variance, 1.0)
    t2 = np.where(usable, tau2, 1.0)
    log_lr = 0.5 * np.log(v / (v + t2)) + t2 * difference**2 / (2 * v * (v + t2))
    return np.where(usable, log_lr, 0.0)


def always_valid_p_value(difference, variance, tau):
    """1 / Λ capped at 1: P(Λ ever ≥ 1/p) ≤ p under H0. Take the running minimum over looks."""
    return np.minimum(1.0, np.exp(-msprt_log_likelihood_ratio(difference, variance, tau)))


def confidence_sequence(difference: float, variance: float, tau: float, alpha: float) -> tuple[float, float]:
    """Always-valid (1 - α) interval for δ: the δ0 the mSPRT of H0: δ = δ0 does not reject."""
    if not (variance > 0 and tau > 0 and np.isfinite(variance)):
        return (float("-inf"), float("inf"))
    tau2 = tau * tau
    half = np.sqrt(variance * (variance + tau2) / tau2 * (2 * np.log(1 / alpha) + np.log((variance + tau2) / variance)))
    return (float(difference - half), float(difference + half))


@dataclass(frozen=True)
class SrmResult:
    statistic: float
    p_value: float
    observed: dict[str, int]
    expected_shares: dict[str, float]


def srm_test(observed: dict[str, int], weights: dict[str, float]) -> SrmResult:
    """Chi-square goodness of fit of the observed split against the configured weights."""
    missing = sorted(set(observed) - set(weights))
    if missing:
        raise ValueError(f"srm_test: variants {missing} have traffic but no configured weight")
    names = sorted(weights)
    total_weight = sum(weights.values())
    if total_weight <= 0 or any(w < 0 for w in weights.values()):
        raise ValueError("srm_test: weights must be >= 0 with a positive sum")
    counts = np.array([observed.get(name, 0) for name in names], dtype=float)
    shares = np.array([weights[name] / total_weight for name in names])
    expected = counts.sum() * shares
    result = {
        "observed": {n: int(observed.get(n, 0)) for n in names},
        "expected_shares": dict(zip(names, shares.tolist())),
    }
    if counts.sum() == 0:
        return SrmResult(0.0, 1.0, **result)
    if np.any((expected == 0) & (counts > 0)):
        return SrmResult(float("inf"), 0.0, **result)
    live = expected > 0
    statistic = float(np.sum((counts[live] - expected[live]) ** 2 / expected[live]))
    degrees = int(live.sum()) - 1
    p_value = float(scipy_stats.chi2.sf(statistic, degrees)) if degrees > 0 else 1.0
    return SrmResult(statistic, p_value, **result)
