"""The Redis / MemoryDB connection adapter: the one place where store clients are built.

Where `redis_from_env()` connects:
- `RECSYS_REDIS_URL` (e.g. `redis://127.0.0.1:6379/0`, the local Valkey) wins; with `RECSYS_REDIS_CLUSTER=true`
  the URL names a cluster node and a `RedisCluster` client is built;
- otherwise MemoryDB, which always runs in cluster mode: `MEMORYDB_ENDPOINT` (the cluster endpoint),
  `MEMORYDB_PORT` (6379), `MEMORYDB_TLS` ("true", the default, turns TLS on) and `MEMORYDB_SECRET_ARN`, a Secrets
  Manager secret holding `{"username": ..., "password": ...}` of the ACL user (read once per process).

Every client has short socket timeouts, few quick retries and a health-check interval, so a failing node
surfaces as a `redis.exceptions.ConnectionError`/`TimeoutError` within seconds; callers report their work as
failed and retry it later.

The helpers below hide the one difference between a single node and a cluster that the feature store cares about:
a multi-key read (`MGET`) must not cross hash slots in a cluster. `Batch.multi_get` sends one MGET per slot there
(the feature keys are tagged by a bucket of their id, so a thousand keys share a few dozen slots), and
`Batch.execute` loads scripts a node does not know yet (NOSCRIPT) and re-runs only those commands.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff
from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.retry import Retry

from recsys import aws

SOCKET_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 2.0
HEALTH_CHECK_INTERVAL_S = 30
# redis-py retries a failed connection 10 times by default; an outage must surface well within a Lambda timeout.
RETRIES = 2

# Any Redis-protocol client the platform uses: a single node locally, a cluster on MemoryDB.
Store = redis.Redis | RedisCluster


def _options(timeout_s: float, retries: int) -> dict[str, Any]:
    return {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": min(timeout_s, CONNECT_TIMEOUT_S),
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
        "retry": Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.2), retries),
    }


def redis_from_url(url: str, *, cluster: bool = False, timeout_s: float = SOCKET_TIMEOUT_S,
                   retries: int = RETRIES) -> Store:
    """A client of the node (or cluster) at `url`, with the platform's timeouts and retries."""
    options = _options(timeout_s, retries)
    return RedisCluster.from_url(url, **options) if cluster else redis.Redis.from_url(url, **options)


def redis_from_env(*, timeout_s: float = SOCKET_TIMEOUT_S, retries: int = RETRIES) -> Store:
    """A client of the feature store named by the environment (see the module docstring). A request path that
    must not wait on a stalled store (the recommend API) passes a shorter `timeout_s` and fewer `retries`."""
    url = os.environ.get("RECSYS_REDIS_URL")
    if url:
        return redis_from_url(url, cluster=_flag("RECSYS_REDIS_CLUSTER", default=False), timeout_s=timeout_s,
                              retries=retries)
    options = _options(timeout_s, retries)
    endpoint = os.environ.get("MEMORYDB_ENDPOINT")
    if not endpoint:
        raise RuntimeError("no feature store configured: set RECSYS_REDIS_URL (local) or MEMORYDB_ENDPOINT (AWS)")
    port = int(os.environ.get("MEMORYDB_PORT") or 6379)
    secret_arn = os.environ.get("MEMORYDB_SECRET_ARN")
    if secret_arn:
        options["username"], options["password"] = memorydb_credentials(secret_arn)
    return RedisCluster(host=endpoint, port=port, ssl=_flag("MEMORYDB_TLS", default=True), **options)


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() not in ("true", "false"):
        raise ValueError(f"{name}: expected 'true' or 'false', got {value!r}")
    return value.lower() == "true"


@lru_cache(maxsize=8)
def memorydb_credentials(secret_arn: str) -> tuple[str, str]:
    """(username, password) of the MemoryDB ACL user, from its Secrets Manager secret; fetched once per process."""
    secret = aws.client("secretsmanager").get_secret_value(SecretId=secret_arn)
    try:
        data = json.loads(secret["SecretString"])
        return str(data["username"]), str(data["password"])
    except (KeyError, TypeError, ValueError) as exc:
        raise RuntimeError(f"secret {secret_arn}: expected a JSON object with 'username' and 'password'") from exc


def is_cluster(client: Any) -> bool:
    return isinstance(client, RedisCluster)


class Script:
    """A Lua script, run by EVALSHA; `Batch.execute` loads it on nodes that do not know it yet."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


@dataclass(frozen=True)
class MultiGet:
    """Where the values of one `Batch.multi_get` are in the batch's results."""

    # (command index, positions of its keys in the caller's list; None: all of them, in order)
    commands: tuple[tuple[int, tuple[int, ...] | None], ...]
    size: int

    def values(self, results: Sequence[Any]) -> list[bytes | None]:
        if len(self.commands) == 1 and self.commands[0][1] is None:
            return list(results[self.commands[0][0]])
        values: list[bytes | None] = [None] * self.size
        for index, positions in self.commands:
            for position, value in zip(positions or range(self.size), results[index]):
                values[position] = value
        return values


@dataclass(frozen=True)
class _Queued:
    script: Script | None
    args: tuple[Any, ...]
    slot: int | None = None  # the command's slot in a cluster: the pipeline sends it there without asking


class Batch:
    """Commands sent together in one pipeline (one round trip per node), for a single node or a cluster."""

    def __init__(self, client: Store) -> None:
        self.client = client
        self._commands: list[_Queued] = []

    def __len__(self) -> int:
        return len(self._commands)

    def command(self, *args: Any) -> int:
        """Queue a command; returns its index in the results."""
        return self._queue(_Queued(None, args))

    def script(self, script: Script, keys: Sequence[str], argv: Sequence[Any]) -> int:
        """Queue EVALSHA of `script`; in a cluster all `keys` must share one slot (use one hash tag).

        In a cluster the script goes to its first key's slot: left to itself, redis-py's cluster pipeline asks a
        node for the keys of every EVALSHA (COMMAND GETKEYS, one round trip each)."""
        slot = key_slot(keys[0].encode()) if keys and is_cluster(self.client) else None
        return self._queue(_Queued(script, ("EVALSHA", script.sha, len(keys), *keys, *argv), slot))

    def multi_get(self, keys: Sequence[str], slots: Sequence[int] | None = None) -> MultiGet:
        """Queue GET of every key: one MGET on a single node, one MGET per slot on a cluster (keys bucketed by
        their hash tags share a few slots; see layout.key_bucket).

        `slots`: each key's cluster slot, from a caller that keeps them (hashing a thousand keys costs about a
        millisecond in Python)."""
        if not keys:
            return MultiGet((), 0)
        if not is_cluster(self.client):
            return MultiGet(((self.command("MGET", *keys), None),), len(keys))
        by_slot: dict[int, list[int]] = {}
        for position, slot in enumerate(slots if slots is not None else [key_slot(k.encode()) for k in keys]):
            by_slot.setdefault(slot, []).append(position)
        return MultiGet(tuple((self._queue(_Queued(None, ("MGET", *[keys[p] for p in positions]), slot)),
                               tuple(positions)) for slot, positions in by_slot.items()), len(keys))

    def execute(self) -> list[Any]:
        """Send the batch and return the results in order; redis errors are raised.

        A command refused with NOSCRIPT did not run: its script is loaded (on every primary of a cluster) and
        only those commands are sent again.
        """
        results = self._send(self._commands)
        missing = [i for i, result in enumerate(results) if isinstance(result, redis.exceptions.NoScriptError)]
        if missing:
            scripts = {queued.script.sha: queued.script for queued in (self._commands[i] for i in missing)
                       if queued.script}
            for script in scripts.values():
                self.client.script_load(script.source)
            for i, result in zip(missing, self._send([self._commands[i] for i in missing])):
                results[i] = result
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    def _send(self, commands: Sequence[_Queued]) -> list[Any]:
        if not commands:
            return []
        pipe = self.client.pipeline(transaction=False)
        for queued in commands:
            if queued.slot is None:
                pipe.execute_command(*queued.args)
            else:
                node = primary_node(self.client, queued.slot)  # type: ignore[arg-type]  # slots: a cluster's only
                pipe.execute_command(*queued.args, target_nodes=node)
        return list(pipe.execute(raise_on_error=False))

    def _queue(self, queued: _Queued) -> int:
        """Queue a command; returns its index in the results."""
        self._commands.append(queued)
        return len(self._commands) - 1


def primary_node(cluster: RedisCluster, slot: int) -> Any:
    """The primary node serving `slot` as the client knows it: redis-py's slot table read directly, since its
    `get_node_from_slot` costs microseconds per call in argument checks."""
    manager = cluster.nodes_manager
    nodes = manager.slots_cache.get(slot)
    return nodes[0] if nodes else manager.get_node_from_slot(slot)
