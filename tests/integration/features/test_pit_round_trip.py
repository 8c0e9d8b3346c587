"""Writer + reader on the real Valkey server: features against hand-computed values."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pit_helpers import DAY, MIDNIGHT, NOW, make_event

from recsys.config import PitFeatureConfig
from recsys.features import PIT_FEATURES, FeatureReader, FeatureWriter, ItemCatalog, layout
from recsys.features.spec import W_1H, W_7D, W_24H

CONFIG = PitFeatureConfig()  # qualified sessions > 5 min, creator recent items: 30 days, half-life 14 days
HALF_LIFE = 14 * DAY


def decayed(*weights_and_ages: tuple[float, float]) -> float:
    return sum(w * 2 ** (-age / HALF_LIFE) for w, age in weights_and_ages)


@pytest.fixture
def catalog(redis_client):
    catalog = ItemCatalog(redis_client)
    catalog.upsert_items([
        {"ITEM_ID": "A", "GENRES": "Comedy|Drama", "CREATOR": "c1", "FRANCHISE": "f1", "PRICE": "3.5",
         "IS_PAID": "true", "CREATION_TIMESTAMP": NOW - 10 * DAY},
        {"ITEM_ID": "B", "CREATOR": "c1", "CREATION_TIMESTAMP": NOW - 40 * DAY, "IS_ANIMATED_SERIES": 1},
        {"ITEM_ID": "C", "GENRES": "News"},
    ])
    catalog.upsert_users([{"USER_ID": "u1", "AGE": 34, "TOPICS": "comedy|sport"}])
    return catalog


def test_item_counts_windows_and_creator_popularity(redis_client, catalog):
    writer = FeatureWriter(redis_client, CONFIG)
    writer.apply([
        make_event("e1", "listen", 10, value=400),          # 1h, 24h, 7d; qualified (> 300 s)
        make_event("e2", "listen", 3599, value=100),        # 11:30:11, before the oldest 5-min bucket of the hour
        make_event("e3", "purchase", 2 * DAY, value=9.99),  # 7d only
        make_event("e4", "watch", 8 * DAY, value=301),      # no window; qualified
        make_event("e7", "impression", 5),                  # counted nowhere on the item
    ])
    # arrives last but happened 20 minutes ago: lands in the hour's windows
    writer.apply([make_event("e5", "listen", 20 * 60, value=50),
                  make_event("e8", "listen", 3600, item_id="B", user_id="u2", value=600)])

    items = FeatureReader(redis_client, CONFIG).read("u1", ["A", "B", "C"], now=NOW).items
    a = items["A"]
    assert {k: a[k] for k in ("item_events", "item_plays", "item_purchases", "item_likes", "item_views",
                              "item_qualified_sessions")} == {
        "item_events": 5, "item_plays": 4, "item_purchases": 1, "item_likes": 0, "item_views": 0,
        "item_qualified_sessions": 2}
    assert (a["item_events_1h"], a["item_events_24h"], a["item_events_7d"]) == (2, 3, 4)
    assert (a["item_plays_1h"], a["item_plays_24h"], a["item_plays_7d"]) == (2, 3, 3)
    assert (a["item_purchases_1h"], a["item_purchases_24h"], a["item_purchases_7d"]) == (0, 0, 1)
    assert (a["item_price"], a["item_is_paid"], a["item_is_animated_series"], a["item_age_days"]) == (3.5, 1, 0, 10)
    # c1's plays: A's four and B's one; B was 40 days old when played, so only A's count as recent items' plays
    assert (a["creator_plays"], a["creator_recent_plays"]) == (5, 4)
    assert (items["B"]["creator_plays"], items["B"]["creator_recent_plays"]) == (5, 4)
    assert items["B"]["item_is_animated_series"] == 1 and items["B"]["item_plays_24h"] == 1
    assert items["C"]["item_events"] == 0 and items["C"]["creator_plays"] == 0


def test_windows_move_with_the_read_time(redis_client, catalog):
    FeatureWriter(redis_client, CONFIG).apply([make_event("e1", "listen", 10, value=60)])
    reader = FeatureReader(redis_client, CONFIG)

    def windows(now: float) -> tuple[float, float, float]:
        a = reader.read("u1", ["A"], now=now).items["A"]
        return a["item_plays_1h"], a["item_plays_24h"], a["item_plays_7d"]

    # the event is at 12:30:00 of day D: bucket 12:30 (5 min), hour 12, day D
    assert windows(NOW) == (1, 1, 1)
    assert windows(NOW - 11) == (0, 0, 0)  # before the event: nothing (point in time)
    assert windows(NOW - 10 + 3599) == (1, 1, 1)  # 13:29:59: 12:30 is the oldest of the 12 newest 5-min buckets
    assert windows(NOW - 10 + 3600) == (0, 1, 1)  # 13:30:00
    assert windows(MIDNIGHT + DAY + 12 * 3600 - 1) == (0, 1, 1)  # D+1 11:59:59: hour 12 of D is the oldest of 24
    assert windows(MIDNIGHT + DAY + 12 * 3600) == (0, 0, 1)
    assert windows(MIDNIGHT + 7 * DAY - 1) == (0, 0, 1)  # day D is the oldest of 7
    assert windows(MIDNIGHT + 7 * DAY) == (0, 0, 0)


def test_a_bucket_holding_an_event_after_now_is_left_out_of_the_windows(redis_client, catalog):
    writer = FeatureWriter(redis_client, CONFIG)
    writer.apply([make_event("e1", "listen", 10, value=60), make_event("e2", "listen", 15 * 60, value=60)])
    reader = FeatureReader(redis_client, CONFIG)
    assert reader.read("u1", ["A"], now=NOW).items["A"]["item_plays_1h"] == 2
    writer.apply([make_event("e3", "listen", -30, value=60)])  # 30 s after NOW, in NOW's bucket
    a = reader.read("u1", ["A"], now=NOW).items["A"]
    assert a["item_plays_1h"] == 1  # NOW's bucket now holds a later event: never count the future
    assert a["item_plays"] == 3  # all-time totals are not point in time
    assert reader.read("u1", ["A"], now=NOW + 30).items["A"]["item_plays_1h"] == 3


def test_events_older_than_a_ring_do_not_disturb_newer_buckets(redis_client, catalog):
    writer = FeatureWriter(redis_client, CONFIG)
    writer.apply([make_event("e1", "listen", 60, value=60)])
    # exactly 1 h earlier: the same 5-minute slot of the ring, an expired bucket: skipped, not added or reset
    writer.apply([make_event("e2", "listen", 3660, value=60)])
    a = FeatureReader(redis_client, CONFIG).read("u1", ["A"], now=NOW).items["A"]
    assert (a["item_plays_1h"], a["item_plays_24h"], a["item_plays"]) == (1, 2, 2)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 9 * DAY), min_size=1, max_size=40), st.randoms(use_true_random=False),
       st.integers(0, 8 * DAY))
def test_windows_count_exactly_the_events_of_their_buckets_whatever_the_order(redis_client, ages, rnd, later):
    """Any arrival order, read at NOW or later: a window counts the events of its N newest buckets up to the read."""
    redis_client.flushall()
    events = [make_event(f"e{n}", "listen", age, value=60) for n, age in enumerate(ages)]
    rnd.shuffle(events)
    writer = FeatureWriter(redis_client, CONFIG)
    for start in range(0, len(events), 3):
        writer.apply(events[start:start + 3])
    reader = FeatureReader(redis_client, CONFIG)
    for now in (NOW, NOW + later):
        got = reader.read("u1", ["A"], now=now).items["A"]
        for window in (W_1H, W_24H, W_7D):
            size, buckets = window.bucket_seconds, window.buckets(CONFIG)
            expected = sum(1 for e in events if int(e.timestamp) // size > now // size - buckets)
            assert got[f"item_plays_{window.name}"] == expected, (window.name, now)


def test_user_counts_recent_items_and_affinities(redis_client, catalog):
    FeatureWriter(redis_client, CONFIG).apply([
        make_event("e1", "listen", 10, value=400),
        make_event("e2", "like", 2 * DAY),
        make_event("e3", "watch", 300, item_id="C", value=1200, progress="0.5"),
        make_event("e4", "view", DAY, item_id="C"),  # older than e3: C keeps e3's entry
        make_event("e5", "impression", 1, item_id="B"),  # not an interaction: not a recent item
        make_event("e6", "click", 60, item_id="unknown-item"),
    ])
    snapshot = FeatureReader(redis_client, CONFIG).read("u1", ["A", "C"], now=NOW)
    user = snapshot.user
    assert user["user_events"] == 5 and user["user_events_impression"] == 1
    assert (user["user_events_listen"], user["user_events_like"], user["user_events_watch"]) == (1, 1, 1)
    assert user["user_recent_items"] == [
        {"item_id": "A", "timestamp": NOW - 10, "event_type": "listen", "seconds": 400.0, "progress": None},
        {"item_id": "unknown-item", "timestamp": NOW - 60, "event_type": "click", "seconds": None, "progress": None},
        {"item_id": "C", "timestamp": NOW - 300, "event_type": "watch", "seconds": 1200.0, "progress": 0.5},
    ]
    a_score = decayed((2, 10), (3, 2 * DAY))  # listen weight 2, like weight 3
    c_score = decayed((2, 300), (1, DAY))  # watch 2, view 1
    assert dict(user["user_topic_affinity"]) == pytest.approx({"comedy": a_score, "drama": a_score, "news": c_score})
    assert user["user_topic_affinity"][0][0] == "comedy"  # strongest first, ties by name
    assert dict(user["user_creator_affinity"]) == pytest.approx({"c1": a_score})
    assert dict(user["user_franchise_affinity"]) == pytest.approx({"f1": a_score})
    assert (user["user_age"], user["user_profile_topics"]) == (34.0, ["comedy", "sport"])
    a, c = snapshot.items["A"], snapshot.items["C"]
    assert a["affinity_topic"] == pytest.approx(2 * a_score)  # comedy + drama
    assert (a["affinity_creator"], a["affinity_franchise"]) == pytest.approx((a_score, a_score))
    assert (c["affinity_topic"], c["affinity_creator"]) == pytest.approx((c_score, 0.0))
    assert (a["profile_topic_match"], c["profile_topic_match"]) == (1, 0)


def test_the_last_n_items_are_the_newest_by_event_time_whatever_the_arrival_order(redis_client, catalog):
    config = replace(CONFIG, recent_items=3)
    writer = FeatureWriter(redis_client, config)
    ages = {"i1": 500, "i2": 100, "i3": 400, "i4": 200, "i5": 300, "i6": 600, "i7": 50}
    for n, (item, age) in enumerate(ages.items()):  # one batch each: trimming runs along the way
        writer.apply([make_event(f"e{n}", "view", age, item_id=item)])
    writer.apply([make_event("late", "view", 1000, item_id="i7")])  # an older view of i7 changes nothing
    recent = FeatureReader(redis_client, config).read("u1", [], now=NOW).user["user_recent_items"]
    assert [(e["item_id"], e["timestamp"]) for e in recent] == [("i7", NOW - 50), ("i2", NOW - 100), ("i4", NOW - 200)]
    assert redis_client.hlen("pit:{u:u1}:recent") <= int(3 * 1.5)  # trimmed as it grows
    # point in time: a read before i7's view lists the items seen by then
    earlier = FeatureReader(redis_client, config).read("u1", [], now=NOW - 60).user["user_recent_items"]
    assert [e["item_id"] for e in earlier] == ["i2", "i4"]  # i5 was trimmed when i7 arrived


def test_missing_keys_give_the_documented_defaults(redis_client):
    snapshot = FeatureReader(redis_client, CONFIG).read("nobody", ["nothing", "nothing", "none"], now=NOW)
    defaults = {s.name: ([] if s.dtype == "list" else s.default) for s in PIT_FEATURES}
    assert snapshot.user == {s.name: defaults[s.name] for s in PIT_FEATURES if s.entity == "user"}
    assert list(snapshot.items) == ["nothing", "none"]
    for item in ("nothing", "none"):
        assert snapshot.items[item] == {name: defaults[name] for name in snapshot.items.names}


def test_the_matrix_and_columns_hold_the_same_values_as_the_rows(redis_client, catalog):
    FeatureWriter(redis_client, CONFIG).apply([make_event("e1", "like", 10), make_event("e2", "view", 10, item_id="C")])
    items = FeatureReader(redis_client, CONFIG).read("u1", ["C", "A"], now=NOW).items
    assert items.column("item_likes").tolist() == [0, 1]
    assert items.matrix.shape == (2, len(items.names))
    assert items.get("A")["item_likes"] == 1 and items.get("Z") is None


def test_the_catalog_keeps_every_column_and_an_upsert_replaces_the_previous_one(redis_client, catalog):
    catalog.upsert_items([{"ITEM_ID": "A", "GENRES": ["Horror"], "DOWNLOADS": 17, "IS_PAID": False}])
    assert redis_client.hgetall(layout.item_key("A", "meta")) == {
        b"ITEM_ID": b"A", b"GENRES": b"Horror", b"DOWNLOADS": b"17", b"IS_PAID": b"false"}
    a = FeatureReader(redis_client, CONFIG).read("u1", ["A"], now=NOW).items["A"]
    assert (a["item_price"], a["item_is_paid"], a["item_age_days"], a["profile_topic_match"]) == (0, 0, -1, 0)


def test_a_bad_record_writes_nothing_of_its_call(redis_client, catalog):
    with pytest.raises(ValueError, match=r"items\[1\].PRICE: must be >= 0"):
        catalog.upsert_items([{"ITEM_ID": "D"}, {"ITEM_ID": "E", "PRICE": -2}])
    assert not redis_client.exists(layout.item_key("D", "meta"))
    with pytest.raises(ValueError, match=r"users\[0\]: must be an object"):
        catalog.upsert_users(["u9"])
