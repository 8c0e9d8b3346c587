"""How `redis_from_env` reads its configuration (no server is contacted by these clients)."""

from __future__ import annotations

import pytest
import redis

from recsys import store

STORE_VARIABLES = ("RECSYS_REDIS_URL", "RECSYS_REDIS_CLUSTER", "MEMORYDB_ENDPOINT", "MEMORYDB_PORT", "MEMORYDB_TLS",
                   "MEMORYDB_SECRET_ARN")


@pytest.fixture
def env(monkeypatch):
    for name in STORE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_local_url_gives_a_single_node_client_with_short_timeouts(env):
    env.setenv("RECSYS_REDIS_URL", "redis://127.0.0.1:6399/0")
    env.setenv("MEMORYDB_ENDPOINT", "ignored.example.com")
    client = store.redis_from_env()
    assert isinstance(client, redis.Redis) and not store.is_cluster(client)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["port"] == 6399
    assert kwargs["socket_timeout"] == store.SOCKET_TIMEOUT_S
    assert kwargs["socket_connect_timeout"] == store.CONNECT_TIMEOUT_S
    assert kwargs["health_check_interval"] == store.HEALTH_CHECK_INTERVAL_S
    assert kwargs["retry"].get_retries() == store.RETRIES


def test_no_store_configured_is_a_clear_error(env):
    with pytest.raises(RuntimeError, match="set RECSYS_REDIS_URL \\(local\\) or MEMORYDB_ENDPOINT \\(AWS\\)"):
        store.redis_from_env()


def test_a_bad_flag_is_named(env):
    env.setenv("RECSYS_REDIS_URL", "redis://127.0.0.1:6399/0")
    env.setenv("RECSYS_REDIS_CLUSTER", "yes")
    with pytest.raises(ValueError, match="RECSYS_REDIS_CLUSTER: expected 'true' or 'false', got 'yes'"):
        store.redis_from_env()
