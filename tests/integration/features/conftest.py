"""Fixtures of the feature-store tests: a private Valkey (for outages) and a 3-node Valkey cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.cluster import RedisCluster

from recsys.local.services import Service, start_valkey, start_valkey_cluster


@pytest.fixture
def own_valkey(tmp_path: Path) -> Iterator[Service]:
    """A Valkey server of this test only: it may be paused or stopped without harming the session's server."""
    service = start_valkey(tmp_path)
    yield service
    service.stop()


@pytest.fixture(scope="module")
def valkey_cluster(tmp_path_factory) -> Iterator[list[int]]:
    """Three Valkey nodes in cluster mode, the slots split between them (MemoryDB runs in cluster mode)."""
    services = start_valkey_cluster(tmp_path_factory.mktemp("valkey-cluster"))
    yield [service.port for service in services]
    for service in services:
        service.stop()


@pytest.fixture
def cluster_client(valkey_cluster: list[int]) -> Iterator[RedisCluster]:
    client = RedisCluster(host="127.0.0.1", port=valkey_cluster[0])
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield client
    client.close()
