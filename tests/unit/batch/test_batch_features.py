"""Every batch feature against values computed by hand from lake_fixture.py (cutoff 2024-03-01, 60-day window).

The fixture's events include some at and after the cutoff (e10 exactly at it); none may show up here.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from recsys.batch.derived import user_item_features
from recsys.batch.spec import ACTIVITY_KINDS, ACTIVITY_WINDOWS_DAYS, EVENT_TIME, columns_of, features_of
from tests.unit.batch.conftest import by_key
from tests.unit.batch.lake_fixture import CUTOFF, DAY

pytestmark = pytest.mark.spark

# Activity of u1 (e1..e8; e9 is 65 days old, e10 is at the cutoff): kind -> counts over 7/30/60 days.
U1_ACTIVITY = {
    "view": (1, 1, 2),  # e1 (2 d), e6 (40 d)
    "click": (1, 1, 1),  # e2
    "like": (0, 1, 1),  # e4 (10 d)
    "play": (1, 1, 1),  # e3 listen
    "purchase": (0, 1, 1),  # e5 (10 d)
    "rating": (0, 0, 1),  # e8 (50 d)
    "impression": (1, 1, 1),  # e7
}
U2_ACTIVITY = {
    "view": (1, 1, 1),  # e14 (3 d)
    "click": (0, 0, 0),
    "like": (0, 1, 1),  # e13 (20 d)
    "play": (2, 2, 2),  # e11, e12 watch (5 d)
    "purchase": (0, 1, 1),  # e15 (25 d)
    "rating": (0, 0, 0),
    "impression": (0, 0, 0),
}


def _spark_type(dtype: str) -> str:
    return {"integral": "bigint", "fractional": "double", "string": "string"}[dtype]


@pytest.mark.parametrize("entity", ["user", "item"])
def test_tables_have_exactly_the_spec_columns_and_types(entity, user_table, item_table):
    table = {"user": user_table, "item": item_table}[entity]
    assert table.columns == [*columns_of(entity), EVENT_TIME]
    types = dict(table.dtypes)
    for spec in features_of(entity):
        assert types[spec.name] == _spark_type(spec.dtype), spec.name


@pytest.mark.parametrize(("user", "expected"), [("u1", U1_ACTIVITY), ("u2", U2_ACTIVITY)])
def test_user_activity_per_kind_and_window(users_by_id, user, expected):
    row = users_by_id[user]
    for kind in ACTIVITY_KINDS:
        got = tuple(row[f"user_{kind}_count_{days}d"] for days in ACTIVITY_WINDOWS_DAYS)
        assert got == expected[kind], kind


def test_user_behaviour_features(users_by_id):
    u1, u2 = users_by_id["u1"], users_by_id["u2"]
    assert (u1["user_distinct_items"], u2["user_distinct_items"]) == (3, 3)
    # Last interaction: u1 e3 at 2 days - 120 s before the cutoff; u2 e14 at 3 days.
    assert u1["user_days_since_last_event"] == pytest.approx(2 - 120 / DAY)
    assert u2["user_days_since_last_event"] == pytest.approx(3.0)
    assert (u1["user_play_seconds"], u2["user_play_seconds"]) == (400.0, 350.0)
    # u1: session s1 (e1..e3: 120 s + a 400 s listen = 520 s, qualified); by 30-min gaps [e8], [e6], [e4 e5] (100 s).
    assert u1["user_session_count"] == 4
    assert u1["user_avg_session_seconds"] == pytest.approx((520 + 0 + 0 + 100) / 4)
    assert u1["user_qualified_session_share"] == pytest.approx(0.25)
    # u2: session s9 (200 s + a 250 s watch = 450 s, 350 s of play: qualified), and [e15], [e13], [e14].
    assert u2["user_session_count"] == 4
    assert u2["user_avg_session_seconds"] == pytest.approx(450 / 4)
    assert u2["user_qualified_session_share"] == pytest.approx(0.25)


def test_user_affinities_and_price_sensitivity(users_by_id):
    u1, u2 = users_by_id["u1"], users_by_id["u2"]
    # u1's 7 interactions with catalogued items: Comedy on 6 (i1 x4, i2 x2), Drama on 5, Horror on 1.
    assert (u1["user_top_category"], u1["user_top_category_share"]) == ("Comedy", pytest.approx(6 / 7))
    assert (u1["user_top_creator"], u1["user_top_creator_share"]) == ("c1", pytest.approx(6 / 7))
    # u2: i3 (Drama|Horror, c2) x3, i1 (Comedy|Drama, c1) x1; i5 has no metadata.
    assert (u2["user_top_category"], u2["user_top_category_share"]) == ("Drama", pytest.approx(1.0))
    assert (u2["user_top_creator"], u2["user_top_creator_share"]) == ("c2", pytest.approx(3 / 4))
    # Catalogue mean price at the cutoff: i1 10, i2 20, i3 30 (i4 is released later) = 20.
    assert u1["user_price_sensitivity"] == pytest.approx(15 / 20)  # click i1 (10), purchase i2 (20)
    assert u2["user_price_sensitivity"] == pytest.approx(10 / 20)  # purchase i1


def test_user_profile_fields_and_profile_only_users(users_by_id):
    u1, u2, u3 = users_by_id["u1"], users_by_id["u2"], users_by_id["u3"]
    assert (u1["user_geo"], u1["user_acquisition_channel"], u1["user_membership"], u1["user_age"]) == (
        "ES",
        "ads",
        "gold",
        30,
    )
    assert u1["user_profile_topics"] == "Comedy|drama"
    assert (u2["user_geo"], u2["user_acquisition_channel"], u2["user_age"], u2["user_profile_topics"]) == (
        "IN",
        None,
        None,
        None,
    )
    # u3 has a profile and no history: zero counts, no behaviour features.
    assert (u3["user_geo"], u3["user_age"], u3["user_profile_topics"]) == ("US", 17, "Horror")
    assert all(u3[f"user_{k}_count_{d}d"] == 0 for k in ACTIVITY_KINDS for d in ACTIVITY_WINDOWS_DAYS)
    assert (u3["user_distinct_items"], u3["user_session_count"], u3["user_days_since_last_event"]) == (0, 0, None)
    assert u3["user_top_category"] is None and u3["user_price_sensitivity"] is None
    assert set(users_by_id) == {"u1", "u2", "u3"}
    assert {row[EVENT_TIME] for row in users_by_id.values()} == {CUTOFF}


def test_item_counts_rates_and_trend(items_by_id):
    i1, i2, i3, i5 = (items_by_id[i] for i in ("i1", "i2", "i3", "i5"))
    counts = ("item_view_count", "item_click_count", "item_like_count", "item_play_count", "item_purchase_count")
    assert tuple(i1[c] for c in counts) == (1, 1, 0, 1, 1)  # e1, e2, e3, e15 (e8 is a rating, e10 at the cutoff)
    assert tuple(i2[c] for c in counts) == (0, 0, 1, 0, 1)
    assert tuple(i3[c] for c in counts) == (1, 0, 1, 2, 0)  # e9 is outside the window
    assert (i1["item_impression_count"], i2["item_impression_count"], i3["item_impression_count"]) == (0, 1, 1)
    assert (i1["item_distinct_users"], i2["item_distinct_users"], i3["item_distinct_users"]) == (2, 1, 2)
    assert (i1["item_like_rate"], i2["item_like_rate"], i3["item_like_rate"]) == (0.0, 1.0, 0.5)
    # Trend: (short count / 7) / (long count / 30).
    assert i1["item_trend_velocity"] == pytest.approx((3 / 7) / (4 / 30))
    assert i2["item_trend_velocity"] == 0.0
    assert i3["item_trend_velocity"] == pytest.approx((2 / 7) / (3 / 30))
    assert i5["item_trend_velocity"] == pytest.approx((1 / 7) / (1 / 30))
    assert (i1["item_purchase_propensity"], i2["item_purchase_propensity"], i3["item_purchase_propensity"]) == (
        1.0,
        None,
        0.0,
    )
    assert (i1["item_avg_play_seconds"], i3["item_avg_play_seconds"], i2["item_avg_play_seconds"]) == (
        400.0,
        175.0,
        None,
    )
    assert (i1["item_avg_rating"], i3["item_avg_rating"]) == (8.0, None)


def test_item_catalogue_and_creator_features(items_by_id):
    i1, i2, i3, i5 = (items_by_id[i] for i in ("i1", "i2", "i3", "i5"))
    assert (i1["item_age_days"], i2["item_age_days"], i3["item_age_days"], i5["item_age_days"]) == (
        100.0,
        10.0,
        1.0,
        None,
    )
    # Creator c1 (i1, i2): e1 e2 e3 e4 e5 e15 in the last 30 days; c2 (i3): e11 e12 e13 (e6 is 40 days old).
    assert (i1["item_creator_popularity"], i2["item_creator_popularity"], i3["item_creator_popularity"]) == (6, 6, 3)
    assert i5["item_creator_popularity"] is None
    assert (i1["item_creator"], i1["item_categories"], i1["item_franchise"], i1["item_price"], i1["item_is_paid"]) == (
        "c1",
        "Comedy|Drama",
        "f1",
        10.0,
        1,
    )
    assert (i2["item_is_paid"], i3["item_is_paid"], items_by_id["i6"]["item_is_paid"]) == (0, None, 0)


def test_item_rows_cover_catalogue_and_history_but_not_future_releases(items_by_id):
    # i4 is released after the cutoff; i7 was only ever shown (impression of e7).
    assert set(items_by_id) == {"i1", "i2", "i3", "i5", "i6", "i7"}
    i7 = items_by_id["i7"]
    assert (i7["item_impression_count"], i7["item_distinct_users"], i7["item_like_rate"], i7["item_creator"]) == (
        1,
        0,
        None,
        None,
    )


def test_item_pairs_jaccard_without_cross_join(spark, frames, batch_config):
    from recsys.batch.spark_features import compute_item_pairs

    _, _, items = frames
    pairs = compute_item_pairs(items, CUTOFF, batch_config)
    assert pairs.columns == [*columns_of("item_pair"), EVENT_TIME]
    got = {
        k: (r["item_pair_jaccard"], r["item_pair_shared_tokens"])
        for k, r in by_key(pairs, "item_id", "other_item_id").items()
    }
    # Tokens: i1 {Comedy, Drama, c1, f1}, i2 {Comedy, c1}, i3 {Drama, Horror, c2, f1}, i6 {Comedy}; i2-i3 share none.
    expected = {("i1", "i2"): (0.5, 2), ("i1", "i3"): (2 / 6, 2), ("i1", "i6"): (0.25, 1), ("i2", "i6"): (0.5, 1)}
    expected.update({(b, a): value for (a, b), value in expected.items()})
    assert got.keys() == expected.keys()
    for pair, (jaccard, shared) in expected.items():
        assert got[pair] == (pytest.approx(jaccard), shared), pair


def test_item_pairs_common_token_cap_and_top_k(spark, frames, batch_config):
    from recsys.batch.spark_features import compute_item_pairs

    _, _, items = frames
    # Comedy is carried by 3 items > 2: it proposes no pair; i1-i2 still come through c1, with the exact Jaccard.
    config = replace(batch_config, pair_token_max_items=2, similar_items_per_item=1)
    got = {
        k: r["item_pair_jaccard"]
        for k, r in by_key(compute_item_pairs(items, CUTOFF, config), "item_id", "other_item_id").items()
    }
    assert got == {("i1", "i2"): 0.5, ("i2", "i1"): 0.5, ("i3", "i1"): pytest.approx(1 / 3)}


def test_derived_user_item_features_agree_between_spark_and_python(
    spark, users_by_id, items_by_id, user_table, item_table
):
    from recsys.batch.spark_features import add_user_item_features

    joined = user_table.drop(EVENT_TIME).crossJoin(item_table.drop(EVENT_TIME))
    spark_rows = by_key(add_user_item_features(joined), "user_id", "item_id")
    names = [f.name for f in features_of("user_item")]
    for (user, item), row in spark_rows.items():
        assert {n: row[n] for n in names} == user_item_features(users_by_id[user], items_by_id[item]), (user, item)
    assert user_item_features(users_by_id["u1"], items_by_id["i1"]) == {
        "pair_category_match": 1,
        "pair_creator_match": 1,
        "pair_profile_topic_match": 1,
    }
    # u3's profile topic Horror: i3 carries it, i1 does not; u3 has no behaviour, so no top category/creator.
    assert user_item_features(users_by_id["u3"], items_by_id["i3"]) == {
        "pair_category_match": 0,
        "pair_creator_match": 0,
        "pair_profile_topic_match": 1,
    }
    assert user_item_features(users_by_id["u2"], items_by_id["i2"])["pair_category_match"] == 0
