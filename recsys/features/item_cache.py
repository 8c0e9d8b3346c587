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


class _Push(list):  # type: ignore[type-arg]
    """A RESP3 push message (">"), as opposed to a reply."""


def parse_frames(buffer: bytes | bytearray) -> tuple[list[Any], int]:
    """The complete RESP3 frames at the start of `buffer`, and how many bytes they take (the rest is incomplete).

    Simple strings and blobs read as bytes, errors as redis.ResponseError, numbers as int, null as None, arrays as
    lists, pushes as `_Push` lists: what a notice connection receives.
    """
    frames: list[Any] = []
    at = 0
    while True:
        parsed = _frame(buffer, at)
        if parsed is None:
            return frames, at
        frame, at = parsed
        frames.append(frame)


def _frame(buffer: bytes | bytearray, at: int) -> tuple[Any, int] | None:
    end = buffer.find(b"\r\n", at)
    if end < 0:
        return None
    kind, line, after = buffer[at:at + 1], bytes(buffer[at + 1:end]), end + 2
    if kind == b"+":
        return line, after
    if kind == b"-":
        return redis.ResponseError(line.decode(errors="replace")), after
    if kind == b":":
        return int(line), after
    if kind == b"_":
        return None, after
    if kind == b"$":
        size = int(line)
        if size < 0:
            return None, after
        if len(buffer) < after + size + 2:
            return None
        return bytes(buffer[after:after + size]), after + size + 2
    if kind in (b"*", b">"):
        count = int(line)
        items: list[Any] = _Push() if kind == b">" else []
        for _ in range(max(count, 0)):
            parsed = _frame(buffer, after)
            if parsed is None:
                return None
            item, after = parsed
            items.append(item)
        return (None if count < 0 else items), after
    raise redis.ConnectionError(f"unexpected RESP3 frame type {kind!r} on the item cache's notice connection")


class Invalidations:
    """Notices of changed keys under `prefix` on one node, on a connection of their own, read without blocking."""

    def __init__(self, pool: redis.ConnectionPool, prefix: bytes) -> None:
        self._pool = pool
        self.prefix = prefix
        self._connection: redis.connection.AbstractConnection | None = None
        self._buffer = bytearray()

    def open(self) -> None:
        """Connects (TLS and AUTH as the node's pool does, RESP3) and starts tracking; raises redis errors."""
        self.close()
        kwargs = {**self._pool.connection_kwargs, "protocol": 3}
        connection = self._pool.connection_class(**kwargs)
        try:
            connection.connect()
            connection.send_command("CLIENT", "TRACKING", "ON", "BCAST", "PREFIX", self.prefix, check_health=False)
            connection.send_command("SUBSCRIBE", CAP_CHANNEL, check_health=False)
            # the replies, read here so that a notice arriving with them is kept for the first drain
            sock = connection._sock  # type: ignore[attr-defined]
            frames: list[Any] = []
            while len([f for f in frames if not _is_notice(f)]) < 2:
                got = sock.recv(_RECV_BYTES)
                if not got:
                    raise redis.ConnectionError("the server closed the item cache's notice connection")
                self._buffer += got
                parsed, used = parse_frames(self._buffer)
                del self._buffer[:used]
                frames += parsed
            for frame in frames:
                if isinstance(frame, redis.ResponseError):
                    raise frame
            self._pending = [frame for frame in frames if _is_notice(frame)]
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
        """The keys changed since the last drain (or since `open`); None when that is unknown: the connection was
        lost (it is closed; `open` again) or the server dropped every key (a flush)."""
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
        frames, used = parse_frames(self._buffer)
        del self._buffer[:used]
        notices, self._pending = self._pending + frames, []
        keys: list[bytes] = []
        for frame in notices:
            if not _is_notice(frame):
                continue
            if frame[1] is None:  # FLUSHALL / FLUSHDB: every key went
                return None
            keys += frame[1]
        return keys

    def close(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()
            self._connection = None
        self._buffer.clear()
        self._pending: list[Any] = []


def _is_notice(frame: Any) -> bool:
    return isinstance(frame, _Push) and len(frame) == 2 and frame[0] == b"invalidate"


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
        for name, listener in self._listeners.items():
            if not listener.is_open and not self._reopen(listener):
                return False
            keys = listener.drain()
            if keys is None:
                self._clear()
                if not self._reopen(listener):
                    return False
            elif keys:
                self.table.forget(self._ids(keys))
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
            keys = listener.drain()
            if keys is None:
                self._clear()
                return
            changed.update(self._ids(keys))
        if changed:
            self.table.forget(list(changed))
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
        self._listeners = {name: Invalidations(pool, self.prefix) for name, pool in pools.items()}

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

    def _ids(self, keys: list[bytes]) -> list[bytes]:
        """The item ids of changed record keys (`<prefix>{<tag>}:<id>`), as UTF-8."""
        prefix = self.prefix
        return [key[key.index(b"}:", len(prefix)) + 2:] for key in keys if key.startswith(prefix)]
