"""Offline metrics: ranking quality at K, beyond-accuracy measures, and probability quality.

Definitions are in docs/evaluation.md; every function documents its own. Per-user ranking metrics return None
for a user with no relevant item (such users are left out of the averages); a list shorter than K is scored as
is (its missing positions count as misses).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

RANKING_METRICS = ("precision", "recall", "map", "ndcg", "mrr", "hit_rate")


def _hits(recommended: Sequence[str], relevant: frozenset[str] | set[str], k: int) -> np.ndarray:
    return np.array([item in relevant for item in list(recommended)[:k]], dtype=bool)


def precision_at_k(recommended: Sequence[str], relevant: set[str] | frozenset[str], k: int) -> float | None:
    """Hits in the top k over k."""
    if not relevant:
        return None
    return float(_hits(recommended, relevant, k).sum()) / k


def recall_at_k(recommended: Sequence[str], relevant: set[str] | frozenset[str], k: int) -> float | None:
    """Hits in the top k over the number of relevant items."""
    if not relevant:
        return None
    return float(_hits(recommended, relevant, k).sum()) / len(relevant)


def average_precision_at_k(recommended: Sequence[str], relevant: set[str] | frozenset[str], k: int) -> float | None:
    """Sum over hit positions i <= k of precision@i, over min(|relevant|, k)."""
    if not relevant:
        return None
    hits = _hits(recommended, relevant, k)
    if not hits.any():
        return 0.0
    positions = np.flatnonzero(hits) + 1
    precisions = np.arange(1, len(positions) + 1) / positions
    return float(precisions.sum()) / min(len(relevant), k)


def ndcg_at_k(recommended: Sequence[str], relevant: set[str] | frozenset[str], k: int) -> float | None:
    """DCG with binary gains, sum of 1/log2(i + 1) over hit positions i <= k, over the ideal DCG
    (all min(|relevant|, k) first positions hits)."""
    if not relevant:
        return None
    hits = _hits(recommended, relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = float(discounts[: len(hits)][hits].sum())
    ideal = float(discounts[: min(len(relevant), k)].sum())
    return dcg / ideal


def reciprocal_rank_at_k(recommended: Sequence[str], relevant: set[str] | frozenset[str], k: int) -> float | None:
    """1 / position of the first hit within the top k; 0 without a hit."""
    if not relevant:
        return None
    hits = np.flatnonzero(_hits(recommended, relevant, k))
    return 1.0 / (hits[0] + 1) if len(hits) else 0.0


def hit_rate_at_k(recommended: Sequence[str], relevant: set[str] | frozenset[str], k: int) -> float | None:
    """1 if the top k holds at least one relevant item, else 0."""
    if not relevant:
        return None
    return float(_hits(recommended, relevant, k).any())


_PER_USER = {
    "precision": precision_at_k,
    "recall": recall_at_k,
    "map": average_precision_at_k,
    "ndcg": ndcg_at_k,
    "mrr": reciprocal_rank_at_k,
    "hit_rate": hit_rate_at_k,
}


@dataclass(frozen=True)
class CatalogStats:
    """What the beyond-accuracy metrics need to know about the training period.

    `popularity`: item -> number of training users who interacted with it; `n_users`: training users;
    `catalog_size`: items known at the cutoff; `new_items`: items that count as new at the cutoff;
    `expected`: per user, the items a primitive recommender (Popularity-Count) shows — for serendipity.
    """

    popularity: Mapping[str, int]
    n_users: int
    catalog_size: int
    new_items: frozenset[str]
    expected: Mapping[str, Sequence[str]] | Sequence[str]

    def self_information(self, item: str) -> float:
        """-log2 of the share of training users who interacted with the item (add-one smoothed)."""
        return float(-np.log2((self.popularity.get(item, 0) + 1) / (self.n_users + 1)))

    def expected_for(self, user: str) -> Sequence[str]:
        if isinstance(self.expected, Mapping):
            return self.expected.get(user, ())
        return self.expected


def ranking_report(recommendations: Mapping[str, Sequence[str]], relevant: Mapping[str, set[str] | frozenset[str]],
                   ks: Iterable[int], stats: CatalogStats) -> dict[str, dict[str, float]]:
    """Metrics at each K averaged over the users with relevant items, plus coverage, novelty, new-item share
    and serendipity over the same users' lists. Returns {"@K": {metric: value}}."""
    users = [u for u, items in relevant.items() if items]
    report: dict[str, dict[str, float]] = {}
    for k in ks:
        values: dict[str, list[float]] = {name: [] for name in _PER_USER}
        recommended_items: set[str] = set()
        novelty: list[float] = []
        new_share: list[float] = []
        serendipity: list[float] = []
        for user in users:
            recs = list(recommendations.get(user, ()))[:k]
            for name, fn in _PER_USER.items():
                values[name].append(fn(recs, relevant[user], k))
            recommended_items.update(recs)
            if recs:
                novelty.append(float(np.mean([stats.self_information(i) for i in recs])))
                new_share.append(sum(i in stats.new_items for i in recs) / len(recs))
            expected = set(list(stats.expected_for(user))[:k])
            serendipity.append(sum(i in relevant[user] and i not in expected for i in recs) / k)
        row = {name: float(np.mean(v)) if v else 0.0 for name, v in values.items()}
        row["coverage"] = len(recommended_items) / max(stats.catalog_size, 1)
        row["novelty"] = float(np.mean(novelty)) if novelty else 0.0
        row["new_item_share"] = float(np.mean(new_share)) if new_share else 0.0
        row["serendipity"] = float(np.mean(serendipity)) if serendipity else 0.0
        row["users"] = len(users)
        report[f"@{k}"] = row
    return report


# Probability quality
def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half); None with one class."""
    labels = np.asarray(labels).astype(bool)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pr_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Average precision: mean over the positives of the precision at their score threshold; None without positives."""
    labels = np.asarray(labels).astype(bool)
    if not labels.any():
        return None
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(labels, scores))


def log_loss(labels: np.ndarray, probabilities: np.ndarray, eps: float = 1e-7) -> float:
    """Mean negative log-likelihood of the labels, probabilities clipped to [eps, 1 - eps]."""
    p = np.clip(np.asarray(probabilities, float), eps, 1 - eps)
    y = np.asarray(labels, float)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def brier(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean squared difference between probability and label."""
    return float(np.mean((np.asarray(probabilities, float) - np.asarray(labels, float)) ** 2))


@dataclass(frozen=True)
class Reliability:
    """Equal-width probability bins: mean predicted probability, observed rate and row count per non-empty bin."""

    predicted: list[float]
    observed: list[float]
    counts: list[int]


def reliability(labels: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> Reliability:
    p = np.asarray(probabilities, float)
    y = np.asarray(labels, float)
    which = np.minimum((p * bins).astype(int), bins - 1)
    predicted, observed, counts = [], [], []
    for b in range(bins):
        mask = which == b
        if mask.any():
            predicted.append(float(p[mask].mean()))
            observed.append(float(y[mask].mean()))
            counts.append(int(mask.sum()))
    return Reliability(predicted, observed, counts)


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> float:
    """Sum over equal-width bins of (rows in bin / rows) · |observed rate - mean probability|."""
    if len(labels) == 0:
        return 0.0
    r = reliability(labels, probabilities, bins)
    total = sum(r.counts)
    return float(sum(c / total * abs(o - p) for p, o, c in zip(r.predicted, r.observed, r.counts)))


def classification_report(labels: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> dict[str, object]:
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, float)
    curve = reliability(labels, probabilities, bins)
    return {
        "rows": int(len(labels)),
        "positive_rate": float(np.mean(labels)) if len(labels) else 0.0,
        "mean_probability": float(np.mean(probabilities)) if len(labels) else 0.0,
        "auc": roc_auc(labels, probabilities),
        "pr_auc": pr_auc(labels, probabilities),
        "log_loss": log_loss(labels, probabilities),
        "brier": brier(labels, probabilities),
        "ece": expected_calibration_error(labels, probabilities, bins),
        "reliability": {"predicted": curve.predicted, "observed": curve.observed, "counts": curve.counts},
    }
