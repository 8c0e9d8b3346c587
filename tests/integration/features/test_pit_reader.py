"""The reader's cost: round trips per read, whatever the number of items."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
import redis
from pit_helpers import NOW, make_event

from recsys.config import PitFeatureConfig
from recsys.features import PIT_FEATURES, FeatureReader, FeatureWriter, ItemCatalog

CONFIG = PitFeatureConfig()


class CountingConnection(redis.Connection):
    """Counts the requests sent: a pipeline is one send, answered by one stream of replies (one round trip)."""

    sends = 0

    def send_packed_command(self, command, check_health=True):
        CountingConnection.sends += 1
        return super().send_packed_command(command, check_health)


@pytest.fixture
def counting_client(redis_client, local_platform):
    pool = redis.ConnectionPool.from_url(local_platform.valkey.url, connection_class=CountingConnection)
    client = redis.Redis(connection_pool=pool)
    client.ping()  # the connection's handshake is not part of a read
    yield client
    client.close()


def round_trips(client: redis.Redis, user: str, items: list[str], reader: FeatureReader | None = None) -> int:
    reader = reader or FeatureReader(client, CONFIG)  # a new reader: no creator in its cache
    CountingConnection.sends = 0
    reader.read(user, items, now=NOW)
    return CountingConnection.sends


def test_one_user_and_1000_items_take_two_round_trips(redis_client, counting_client):
    items = [f"item-{n}" for n in range(1000)]
    ItemCatalog(redis_client).upsert_items(
        [{"ITEM_ID": item, "CREATOR": f"creator-{n % 150}", "GENRES": f"g{n % 9}"} for n, item in enumerate(items)])
    FeatureWriter(redis_client, CONFIG).apply(
        [make_event(f"e{n}", "listen", n, item_id=items[n * 7], value=400) for n in range(100)])
    assert round_trips(counting_client, "u1", items) == 2  # user + items, then the items' creators
    snapshot = FeatureReader(counting_client, CONFIG).read("u1", items, now=NOW)
    assert len(snapshot.items) == 1000
    plays_per_creator = Counter(n * 7 % 150 for n in range(100))
    assert snapshot.items.column("creator_plays").tolist() == [plays_per_creator[n % 150] for n in range(1000)]
    assert snapshot.items.column("item_plays").tolist() == [float(n % 7 == 0 and n < 700) for n in range(1000)]


def test_cached_creators_save_the_second_round_trip_for_creator_cache_s(redis_client, counting_client):
    items = [f"item-{n}" for n in range(50)]
    ItemCatalog(redis_client).upsert_items([{"ITEM_ID": item, "CREATOR": f"c{n % 5}"} for n, item in enumerate(items)])
    writer = FeatureWriter(redis_client, CONFIG)
    writer.apply([make_event("e1", "listen", 10, item_id="item-0", value=60)])
    reader = FeatureReader(counting_client, CONFIG)
    reader.read("u1", items, now=NOW)
    CountingConnection.sends = 0
    reader.read("u1", items[:20], now=NOW)
    assert CountingConnection.sends == 1
    writer.apply([make_event("e2", "listen", 5, item_id="item-5", value=60)])  # item-5: creator c0 too
    cached = reader.read("u1", ["item-5"], now=NOW).items["item-5"]
    assert (cached["item_plays"], cached["creator_plays"]) == (1, 1)  # item counters are always read fresh
    uncached = FeatureReader(counting_client, replace(CONFIG, creator_cache_s=0))
    assert uncached.read("u1", ["item-5"], now=NOW).items["item-5"]["creator_plays"] == 2
    assert round_trips(counting_client, "u1", items, uncached) == 2


def test_items_without_creators_take_one_round_trip(counting_client):
    assert round_trips(counting_client, "u1", [f"item-{n}" for n in range(1000)]) == 1


def test_the_reader_returns_exactly_the_spec_features(redis_client):
    snapshot = FeatureReader(redis_client, CONFIG).read("u1", ["a"], now=NOW)
    assert set(snapshot.user) == {s.name for s in PIT_FEATURES if s.entity == "user"}
    assert set(snapshot.items["a"]) == {s.name for s in PIT_FEATURES if s.entity != "user"}
