"""Metric functions against hand-computed values and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.evaluation import metrics as m


RECS = ["a", "b", "c", "d", "e"]
RELEVANT = {"b", "d", "x"}


def test_ranking_metrics_on_a_hand_computed_list():
    # Hits at positions 2 and 4; three relevant items.
    assert m.precision_at_k(RECS, RELEVANT, 5) == pytest.approx(2 / 5)
    assert m.recall_at_k(RECS, RELEVANT, 5) == pytest.approx(2 / 3)
    assert m.average_precision_at_k(RECS, RELEVANT, 5) == pytest.approx((1 / 2 + 2 / 4) / 3)
    dcg = 1 / math.log2(3) + 1 / math.log2(5)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m.ndcg_at_k(RECS, RELEVANT, 5) == pytest.approx(dcg / idcg)
    assert m.reciprocal_rank_at_k(RECS, RELEVANT, 5) == pytest.approx(1 / 2)
    assert m.hit_rate_at_k(RECS, RELEVANT, 5) == 1.0


def test_no_hit_in_the_top_k_scores_zero():
    for fn in (m.precision_at_k, m.recall_at_k, m.average_precision_at_k, m.ndcg_at_k, m.reciprocal_rank_at_k,
               m.hit_rate_at_k):
        assert fn(RECS, RELEVANT, 1) == 0.0
        assert fn([], RELEVANT, 5) == 0.0


def test_a_list_shorter_than_k_counts_missing_positions_as_misses():
    recs, relevant = ["b"], {"b", "d"}
    assert m.precision_at_k(recs, relevant, 5) == pytest.approx(1 / 5)
    assert m.recall_at_k(recs, relevant, 5) == pytest.approx(1 / 2)
    assert m.average_precision_at_k(recs, relevant, 5) == pytest.approx(1 / 2)
    assert m.ndcg_at_k(recs, relevant, 5) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert m.reciprocal_rank_at_k(recs, relevant, 5) == 1.0


def test_a_user_without_relevant_items_has_no_score():
    for fn in (m.precision_at_k, m.recall_at_k, m.average_precision_at_k, m.ndcg_at_k, m.reciprocal_rank_at_k,
               m.hit_rate_at_k):
        assert fn(RECS, set(), 5) is None


def test_map_and_ndcg_reach_one_for_a_perfect_list_and_more_relevant_than_k():
    relevant = {"a", "b", "c", "d", "e", "f"}
    assert m.average_precision_at_k(RECS, relevant, 5) == pytest.approx(1.0)
    assert m.ndcg_at_k(RECS, relevant, 5) == pytest.approx(1.0)
    assert m.recall_at_k(RECS, relevant, 5) == pytest.approx(5 / 6)


@settings(max_examples=60, deadline=None)
@given(recs=st.lists(st.sampled_from("abcdefghij"), unique=True, max_size=10),
       relevant=st.sets(st.sampled_from("abcdefghij"), min_size=1), k=st.integers(1, 10))
def test_ranking_metrics_stay_in_range_and_agree_on_hits(recs, relevant, k):
    values = {name: fn(recs, relevant, k) for name, fn in m._PER_USER.items()}
    assert all(0.0 <= v <= 1.0 + 1e-12 for v in values.values())
    hit = values["hit_rate"] == 1.0
    assert (values["precision"] > 0) == hit == (values["ndcg"] > 0) == (values["mrr"] > 0) == (values["map"] > 0)


def test_ranking_report_averages_users_with_relevant_items_and_the_beyond_accuracy_metrics():
    stats = m.CatalogStats(popularity={"a": 3, "b": 1}, n_users=3, catalog_size=10, new_items=frozenset({"c"}),
                           expected=["a", "z"])
    recommendations = {"u1": ["a", "b"], "u2": ["c", "b"], "u3": ["a"]}
    relevant = {"u1": {"b"}, "u2": {"c"}, "u3": set()}  # u3 has nothing relevant: left out
    report = m.ranking_report(recommendations, relevant, [2], stats)["@2"]
    assert report["users"] == 2
    assert report["precision"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert report["mrr"] == pytest.approx((1 / 2 + 1) / 2)
    assert report["coverage"] == pytest.approx(3 / 10)  # a, b, c
    info = {"a": -math.log2(4 / 4), "b": -math.log2(2 / 4), "c": -math.log2(1 / 4)}
    assert report["novelty"] == pytest.approx(((info["a"] + info["b"]) / 2 + (info["c"] + info["b"]) / 2) / 2)
    assert report["new_item_share"] == pytest.approx((0 + 1 / 2) / 2)
    # Relevant and not in the primitive recommender's list (a, z): b for u1, c for u2, each 1 of k = 2.
    assert report["serendipity"] == pytest.approx((1 / 2 + 1 / 2) / 2)


def test_auc_counts_ordered_pairs_and_ties_half():
    assert m.roc_auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.3, 0.1])) == pytest.approx(3 / 4)
    assert m.roc_auc(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert m.roc_auc(np.array([1, 1]), np.array([0.2, 0.4])) is None


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 20)), min_size=2, max_size=40))
def test_auc_matches_scikit_learn(pairs):
    from sklearn.metrics import roc_auc_score

    labels = np.array([p[0] for p in pairs])
    scores = np.array([p[1] for p in pairs], float)
    if labels.all() or not labels.any():
        assert m.roc_auc(labels, scores) is None
    else:
        assert m.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))


def test_calibration_metrics_by_hand():
    labels = np.array([0, 1, 1, 1])
    p = np.array([0.1, 0.1, 0.9, 0.9])
    # Bins of width 0.1: {0.1, 0.1} observes 0.5, {0.9, 0.9} observes 1.0.
    assert m.expected_calibration_error(labels, p, bins=10) == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)
    assert m.brier(labels, p) == pytest.approx((0.01 + 0.81 + 0.01 + 0.01) / 4)
    assert m.log_loss(labels, p) == pytest.approx(-(math.log(0.9) + math.log(0.1) + 2 * math.log(0.9)) / 4)
    curve = m.reliability(labels, p, bins=10)
    assert curve.predicted == pytest.approx([0.1, 0.9]) and curve.observed == [0.5, 1.0] and curve.counts == [2, 2]


def test_a_calibrated_predictor_has_a_small_ece_and_a_shifted_one_does_not():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 200_000)
    labels = rng.uniform(0, 1, len(p)) < p
    assert m.expected_calibration_error(labels, p) < 0.01
    assert m.expected_calibration_error(labels, np.clip(p + 0.2, 0, 1)) > 0.1


def test_classification_report_has_every_field():
    report = m.classification_report(np.array([0, 1, 0, 1]), np.array([0.2, 0.7, 0.4, 0.9]))
    assert set(report) == {"rows", "positive_rate", "mean_probability", "auc", "pr_auc", "log_loss", "brier", "ece",
                           "reliability"}
    assert report["auc"] == 1.0 and report["rows"] == 4 and report["pr_auc"] == pytest.approx(1.0)
