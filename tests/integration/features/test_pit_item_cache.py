"""The reader's item cache against a real Valkey (single node and cluster): a cached read is a fresh read.

Every test compares the cached reader with one that fetches every item (`item_cache_entries=0`), after writes from
another client: a change is seen by the next read, whatever happened to the notices in between.
"""

from __future__ import annotations

import random
import select
from dataclasses import replace

import numpy as np
import pytest
import redis
from pit_helpers import DAY, NOW, make_event

from recsys.config import MemoryDbConfig, PitFeatureConfig
from recsys.features import FeatureReader, FeatureWriter, ItemCatalog, item_cache, native

pytestmark = pytest.mark.skipif(native.ItemCache is None, reason="the native decoder is not built")

CONFIG = PitFeatureConfig(creator_cache_s=0)  # creator counters read fresh too: the item cache alone is on trial
FETCHING = replace(CONFIG, item_cache_entries=0)
ITEMS = [f"item-{n}" for n in range(60)]


def load(client) -> FeatureWriter:
    ItemCatalog(client).upsert_items([
        {"ITEM_ID": item, "GENRES": f"g{n % 3}", "CREATOR": f"c{n % 5}", "CREATION_TIMESTAMP": NOW - n * DAY}
        for n, item in enumerate(ITEMS)])
    writer = FeatureWriter(client, CONFIG)
    writer.apply([make_event(f"seed-{n}", "listen", n * 97, item_id=ITEMS[n % 60], value=400) for n in range(90)])
    return writer


def plays(reader: FeatureReader, items: list[str] = ITEMS) -> dict[str, float]:
    snapshot = reader.read("u1", items, now=NOW)
    return dict(zip(snapshot.items.item_ids, snapshot.items.column("item_plays").tolist()))


def same_as_fetching(client, reader: FeatureReader, items: list[str]) -> None:
    cached, fresh = reader.read("u1", items, now=NOW).items, FeatureReader(client, FETCHING).read(
        "u1", items, now=NOW).items
    order = [cached.item_ids.index(item) for item in fresh.item_ids]
    np.testing.assert_array_equal(cached.matrix[order], fresh.matrix)


def test_a_kept_record_is_dropped_as_soon_as_it_changes(redis_client):
    writer = load(redis_client)
    reader = FeatureReader(redis_client, CONFIG)
    before = plays(reader)
    table = reader.item_cache.table
    assert (table.hits, table.misses, len(table)) == (0, 60, 60)
    writer.apply([make_event("new", "listen", 5, item_id="item-7", value=400)])
    after = plays(reader)
    assert after == before | {"item-7": before["item-7"] + 1}
    assert (table.hits, table.misses) == (59, 61)  # only the changed record was fetched again


@pytest.mark.parametrize("where", ["single node", "cluster"])
def test_cached_reads_equal_fresh_reads_under_interleaved_writes(redis_client, cluster_client, where):
    client = redis_client if where == "single node" else cluster_client
    writer = load(client)
    reader = FeatureReader(client, CONFIG)
    rng = random.Random(7)
    for step in range(40):
        if rng.random() < 0.6:
            writer.apply([make_event(f"s{step}-{k}", rng.choice(["listen", "like", "view", "purchase"]),
                                     rng.randrange(9 * DAY), item_id=rng.choice(ITEMS), value=600)
                          for k in range(rng.randrange(1, 6))])
        same_as_fetching(client, reader, rng.sample(ITEMS, rng.randrange(1, 60)) + ["never-seen"])
    assert reader.item_cache.table.hits > reader.item_cache.table.misses
    assert reader.cluster_fallbacks == 0


def test_a_change_announced_while_its_record_is_fetched_is_not_kept(redis_client, monkeypatch):
    writer = load(redis_client)
    reader = FeatureReader(redis_client, CONFIG)
    plays(reader, ITEMS[:30])
    real_fetch = reader._fetch_single

    def fetch_then_changed(*args, **kwargs):
        fetched = real_fetch(*args, **kwargs)
        # the record changes right after the server answered the fetch, and its notice is in before it is kept
        writer.apply([make_event("racing", "listen", 5, item_id="item-40", value=400)])
        (listener,) = reader.item_cache._listeners.values()
        assert select.select([listener._connection._sock], [], [], 2.0)[0]
        return fetched

    monkeypatch.setattr(reader, "_fetch_single", fetch_then_changed)
    raced = plays(reader, ["item-40"])["item-40"]
    monkeypatch.undo()
    assert plays(reader, ["item-40"])["item-40"] == raced + 1  # not the record fetched before the change


def kill_notice_connections(url: str) -> int:
    with redis.Redis.from_url(url) as admin:
        return admin.client_kill_filter(_type="pubsub")


def test_a_lost_notice_connection_clears_the_cache(redis_client, local_platform):
    writer = load(redis_client)
    reader = FeatureReader(redis_client, CONFIG)
    before = plays(reader)
    assert kill_notice_connections(local_platform.valkey.url) >= 1
    writer.apply([make_event("unannounced", "listen", 5, item_id="item-3", value=400)])  # no one to tell
    assert plays(reader) == before | {"item-3": before["item-3"] + 1}
    assert reader.item_cache.resets == 1


def test_the_server_cuts_a_reader_that_stops_reading_its_notices(own_valkey):
    client = redis.Redis.from_url(own_valkey.url)
    client.config_set("client-output-buffer-limit", "pubsub 1mb 1mb 0")  # 32mb by default
    writer = load(client)
    reader = FeatureReader(client, CONFIG)
    before = plays(reader)
    # the notice connection is a pub/sub client: the server caps what it buffers for it
    assert len([c for c in client.client_list() if "P" in c["flags"]]) == 1
    # a frozen reader (a Lambda between invocations) reads no notice while records change: 20 MB of notices, more
    # than the sockets hold, so the server's own buffer passes the limit and the server drops the connection
    with client.pipeline(transaction=False) as pipe:
        for n in range(20_000):
            pipe.set(reader.item_layout.key(f"{n}-" + "x" * 1000), b"")
        pipe.execute()
    writer.apply([make_event("burst", "listen", 5, item_id="item-1", value=400)])
    assert not [c for c in client.client_list() if "P" in c["flags"]]
    assert plays(reader) == before | {"item-1": before["item-1"] + 1}
    assert reader.item_cache.resets == 1
    client.close()


def test_a_flush_clears_the_cache(redis_client):
    load(redis_client)
    reader = FeatureReader(redis_client, CONFIG)
    assert sum(plays(reader).values()) == 90
    redis_client.flushall()
    assert sum(plays(reader).values()) == 0
    assert reader.item_cache.resets == 1


def test_an_idle_reader_starts_afresh(redis_client, monkeypatch):
    writer = load(redis_client)
    reader = FeatureReader(redis_client, CONFIG)
    before = plays(reader)
    monkeypatch.setattr(item_cache, "IDLE_RESET_S", 0.0)
    writer.apply([make_event("while-idle", "listen", 5, item_id="item-9", value=400)])
    assert plays(reader) == before | {"item-9": before["item-9"] + 1}
    assert reader.item_cache.table.misses == 120  # every record fetched again


def test_a_full_cache_keeps_the_latest_and_stays_right(redis_client):
    writer = load(redis_client)
    reader = FeatureReader(redis_client, replace(CONFIG, item_cache_entries=16))
    for step in range(5):
        writer.apply([make_event(f"f{step}", "listen", 5, item_id=ITEMS[step * 11], value=400)])
        same_as_fetching(redis_client, reader, ITEMS)
    assert len(reader.item_cache.table) == 16 and reader.item_cache.table.evictions > 0


def test_the_cluster_cache_hears_every_node_and_starts_afresh_when_the_primaries_change(cluster_client):
    writer = load(cluster_client)
    reader = FeatureReader(cluster_client, CONFIG)
    before = plays(reader)
    assert len(reader.item_cache._listeners) == 3
    writer.apply([make_event(f"n{n}", "listen", 5, item_id=item, value=400) for n, item in enumerate(ITEMS)])
    assert plays(reader) == {item: value + 1 for item, value in before.items()}
    assert reader.item_cache.table.hits == 0  # every record changed, on all three nodes
    primaries = reader._primary_pools()
    reader._primary_pools = lambda: dict(list(primaries.items())[:2])  # as if a primary had gone
    same_as_fetching(cluster_client, reader, ITEMS)
    assert reader.item_cache.resets == 1 and len(reader.item_cache._listeners) == 2


def test_the_platforms_memorydb_user_may_track_and_subscribe(own_valkey):
    admin = redis.Redis.from_url(own_valkey.url)
    rule = MemoryDbConfig().access_string  # what the MemoryDB construct gives the platform's ACL user
    admin.execute_command("ACL", "SETUSER", "app", "reset", ">s3cret", *rule.split())
    user = redis.Redis.from_url(own_valkey.url.replace("redis://", "redis://app:s3cret@"))
    writer = load(user)
    reader = FeatureReader(user, CONFIG)
    before = plays(reader)
    writer.apply([make_event("as-app", "listen", 5, item_id="item-2", value=400)])
    assert plays(reader) == before | {"item-2": before["item-2"] + 1}
    assert reader.item_cache.table.hits == 59 and reader.item_cache.resets == 0
    user.close()
    admin.close()
