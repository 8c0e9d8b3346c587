"""Cluster mode (MemoryDB): every script stays in one slot, reads span the nodes, results match a single node."""

from __future__ import annotations

import json

from pit_helpers import DAY, NOW, make_event
from redis.cluster import RedisCluster

from recsys import aws as aws_clients
from recsys import store
from recsys.config import PitFeatureConfig
from recsys.features import FeatureReader, FeatureWriter, ItemCatalog

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


def read_all(client) -> list:
    reader = FeatureReader(client, CONFIG)
    snapshots = [reader.read(f"u{n}", ITEMS, now=NOW) for n in range(6)]
    return [(s.user, {item: s.items[item] for item in s.items}) for s in snapshots]


def test_the_cluster_gives_the_same_features_as_a_single_node(cluster_client, redis_client):
    assert [o.status for o in load(cluster_client)] == [o.status for o in load(redis_client)]
    nodes = {cluster_client.get_node_from_key(f"pit:{{i:{item}}}:r").name for item in ITEMS}
    assert len(nodes) == 3  # the items' records are spread over the three nodes
    assert read_all(cluster_client) == read_all(redis_client)


def test_scripts_go_straight_to_their_slot_without_asking_a_node_for_their_keys(cluster_client):
    nodes = cluster_client.get_primaries()
    for node in nodes:
        node.redis_connection.config_resetstat()
    load(cluster_client)  # the writer's scripts
    read_all(cluster_client)  # the reader's multi-get scripts
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
