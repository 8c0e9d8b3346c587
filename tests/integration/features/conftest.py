"""Fixtures of the feature-store tests: a private Valkey (for outages) and a 3-node Valkey cluster."""

from __future__ import annotations

import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from recsys.local.services import Service, free_port, start_valkey, valkey_binary


@pytest.fixture
def own_valkey(tmp_path: Path) -> Iterator[Service]:
    """A Valkey server of this test only: it may be paused or stopped without harming the session's server."""
    service = start_valkey(tmp_path)
    yield service
    service.stop()


def _free_cluster_port() -> int:
    while True:  # a cluster node also listens on port + 10000 (the cluster bus)
        port = free_port()
        if port + 10000 < 65536:
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


@pytest.fixture(scope="module")
def valkey_cluster() -> Iterator[list[int]]:
    """Three Valkey nodes in cluster mode, the slots split between them (MemoryDB runs in cluster mode)."""
    processes, ports = [], []
    try:
        for _ in range(3):
            port = _free_cluster_port()
            data = tempfile.mkdtemp(prefix="valkey-cluster-")
            processes.append(subprocess.Popen(
                [valkey_binary(), "--bind", "127.0.0.1", "--port", str(port), "--cluster-enabled", "yes",
                 "--cluster-config-file", f"{data}/nodes.conf", "--dir", data, "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
            ports.append(port)
        nodes = [_connect(port) for port in ports]
        bounds = [0, 5461, 10923, 16384]
        for node, low, high in zip(nodes, bounds, bounds[1:]):
            node.execute_command("CLUSTER ADDSLOTSRANGE", low, high - 1)
        for node in nodes[1:]:
            node.execute_command("CLUSTER MEET", "127.0.0.1", ports[0])
        deadline = time.monotonic() + 20
        while not all(n.cluster("info")["cluster_state"] == "ok" and len(n.cluster("nodes")) == 3 for n in nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the local Valkey cluster did not converge")
            time.sleep(0.05)
        yield ports
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)


def _connect(port: int) -> redis.Redis:
    client = redis.Redis(port=port, socket_timeout=2)
    deadline = time.monotonic() + 15
    while True:
        try:
            client.ping()
            return client
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture
def cluster_client(valkey_cluster: list[int]) -> Iterator[RedisCluster]:
    client = RedisCluster(host="127.0.0.1", port=valkey_cluster[0])
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    yield client
    client.close()
