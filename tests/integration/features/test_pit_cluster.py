"""Cluster mode (MemoryDB): every script stays in one slot, reads span the nodes, results match a single node, and
a read stays right while a slot moves between nodes."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import replace

import pytest
import redis
from pit_helpers import DAY, NOW, make_event
from redis.cluster import RedisCluster
from redis.crc import key_slot

from recsys import aws as aws_clients
from recsys import store
from recsys.config import PitFeatureConfig
from recsys.features import FeatureReader, FeatureWriter, ItemCatalog, layout, native
from recsys.features import reader as reader_module

CONFIG = PitFeatureConfig()
ITEMS = [f"item-{n}" for n in range(40)]


def load(client) -> list:
    ItemCatalog(client).upsert_items([
        {"ITEM_ID": item, "GENRES": f"g{n % 3}", "CREATOR": f"c{n % 5}", "FRANCHISE": f"f{n % 4}",
         "CREATION_TIMESTAMP": NOW - n * DAY}
        for n, item in enumerate(ITEMS)])
    ItemCatalog(client).upsert_users([{"USER_ID": f"u{n}", "TOPICS": "g1", "AGE": 20 + n} for n in range(6)])
    events = [make_event(f"e{n}", ["listen", "like", "purchase", "view"][n % 4], n * 613 % (9 * DAY),
                         item_id=ITEMS[n * 7 % 40], user_id=f"u{n % 6}", value=float(n * 37 % 700))
              for n in range(200)]
    return FeatureWriter(client, CONFIG).apply(events)


def read_all(client, reader: FeatureReader | None = None) -> list:
    reader = reader or FeatureReader(client, CONFIG)
    snapshots = [reader.read(f"u{n}", ITEMS, now=NOW) for n in range(6)]
    return [(s.user, {item: s.items[item] for item in s.items}) for s in snapshots]


@pytest.mark.parametrize("native_decoder", [True, False])
def test_the_cluster_gives_the_same_features_as_a_single_node(cluster_client, redis_client, native_decoder):
    assert [o.status for o in load(cluster_client)] == [o.status for o in load(redis_client)]
    nodes = {cluster_client.get_node_from_key(layout.item_key(item, "r")).name for item in ITEMS}
    assert len(nodes) == 3  # the items' records are spread over the three nodes
    reader = FeatureReader(cluster_client, CONFIG, native=native_decoder)
    assert read_all(cluster_client, reader) == read_all(redis_client)
    # the user alone, as the recommend path first reads it
    assert reader.read("u3", [], now=NOW).user == FeatureReader(redis_client, CONFIG).read("u3", [], now=NOW).user
    assert reader.cluster_fallbacks == 0


@pytest.mark.skipif(native.pack_mget is None, reason="the native decoder is not built")
def test_a_cluster_read_is_one_mget_per_bucket_and_no_script(cluster_client):
    load(cluster_client)
    reader = FeatureReader(cluster_client, replace(CONFIG, item_cache_entries=0))  # every read fetches its items
    reader.read("u1", ITEMS, now=NOW)  # fills the creator cache
    nodes = cluster_client.get_primaries()
    for node in nodes:
        node.redis_connection.config_resetstat()
    reader.read("u2", ITEMS, now=NOW)
    calls = [node.redis_connection.info("commandstats") for node in nodes]
    buckets = {layout.key_bucket(item) for item in ITEMS}
    assert sum(stats.get("cmdstat_mget", {}).get("calls", 0) for stats in calls) == len(buckets)
    assert sum(stats.get("cmdstat_hgetall", {}).get("calls", 0) for stats in calls) == 4  # the user's hashes
    assert not any("cmdstat_evalsha" in stats or "cmdstat_get" in stats for stats in calls)


def test_scripts_go_straight_to_their_slot_without_asking_a_node_for_their_keys(cluster_client):
    nodes = cluster_client.get_primaries()
    for node in nodes:
        node.redis_connection.config_resetstat()
    load(cluster_client)  # the writer's scripts
    read_all(cluster_client)  # the reader (its MGETs need no script)
    calls = [node.redis_connection.info("commandstats") for node in nodes]
    assert sum(stats.get("cmdstat_evalsha", {}).get("calls", 0) for stats in calls) > 0
    # redis-py's cluster pipeline would otherwise send COMMAND GETKEYS before each EVALSHA: a round trip apiece
    assert sum(stats.get("cmdstat_command|getkeys", {}).get("calls", 0) for stats in calls) == 0


def test_redelivery_is_a_duplicate_in_the_cluster(cluster_client):
    load(cluster_client)
    before = read_all(cluster_client)
    assert {o.status for o in load(cluster_client)} == {"duplicate"}
    assert read_all(cluster_client) == before


def test_memorydb_settings_build_a_cluster_client_with_the_secret(aws, valkey_cluster, monkeypatch):
    secret = aws_clients.client("secretsmanager").create_secret(
        Name="recsys-dev/memorydb/app-user", SecretString=json.dumps({"username": "default", "password": "s3cret"}))
    monkeypatch.delenv("RECSYS_REDIS_URL", raising=False)
    monkeypatch.setenv("MEMORYDB_ENDPOINT", "127.0.0.1")
    monkeypatch.setenv("MEMORYDB_PORT", str(valkey_cluster[0]))
    monkeypatch.setenv("MEMORYDB_TLS", "false")  # MemoryDB always has TLS; the local cluster has none
    monkeypatch.setenv("MEMORYDB_SECRET_ARN", secret["ARN"])
    store.memorydb_credentials.cache_clear()
    client = store.redis_from_env()
    try:
        assert isinstance(client, RedisCluster) and len(client.get_primaries()) == 3
        kwargs = client.get_primaries()[0].redis_connection.connection_pool.connection_kwargs
        assert (kwargs["username"], kwargs["password"]) == ("default", "s3cret")  # the local nodes accept any password
        FeatureWriter(client, CONFIG).apply([make_event("e1", "like", 10)])
        assert FeatureReader(client, CONFIG).read("u1", ["A"], now=NOW).items["A"]["item_likes"] == 1
    finally:
        client.close()
        store.memorydb_credentials.cache_clear()


@contextmanager
def slot_moved(client: RedisCluster, slot: int, *, finish: bool = True):
    """Move `slot` to another node behind the client's back (its slot table goes stale), as a resharding does:
    IMPORTING / MIGRATING, the keys MIGRATEd, then (`finish`) the slot assigned to its new node. Moved back after."""
    source = client.nodes_manager.slots_cache[slot][0]
    target = next(node for node in client.get_primaries() if node.name != source.name)

    def move(source, target, finish):
        src, dst = source.redis_connection, target.redis_connection
        src_id, dst_id = src.execute_command("CLUSTER MYID"), dst.execute_command("CLUSTER MYID")
        dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
        src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
        keys = src.execute_command("CLUSTER GETKEYSINSLOT", slot, 10_000)
        if keys:
            src.execute_command("MIGRATE", target.host, target.port, "", 0, 5000, "KEYS", *keys)
        if finish:
            for node in client.get_primaries():
                node.redis_connection.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
        return len(keys)

    moved = move(source, target, finish)
    assert moved > 0
    try:
        yield
    finally:
        if not finish:  # the move is done first: a slot goes back only from a stable owner
            target_id = target.redis_connection.execute_command("CLUSTER MYID")
            for node in client.get_primaries():
                node.redis_connection.execute_command("CLUSTER SETSLOT", slot, "NODE", target_id)
        move(target, source, True)
        client.nodes_manager.initialize()


@pytest.mark.skipif(native.pack_mget is None, reason="the native decoder is not built")
@pytest.mark.parametrize("finish", [True, False], ids=["moved", "migrating"])
def test_a_read_stays_right_while_a_slot_moves_and_then_reads_natively_again(cluster_client, finish):
    load(cluster_client)
    reader = FeatureReader(cluster_client, CONFIG)
    expected = read_all(cluster_client, reader)
    slot = key_slot(layout.item_key(ITEMS[0], "r").encode())
    with slot_moved(cluster_client, slot, finish=finish):
        # the reader's node for ITEMS[0]'s bucket answers MOVED (or ASK while migrating): redis-py's pipeline
        # follows it, and learns the new owner once the move is done
        assert read_all(cluster_client, reader) == expected
        assert reader.cluster_fallbacks > 0
        if finish:
            fallbacks = reader.cluster_fallbacks
            assert read_all(cluster_client, reader) == expected
            assert reader.cluster_fallbacks == fallbacks  # the slot table is right again: native reads
    assert read_all(cluster_client, reader) == expected


@pytest.mark.skipif(native.pack_mget is None, reason="the native decoder is not built")
def test_a_read_survives_connections_the_nodes_dropped(cluster_client):
    load(cluster_client)
    reader = FeatureReader(cluster_client, CONFIG)
    expected = read_all(cluster_client, reader)
    for node in cluster_client.get_primaries():  # as an idle timeout or a node restart would
        with redis.Redis(host=node.host, port=node.port) as admin:
            assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
    # the pools find their connections closed and connect again: the reads stay native and right
    assert read_all(cluster_client, reader) == expected
    assert reader.cluster_fallbacks == 0


@pytest.mark.skipif(native.pack_mget is None, reason="the native decoder is not built")
def test_a_connection_lost_mid_read_sends_the_read_through_redis_py(cluster_client, monkeypatch):
    load(cluster_client)
    reader = FeatureReader(cluster_client, CONFIG)
    expected = read_all(cluster_client, reader)
    real_talk = reader_module._talk

    def lost_after_sending(scratch, talk):
        def sent_then_lost(conversation):
            for node in cluster_client.get_primaries():
                conversation.on(node.redis_connection).send(b"*1\r\n$4\r\nPING\r\n", 1)
            raise redis.ConnectionError("lost")

        return real_talk(scratch, sent_then_lost)

    monkeypatch.setattr(reader_module, "_talk", lost_after_sending)
    assert read_all(cluster_client, reader) == expected
    assert reader.cluster_fallbacks == 6  # every read, through redis-py's pipeline
    monkeypatch.undo()
    assert read_all(cluster_client, reader) == expected
    assert reader.cluster_fallbacks == 6  # native again, on connections in step
