"""The FeatureReader's item cache: item records kept across reads, dropped as soon as the server says they changed.

A read of 1,000 items costs the server 1,000 key lookups, and on a busy host those lookups are most of the read. Most
items do not change between two reads, so the reader keeps their records (`native.ItemCache`, in C: one pass
over a read's ids finds and copies the kept records, their memory loads overlapped) and fetches only the others.

Freshness comes from the server: on a connection of its own per node, the cache asks to be told of every change of
a key under the item records' prefix (`CLIENT TRACKING ON BCAST PREFIX`, RESP3 pushes; `RecordLayout.key_prefix`
names the records of a layout and nothing else). A read:

1. applies the notices received since the last read (`ItemRecordCache.begin`): the changed records are dropped;
2. copies the kept records, and fetches the others in the same round trip as the user's features;
3. applies the notices received meanwhile, then keeps the fetched records but those just changed
   (`ItemRecordCache.finish`): a change made after the fetch may have been announced before it was kept.

So a kept record is dropped by the first read that follows its change's notice, and a notice comes within the
server's next event-loop turn: a read sees a change as a read without the cache would, give or take the time the
notice takes to arrive (well under a millisecond on one network). Whatever makes the notices unknown clears the
cache: a lost notice connection (a failover, a network cut; the server also cuts a connection that falls 32 MB
behind, as it does any pub/sub client, so a frozen Lambda costs the server nothing), a flush of the whole store,
a change of the cluster's primaries, or `IDLE_RESET_S` without a read (reconnecting is cheaper than reading an
idle spell's backlog of notices).
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from recsys.features import native

# After this long without a read, the next one clears the cache and reconnects rather than read the notices.
IDLE_RESET_S = 5.0
# The notice connection subscribes to a channel nobody publishes to: the server then counts it as a pub/sub client,
# whose output it caps (client-output-buffer-limit pubsub), instead of buffering a frozen reader's notices forever.
CAP_CHANNEL = b"__recsys__:item-cache"
_RECV_BYTES = 1 << 16
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError, socket.timeout)


class Invalidations:
    """Notices of changed item records on one node, on a connection of their own, read without blocking and applied
    to `table` as they are read (`native.ItemCache.apply_notices`)."""

    def __init__(self, pool: redis.ConnectionPool, table: Any, prefix: bytes) -> None:
        self._pool = pool
        self._table = table
        self.prefix = prefix
        self._connection: redis.connection.AbstractConnection | None = None
        self._buffer = bytearray()

    def open(self) -> None:
        """Connects (TLS and AUTH as the node's pool does, RESP3) and starts tracking; raises redis errors."""
        self.close()
        connection = self._pool.connection_class(**{**self._pool.connection_kwargs, "protocol": 3})
        try:
            connection.connect()
            connection.send_command("SUBSCRIBE", CAP_CHANNEL, check_health=False)
            connection.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self.prefix, check_health=False)
            # the two replies are read here, with whatever notices come with them
            sock = connection._sock  # type: ignore[attr-defined]
            replies: list[Any] = []
            while len(replies) < 2:
                got = sock.recv(_RECV_BYTES)
                if not got:
                    raise redis.ConnectionError("the server closed the item cache's notice connection")
                self._buffer += got
                replies += self._apply()[1]
            for reply in replies:
                if isinstance(reply, redis.ResponseError):
                    raise reply
            sock.settimeout(0.0)
        except BaseException:
            connection.disconnect()
            self._buffer.clear()
            raise
        self._connection = connection

    @property
    def is_open(self) -> bool:
        return self._connection is not None

    def drain(self) -> list[bytes] | None:
        """Applies the notices received since the last drain (or `open`); returns the ids they named, or None when
        what changed is unknown: the connection was lost (it is closed; `open` again) or the server dropped every
        key (a flush)."""
        connection = self._connection
        if connection is None:
            return None
        sock = connection._sock  # type: ignore[attr-defined]
        try:
            while True:
                got = sock.recv(_RECV_BYTES)
                if not got:
                    raise ConnectionError("closed by the server")
                self._buffer += got
        except _WOULD_BLOCK:
            pass
        except (OSError, AttributeError):  # AttributeError: redis-py dropped the socket
            self.close()
            return None
        return self._apply()[0]

    def close(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()
            self._connection = None
        self._buffer.clear()

    def _apply(self) -> tuple[list[bytes] | None, list[Any]]:
        consumed, changed, replies = self._table.apply_notices(self._buffer, self.prefix, redis.ResponseError)
        del self._buffer[:consumed]
        return changed, replies


class ItemRecordCache:
    """Item records by id across reads, fresh by the nodes' notices (see the module docstring).

    A read holds `lock` from `begin` to `finish`; a read on another thread meanwhile reads without the cache.
    """

    def __init__(self, record_size: int, key_prefix: str, entries: int) -> None:
        self.table = native.ItemCache(record_size, entries)
        self.record_size = record_size
        self.prefix = key_prefix.encode()
        self.lock = threading.Lock()
        self.resets = 0  # times the cache was cleared because its notices were unknown
        self._listeners: dict[str, Invalidations] = {}
        self._drained_at = -float("inf")

    def begin(self, pools: Mapping[str, redis.ConnectionPool]) -> bool:
        """Applies the notices of every node (`pools`: each primary's pool by node name) since the last read.
        False: a node's notices cannot be had now (its connection failed): this read goes without the cache."""
        now = time.monotonic()
        if now - self._drained_at > IDLE_RESET_S or pools.keys() != self._listeners.keys():
            self._reset(pools)
        self._drained_at = now
        for listener in self._listeners.values():
            if not listener.is_open and not self._reopen(listener):
                return False
            if listener.drain() is None:
                self._clear()
                if not self._reopen(listener):
                    return False
        return True

    def lookup(self, ids: Sequence[str], out: Any) -> tuple[list[str], list[int]]:
        """The distinct ids in first-seen order, the kept records copied into `out`, and the positions of the
        others (see native.ItemCache.lookup)."""
        return self.table.lookup(ids, out)  # type: ignore[no-any-return]

    def finish(self, fetched: Sequence[str], records: Any) -> None:
        """Keeps the records just fetched (end to end, in `fetched` order), but those whose change was announced
        while they were fetched."""
        changed: set[bytes] = set()
        for listener in self._listeners.values():
            ids = listener.drain()
            if ids is None:
                self._clear()
                return
            changed.update(ids)
        if not fetched:
            return
        if not changed:
            self.table.store(fetched, records)
            return
        view, size = memoryview(records), self.record_size
        kept = [(item, view[n * size:(n + 1) * size]) for n, item in enumerate(fetched)
                if item.encode() not in changed]
        self.table.store([item for item, _ in kept], b"".join(record for _, record in kept))

    def invalidate_all(self) -> None:
        """Forget every record and reconnect on the next read (e.g. the cluster's slots moved)."""
        self._drained_at = -float("inf")
        self._clear()

    def close(self) -> None:
        for listener in self._listeners.values():
            listener.close()
        self._listeners = {}
        self._clear()

    def _reset(self, pools: Mapping[str, redis.ConnectionPool]) -> None:
        self.close()
        self._listeners = {name: Invalidations(pool, self.table, self.prefix) for name, pool in pools.items()}

    def _reopen(self, listener: Invalidations) -> bool:
        try:
            listener.open()
        except (redis.RedisError, OSError):
            listener.close()
            return False
        return True

    def _clear(self) -> None:
        if len(self.table):
            self.resets += 1
        self.table.clear()
