"""Sticky, deterministic variant assignment."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.recommend.assignment import assign_variant, bucket

user_ids = st.text(min_size=1, max_size=40)
weights = st.lists(st.floats(min_value=0.0, max_value=10.0, allow_nan=False), min_size=1, max_size=5).filter(
    lambda ws: sum(ws) > 0).map(lambda ws: [(f"v{i}", w) for i, w in enumerate(ws)])


@given(user_ids, st.text(max_size=20), weights)
def test_a_user_stays_in_one_arm_and_never_in_a_zero_weight_arm(user_id, experiment, arms):
    first = assign_variant(user_id, experiment, arms)
    assert all(assign_variant(user_id, experiment, arms) == first for _ in range(3))
    assert dict(arms)[first] > 0


@given(user_ids, st.text(max_size=20))
def test_bucket_is_a_fraction(user_id, experiment):
    assert 0.0 <= bucket(user_id, experiment) < 1.0


@settings(max_examples=20, deadline=None)
@given(st.floats(min_value=0.05, max_value=0.95))
def test_shares_follow_the_weights(share):
    users = 4000
    arms = [("champion", 1 - share), ("challenger", share)]
    challenger = sum(assign_variant(f"user-{n}", "ranker", arms) == "challenger" for n in range(users))
    # binomial: 5 standard deviations
    assert abs(challenger - share * users) <= 5 * math.sqrt(users * share * (1 - share))


def test_growing_the_challenger_only_moves_users_into_it():
    small = [("champion", 0.9), ("challenger", 0.1)]
    large = [("champion", 0.6), ("challenger", 0.4)]
    for n in range(2000):
        before = assign_variant(f"u{n}", "exp", small)
        after = assign_variant(f"u{n}", "exp", large)
        assert before == after or (before == "champion" and after == "challenger")


def test_another_experiment_reshuffles_users():
    arms = [("a", 1.0), ("b", 1.0)]
    same = sum(assign_variant(f"u{n}", "one", arms) == assign_variant(f"u{n}", "two", arms) for n in range(2000))
    assert 850 < same < 1150


@pytest.mark.parametrize("arms", [[], [("a", 0.0)], [("a", -1.0), ("b", 2.0)]])
def test_invalid_weights_are_refused(arms):
    with pytest.raises(ValueError, match="weights"):
        assign_variant("u1", "exp", arms)
