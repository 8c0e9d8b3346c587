"""Exactly once: duplicates, a batch cut part-way, store outages, and any order of delivery give exact features."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pit_helpers import DAY, NOW, CuttingProxy, make_event
from redis.backoff import NoBackoff
from redis.retry import Retry

from recsys.config import PitFeatureConfig
from recsys.events import Event
from recsys.features import FeatureReader, FeatureWriter, ItemCatalog

CONFIG = PitFeatureConfig()
ITEMS = [
    {"ITEM_ID": "A", "GENRES": "comedy|drama", "CREATOR": "c1", "FRANCHISE": "f1", "CREATION_TIMESTAMP": NOW - DAY},
    {"ITEM_ID": "B", "GENRES": "news", "CREATOR": "c2"},
    {"ITEM_ID": "C", "GENRES": "comedy", "CREATOR": "c1", "FRANCHISE": "f1"},
]


def batch_of_events() -> list[Event]:
    kinds = ["listen", "like", "watch", "purchase", "view", "click", "impression"]
    return [
        make_event(f"e{n}", kinds[n % len(kinds)], age_s=n * 997 % (3 * DAY), item_id="ABC"[n % 3],
                   user_id=f"u{n % 4}", value=60.0 * (n % 11))
        for n in range(60)
    ]


def features(client: Any, users: tuple[str, ...] = ("u0", "u1", "u2", "u3")) -> dict[str, Any]:
    """Every feature of the users and of items A, B, C."""
    reader = FeatureReader(client, CONFIG)
    return {user: _as_dict(reader.read(user, ["A", "B", "C"], now=NOW)) for user in users}


def _as_dict(snapshot) -> dict[str, Any]:
    return {"user": snapshot.user, "items": {item: snapshot.items[item] for item in snapshot.items}}


def same(got: Any, expected: Any) -> bool:
    """Equal, floats within 1e-9 relative: affinities are sums of floats, added in the order events arrive."""
    if isinstance(got, float) and isinstance(expected, float):
        return got == pytest.approx(expected, rel=1e-9)
    if isinstance(got, dict) and isinstance(expected, dict):
        return got.keys() == expected.keys() and all(same(got[k], expected[k]) for k in got)
    if isinstance(got, list) and isinstance(expected, list):
        return len(got) == len(expected) and all(same(g, e) for g, e in zip(got, expected))
    return got == expected


@pytest.fixture
def reference(redis_client) -> dict[str, Any]:
    """The features of batch_of_events() applied once, cleanly, on the session's server."""
    ItemCatalog(redis_client).upsert_items(ITEMS)
    FeatureWriter(redis_client, CONFIG).apply(batch_of_events())
    expected = features(redis_client)
    redis_client.flushall()
    return expected


def no_retry_client(port: int, **options: Any) -> redis.Redis:
    return redis.Redis(port=port, retry=Retry(NoBackoff(), 0), **options)


def test_the_same_event_twice_counts_once(redis_client):
    ItemCatalog(redis_client).upsert_items(ITEMS)
    writer = FeatureWriter(redis_client, CONFIG)
    like = make_event("e1", "like", 10)
    outcomes = writer.apply([like, make_event("e2", "listen", 5, value=400), like])  # a duplicate within a batch
    assert [(o.event_id, o.status) for o in outcomes] == [("e1", "applied"), ("e2", "applied"), ("e1", "duplicate")]
    assert [o.status for o in writer.apply([like])] == ["duplicate"]  # a redelivery
    snapshot = FeatureReader(redis_client, CONFIG).read("u1", ["A"], now=NOW)
    a = snapshot.items["A"]
    assert (a["item_likes"], a["item_events"], a["item_events_1h"], a["creator_plays"]) == (1, 2, 2, 1)
    assert snapshot.user["user_events_like"] == 1
    assert dict(snapshot.user["user_creator_affinity"]) == pytest.approx({"c1": 3 * 2 ** (-10 / (14 * DAY)) + 2 * 2 ** (
        -5 / (14 * DAY))})


def test_an_event_id_is_deduplicated_per_entity_not_per_content(redis_client):
    writer = FeatureWriter(redis_client, CONFIG)
    writer.apply([make_event("same-id", "like", 10)])
    # another event with the same id for another user and item: new to those entities, applied there only
    assert [o.status for o in writer.apply([make_event("same-id", "like", 10, item_id="B", user_id="u2")])] == [
        "applied"]
    items = FeatureReader(redis_client, CONFIG).read("u2", ["A", "B"], now=NOW).items
    assert (items["A"]["item_likes"], items["B"]["item_likes"]) == (1, 1)


@pytest.mark.parametrize("budget", [1500, 9000])  # bytes of the scripts pipeline that reach the server
def test_a_batch_cut_part_way_then_retried_gives_exact_totals(own_valkey, reference, budget):
    direct = no_retry_client(own_valkey.port)
    ItemCatalog(direct).upsert_items(ITEMS)
    events = batch_of_events()
    FeatureWriter(direct, CONFIG).apply([make_event("warm-up", "impression", 0, user_id="x")])  # loads the scripts
    direct.delete(*direct.keys("pit:{u:x}:*"))

    proxy = CuttingProxy(own_valkey.port, budget)
    with pytest.raises(redis.ConnectionError):
        FeatureWriter(no_retry_client(proxy.port, socket_timeout=2), CONFIG).apply(events)
    partial = features(direct)
    assert not same(partial, reference), "the cut came after the whole batch"
    assert any(partial[u]["user"]["user_events"] > 0 for u in partial), "the cut came before the first script"

    outcomes = FeatureWriter(direct, CONFIG).apply(events)  # the retry (SQS redelivers the batch)
    # an event is a duplicate when all its entities were updated before the cut; "applied" when any was missing
    duplicates = sum(o.status == "duplicate" for o in outcomes)
    assert duplicates < len(events)
    if budget > 5000:
        assert duplicates > 0
    assert same(features(direct), reference)


def test_a_store_that_stops_answering_fails_the_batch_and_the_retry_is_exact(own_valkey, reference):
    direct = no_retry_client(own_valkey.port)
    ItemCatalog(direct).upsert_items(ITEMS)
    events = batch_of_events()
    writer = FeatureWriter(direct, CONFIG)
    writer.apply(events[:10])
    paused = FeatureWriter(no_retry_client(own_valkey.port, socket_timeout=0.3), CONFIG)
    os.kill(own_valkey.pid, signal.SIGSTOP)  # a hung node: connections open, no answers
    try:
        with pytest.raises(redis.TimeoutError):
            paused.apply(events)
    finally:
        os.kill(own_valkey.pid, signal.SIGCONT)  # it then runs what it had received, but nobody hears the answer
    writer.apply(events)
    assert same(features(direct), reference)


def test_a_store_that_is_down_raises_a_redis_error(own_valkey):
    writer = FeatureWriter(no_retry_client(own_valkey.port, socket_connect_timeout=0.5), CONFIG)
    own_valkey.stop()
    with pytest.raises(redis.ConnectionError):
        writer.apply([make_event("e1", "like", 10)])


def test_invalid_events_fail_the_call_before_anything_is_written(redis_client):
    with pytest.raises(ValueError, match="event 'e2': timestamp must be unix seconds"):
        FeatureWriter(redis_client, CONFIG).apply([make_event("e1", "like", 10), make_event("e2", "like", NOW)])
    assert redis_client.dbsize() == 0


EVENT_POOL = [
    make_event(f"p{n}", kind, age, item_id=item, user_id="u1", value=value, **({"progress": "0.3"} if n % 5 else {}))
    for n, (kind, age, item, value) in enumerate([
        ("listen", 10, "A", 400.0), ("listen", 3599, "A", 100.0), ("like", 20 * 60, "B", None),
        ("watch", 2 * DAY, "C", 301.0), ("purchase", 6 * DAY, "A", 5.0), ("view", 3 * 3600, "B", None),
        ("listen", 8 * DAY, "C", 900.0), ("click", 50, "C", None), ("watch", 30, "C", 60.0),
        ("impression", 5, "A", None), ("view", 10, "A", None), ("listen", 3601 * 24, "B", 1000.0),
    ])
]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(EVENT_POOL), min_size=1, max_size=30), st.randoms(use_true_random=False),
       st.integers(1, 7))
def test_any_order_with_duplicates_gives_the_features_of_each_event_once_in_order(redis_client, delivered, rnd, size):
    """Delivery in any order, any batching, with redeliveries == each distinct event applied once in time order."""
    rnd.shuffle(delivered)
    redis_client.flushall()
    ItemCatalog(redis_client).upsert_items(ITEMS)
    writer = FeatureWriter(redis_client, CONFIG)
    for start in range(0, len(delivered), size):
        writer.apply(delivered[start:start + size])
    got = features(redis_client, users=("u1",))

    redis_client.flushall()
    ItemCatalog(redis_client).upsert_items(ITEMS)
    once = sorted({e.event_id: e for e in delivered}.values(), key=lambda e: e.timestamp)
    writer.apply(once)
    assert same(got, features(redis_client, users=("u1",)))
