"""Reads the PIT features of one user and up to thousands of candidate items, at a point in time.

Two round trips, whatever the number of items:

1. the user's hashes (counts, recent items, affinities, profile) and every item record: on a single node two
   pipelined requests packed here, the user's and then one MGET, both sent before any reply is read (the user's
   side is computed while the server looks up the records); on a cluster the same, the user's request to the user's
   node and one MGET per bucket of items (layout.key_bucket) to the bucket's node, all sent before any reply is
   read, so the nodes work in parallel (`_read_nodes`);
2. the records of the items' distinct creators (skipped when no item has one, or when all of them are in the
   reader's cache: creator counters are kept `creator_cache_s` seconds, 5 by default: creator popularity counts
   30 days in daily buckets, so a few seconds of staleness change nothing that matters, and most reads then
   take one round trip; 0 turns the cache off).

Item records are fixed-layout binary strings (recsys.features.layout). The native decoder (recsys.features.native,
when built) decodes every record into the feature matrix in C; it also packs the requests and parses the replies
into reused buffers. Without it, redis-py sends the requests (on a cluster, through its cluster pipeline) and parses
the replies, and numpy decodes all items at once. Both give the same values. `FeatureSnapshot.items` maps an item id to its features without
building 1,000 dicts up front; `matrix` / `column()` give the same values as arrays.

Point in time: windowed counts and recent items only reflect events at or before `now` (whole seconds; a bucket
with a later event is left out of the window rather than counted). All-time totals and affinities include every
event applied so far; they are the values at the latest event.
"""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any, NamedTuple, TypeVar

import numpy as np
import redis
from redis.crc import key_slot

from recsys.config import PitFeatureConfig
from recsys.events import KNOWN_EVENT_TYPES
from recsys.features import layout
from recsys.features import native as native_decoder
from recsys.features.item_cache import ItemRecordCache
from recsys.features.spec import DAY, PIT_FEATURES, features_of, item_row_features
from recsys.features.writer import AFFINITY_EPOCH
from recsys.store import Batch, Store, is_cluster, primary_node

# The catalog section of an item record (layout.CATALOG_FORMAT), as numpy reads it.
CATALOG_DTYPE = np.dtype([
    ("creator", ">i8"), ("franchise", ">i8"), ("topics", ">i8", (layout.MAX_TOPICS,)),
    ("price", ">f4"), ("created", ">f8"), ("flags", ">u4"),
])
ITEM_COLUMNS: tuple[str, ...] = tuple(spec.name for spec in item_row_features())
_COLUMN_AT = {name: column for column, name in enumerate(ITEM_COLUMNS)}
_CREATOR_COLUMNS = np.array([_COLUMN_AT[spec.name] for spec in features_of("creator")])
Buffer = bytes | bytearray | memoryview
_NO_RECORDS = bytearray(0)  # the records buffer of replies that hold none
_NOTHING = np.zeros(0, dtype=np.int64)  # no affinities, no profile: what a creator record's decoding is given
CREATOR_CACHE_ENTRIES = 200_000  # about 30 MB of creator counters at most
KEY_CACHE_ENTRIES = 250_000  # about 40 MB of item keys at most
AFFINITY_FIELD_ENTRIES = 200_000  # parsed affinity fields kept across reads: about 40 MB at most
FLAG_TABLE_MAX_BUCKETS = 16  # a ring's flag table has N^2 (N + 1)^2 flags: 0.6 MB of floats per kind at 16
_USER_PARTS = ("n", "recent", "aff", "profile")
_DEFAULTS = {spec.name: spec.default for spec in PIT_FEATURES}
_AFFINITY_KINDS = {"t": "user_topic_affinity", "c": "user_creator_affinity", "f": "user_franchise_affinity"}
# XOR-ed into the name hashes of each kind, so a topic, a creator and a franchise of the same name stay apart in one
# sorted lookup (a topic hash is never 0, the "none" of an empty topic slot; a salted one is as unlikely to be).
_AFFINITY_SALTS = {"t": 0, "c": 0x3C6EF372FE94F82B, "f": -0x5A4F1C2D3B8E6F71}


class ItemFeatures(Mapping[str, dict[str, float]]):
    """item id -> {feature name: value}, backed by one float64 matrix (rows: items, columns: ITEM_COLUMNS).

    The rows follow `item_ids`: each requested id once, in first-seen order on a single node and grouped by key
    bucket on a cluster; align by `item_ids`, not by the request."""

    def __init__(self, item_ids: Sequence[str], matrix: np.ndarray) -> None:
        self.item_ids = tuple(item_ids)
        self.names = ITEM_COLUMNS
        self.matrix = matrix
        self._rows: dict[str, int] | None = None  # built on the first lookup by id

    def __getitem__(self, item_id: str) -> dict[str, float]:
        if self._rows is None:
            self._rows = {item_id: row for row, item_id in enumerate(self.item_ids)}
        return dict(zip(self.names, self.matrix[self._rows[item_id]].tolist()))

    def __iter__(self) -> Iterator[str]:
        return iter(self.item_ids)

    def __len__(self) -> int:
        return len(self.item_ids)

    def column(self, name: str) -> np.ndarray:
        """The values of one feature for every item, in `item_ids` order."""
        return self.matrix[:, _COLUMN_AT[name]]


class _NotPacked(Exception):
    """Ids the native packer does not take (not str): the cluster read goes through redis-py."""


class _NodeRead(NamedTuple):
    """What one cluster node is asked in a read: its buckets' MGETs, and their ids in reply order."""

    node: Any  # redis.cluster.ClusterNode
    requests: list[bytes]
    ids: list[str]


class _UserSide(NamedTuple):
    features: dict[str, Any]
    affinity_keys: np.ndarray  # the user's affinities as one sorted table (see _affinity_table)
    affinity_values: np.ndarray
    profile_topics: np.ndarray  # name hashes


@dataclass(frozen=True)
class FeatureSnapshot:
    user: dict[str, Any]  # feature name -> float or list (see PIT_FEATURES, entity "user")
    items: ItemFeatures
    now: float


class FeatureReader:
    def __init__(self, redis: Store, config: PitFeatureConfig, native: bool = True) -> None:
        """`native`: pack requests, parse replies and decode records with the native decoder when it is built
        (recsys.features.native); False: with redis-py and numpy (the same values, slower)."""
        self.redis = redis
        self.config = config
        self.item_layout = layout.record_layout("item", config)
        self.creator_layout = layout.record_layout("creator", config)
        self._item_dtype = np.dtype(
            CATALOG_DTYPE.descr + [("counters", ">u4", (self.item_layout.words,))])
        self._half_life_s = config.affinity_half_life_days * DAY
        use_native = native and native_decoder.ItemDecoder is not None
        self.cluster_fallbacks = 0  # cluster reads that went through redis-py's pipeline (see _read_cluster)
        self._item_keys = _KeyChunks(self.item_layout.key, self.item_layout.key_affixes() if use_native else None)
        self._creator_keys = _KeyChunks(lambda creator: self.creator_layout.key(layout.creator_id(creator)))
        self._creator_names = tuple(spec.name for spec in features_of("creator"))
        self._creators = _CreatorCache(self.creator_layout.words, len(self._creator_names))
        self._creators_lock = threading.Lock()
        # affinity hash field (b"t:<name>") -> (kind, name, salted name hash), or () for an unknown kind: parsing and
        # hashing a user's few hundred fields anew on every read cost more than scoring them
        self._affinity_fields: dict[bytes, tuple[str, str, int] | tuple[()]] = {}
        self._item_decoder, self._creator_decoder = (
            (native_decoder.ItemDecoder(native_decoder.decoder_plan(self.item_layout, ITEM_COLUMNS, _AFFINITY_SALTS)),
             native_decoder.ItemDecoder(native_decoder.decoder_plan(self.creator_layout, self._creator_names,
                                                                    _AFFINITY_SALTS)))
            if use_native else (None, None)
        )
        # replies read into buffers kept per thread: one set for items, one for the creators fetched while the
        # items' records are still in use
        self._replies = _NativeReplies() if self._item_decoder is not None else None
        self._creator_replies = _NativeReplies() if self._item_decoder is not None else None
        self._cached_records = _NativeReplies() if self._item_decoder is not None else None
        # item records kept across reads (recsys.features.item_cache): with the native decoder only
        self.item_cache = (ItemRecordCache(self.item_layout.size, self.item_layout.key_prefix,
                                           config.item_cache_entries)
                           if self._item_decoder is not None and config.item_cache_entries > 0 else None)
        self._bucket_slots = [key_slot(tag.encode()) for tag in layout.bucket_tags("i")]

    def read(self, user_id: str, item_ids: Sequence[str], now: float | None = None) -> FeatureSnapshot:
        """The features of `user_id` and of each of `item_ids` (duplicates once) at `now` (default: the clock)."""
        now = time.time() if now is None else float(now)
        user_keys = [layout.user_key(user_id, part) for part in _USER_PARTS]
        user_request = b"".join(_packed("HGETALL", key) for key in user_keys)
        cache = self.item_cache
        if cache is not None and item_ids and cache.lock.acquire(blocking=False):
            # a read on another thread meanwhile goes without the cache
            try:
                if cache.begin(self._primary_pools()):
                    return self._read_cached(cache, user_keys, user_request, item_ids, now)
            except (redis.ResponseError, redis.ConnectionError, redis.TimeoutError):
                if not is_cluster(self.redis):
                    raise
                cache.invalidate_all()  # a slot moved or a node failed: read as without the cache, start it afresh
            finally:
                cache.lock.release()
        if is_cluster(self.redis):
            return self._read_cluster(user_keys, user_request, item_ids, now)
        return self._snapshot(*self._fetch_single(user_keys, user_request, lambda: item_ids, now), now)

    def _read_cached(self, cache: ItemRecordCache, user_keys: list[str], user_request: bytes,
                     item_ids: Sequence[str], now: float) -> FeatureSnapshot:
        """The kept records copied while the user's request is out, the others fetched in the same round trip and
        placed among them."""
        size = self.item_layout.size
        joined = self._cached_records.records_buffer(len(item_ids) * size)  # type: ignore[union-attr]
        ids: list[str] = []
        missing: list[int] = []

        def not_kept() -> list[str]:
            ids[:], missing[:] = cache.lookup(item_ids, joined)
            return [ids[position] for position in missing]

        if is_cluster(self.redis):
            user, fetched_ids, fetched = self._fetch_nodes(user_keys, user_request, not_kept, now)
            at = dict(zip((ids[position] for position in missing), missing))
            rows = [at[item_id] for item_id in fetched_ids]
        else:
            user, fetched_ids, fetched = self._fetch_single(user_keys, user_request, not_kept, now)
            rows = missing
        joined = joined[:len(ids) * size]
        if rows:
            np.frombuffer(joined, dtype=np.uint8).reshape(-1, size)[rows] = np.frombuffer(
                fetched, dtype=np.uint8).reshape(-1, size)
        cache.finish(fetched_ids, fetched)
        return self._snapshot(user, ids, joined, now)

    def _primary_pools(self) -> dict[str, redis.ConnectionPool]:
        """Each primary's connection pool by node name: the nodes whose notices the item cache reads."""
        if not is_cluster(self.redis):
            return {"": self.redis.connection_pool}  # type: ignore[union-attr]
        cluster = self.redis
        return {node.name: cluster.get_redis_connection(node).connection_pool  # type: ignore[union-attr]
                for node in cluster.get_primaries()}  # type: ignore[union-attr]

    def _fetch_single(self, user_keys: list[str], user_request: bytes, wanted: Callable[[], Sequence[str]],
                      now: float) -> tuple[_UserSide, list[str], Buffer]:
        """On a single node: the user's side, and the records of the ids `wanted()` gives (each once, in
        first-seen order; called once the user's request is out)."""

        def talk(conversation: _Conversation) -> tuple[_UserSide, list[str], Buffer]:
            # The user's request goes first, alone: the server answers it while the items' request is packed, and
            # the user's side is computed while the server looks up the records. Both requests are sent before
            # any reply is read: one round trip.
            exchange = conversation.on(self.redis)  # type: ignore[arg-type]
            exchange.send(user_request, len(user_keys))
            item_ids = wanted()
            ids: list[str] = []
            if item_ids:
                request, ids = self._item_keys.packed_unique_mget(item_ids)
                exchange.send(request, 1)
            user = self._user_side([_as_dict(reply) for reply in exchange.replies(len(user_keys))], now)
            return user, ids, exchange.records(len(ids), self.item_layout.size) if ids else b""

        return _converse(self.redis, self._replies, talk)  # type: ignore[arg-type]

    def _read_cluster(self, user_keys: list[str], user_request: bytes, item_ids: Sequence[str],
                      now: float) -> FeatureSnapshot:
        """A read on a cluster: natively on each node's own connection (`_fetch_nodes`); through redis-py's cluster
        pipeline without the native decoder, or when the client's slot table is stale (MOVED, ASK) or a node
        fails: the pipeline follows redirections, fails over and refreshes the table for the next read."""
        if self._item_keys.native:
            try:
                return self._snapshot(*self._fetch_nodes(user_keys, user_request, lambda: item_ids, now), now)
            except (redis.ResponseError, redis.ConnectionError, redis.TimeoutError):
                self.cluster_fallbacks += 1
            except _NotPacked:
                pass
        ids = list(dict.fromkeys(item_ids))
        batch = Batch(self.redis)
        for key in user_keys:
            batch.command("HGETALL", key)
        items = batch.multi_get(*self._item_keys.slotted(ids))
        results = batch.execute()
        user = self._user_side(results[: len(user_keys)], now)
        return self._snapshot(user, ids, _join(items.values(results), self.item_layout.size), now)

    def _fetch_nodes(self, user_keys: list[str], user_request: bytes, wanted: Callable[[], Sequence[str]],
                     now: float) -> tuple[_UserSide, list[str], Buffer]:
        """The user's request to its node, then one MGET per key bucket of the ids `wanted()` gives to the bucket's
        node, as the client's slot table has them, all sent before any reply is read. Each node's records land
        together, parsed in one call. Returns the user's side, the item ids in the order of their records, and the
        records."""
        cluster = self.redis
        size = self.item_layout.size
        user_node = primary_node(cluster, key_slot(user_keys[0].encode()))  # type: ignore[arg-type]

        def talk(conversation: _Conversation) -> tuple[_UserSide, list[str], Buffer]:
            conversation.on(cluster.get_redis_connection(user_node)).send(  # type: ignore[union-attr]
                user_request, len(user_keys))
            packed = self._item_keys.packed_bucket_mgets(wanted())
            if packed is None:
                raise _NotPacked("an item id is not a str")
            buckets, bucketed_ids = packed
            plan: dict[str, _NodeRead] = {}
            start = 0
            for bucket, count, request in buckets:
                node = primary_node(cluster, self._bucket_slots[bucket])  # type: ignore[arg-type]
                read = plan.get(node.name) or plan.setdefault(node.name, _NodeRead(node, [], []))
                read.requests.append(request)
                read.ids.extend(bucketed_ids[start:start + count])
                start += count
            for read in plan.values():
                conversation.on(cluster.get_redis_connection(read.node)).send(  # type: ignore[union-attr]
                    b"".join(read.requests), len(read.requests))
            ids = [item_id for read in plan.values() for item_id in read.ids]
            joined = self._replies.records_buffer(len(ids) * size) if ids else b""  # type: ignore[union-attr]
            user_exchange = conversation.on(cluster.get_redis_connection(user_node))  # type: ignore[union-attr]
            user = self._user_side([_as_dict(reply) for reply in user_exchange.replies(len(user_keys))], now)
            at = 0
            for read in plan.values():
                records = joined[at * size:(at + len(read.ids)) * size]
                conversation.on(cluster.get_redis_connection(read.node)).records(  # type: ignore[union-attr]
                    len(read.ids), size, records, replies=len(read.requests))
                at += len(read.ids)
            return user, ids, joined

        return _talk(self._replies, talk)

    def _user_side(self, hashes: list[dict[bytes, bytes]], now: float) -> _UserSide:
        """The user's features, and what the item rows need of the user: the affinity table and profile topics."""
        counts, recent, affinity, profile = hashes
        ranked, keys, values = self._ranked_affinities(affinity, now)
        topics = np.array([layout.name_hash(t) for t in _profile_topics(profile)], dtype=np.int64)
        return _UserSide(self._user(counts, recent, ranked, profile, now), keys, values, topics)

    def _snapshot(self, user: _UserSide, ids: list[str], joined: Buffer, now: float) -> FeatureSnapshot:
        """The snapshot from the user's side and the item records end to end (the creators' are fetched or
        cached)."""
        records = np.frombuffer(joined, dtype=self._item_dtype)
        keys, found, topics = user.affinity_keys, user.affinity_values, user.profile_topics
        matrix = np.zeros((len(ids), len(ITEM_COLUMNS)))
        if self._item_decoder is not None:
            self._item_decoder.decode(joined, math.floor(now), now, keys, found, topics, matrix)
        else:
            columns = {name: matrix[:, i] for i, name in enumerate(ITEM_COLUMNS)}
            self._counters(self.item_layout, _counter_words(joined, self.item_layout), now, columns)
            self._catalog(records, now, columns)
            self._affinities(records, keys, found, topics, columns)
        self._creator_features(records, joined, now, matrix)
        return FeatureSnapshot(user.features, ItemFeatures(ids, matrix), now)

    def _counters(self, record: layout.RecordLayout, counters: np.ndarray, now: float,
                  columns: dict[str, np.ndarray]) -> None:
        """The totals and window sums of `record`'s features (entity item or creator), into `columns`.

        `counters`: one row of native uint32 counters per entity (see `_counter_words`).
        """
        second = math.floor(now)
        plan = _counter_plan(record)
        for name, index in plan.totals:
            columns[name][:] = counters[:, index]
        if not plan.rings:
            return
        # each ring's counted slots (a row of its flag table), for all rings at once; then every window sum is
        # one matrix product of the flagged counters with a 0/1 selector (float: exact, counts are below 2^53)
        head_slot, first_age, end_age = _counted_run(counters[:, plan.heads], second, plan.bucket_seconds,
                                                     plan.buckets)
        flags = np.zeros((len(counters), plan.selector.shape[0]))
        for position, (ring, start) in enumerate(plan.rings):
            flags[:, start:start + ring.buckets * ring.slot_words] = _slot_flags(
                head_slot[:, position], first_age[:, position], end_age[:, position], ring.buckets, ring.slot_words)
        sums = (counters[:, plan.block] * flags) @ plan.selector
        for position, name in enumerate(plan.windowed):
            columns[name][:] = sums[:, position]

    def _catalog(self, records: np.ndarray, now: float, columns: dict[str, np.ndarray]) -> None:
        flags = records["flags"].astype(np.int64)
        columns["item_price"][:] = np.where(flags & layout.FLAG_KNOWN, records["price"], 0.0)
        columns["item_is_paid"][:] = (flags & layout.FLAG_PAID) > 0
        columns["item_is_animated_series"][:] = (flags & layout.FLAG_ANIMATED) > 0
        created = records["created"].astype(np.float64)
        known = (flags & layout.FLAG_KNOWN > 0) & np.isfinite(created) & (created <= now)
        columns["item_age_days"][:] = np.where(known, (now - np.where(known, created, now)) / DAY, -1.0)

    def _creator_features(self, records: np.ndarray, joined: Buffer, now: float, matrix: np.ndarray) -> None:
        """The items' creator features: counters from the cache while fresh, the rest in one round trip."""
        clock = time.monotonic()
        keep_s = self.config.creator_cache_s
        cache = self._creators if keep_s > 0 else _CreatorCache(self.creator_layout.words, len(self._creator_names))
        with self._creators_lock:  # reads on several threads share the cache
            if self._item_decoder is not None and self._item_decoder.creator_features(
                    joined, cache.hashes, cache.expires, clock, cache.computed_at, cache.values, math.floor(now),
                    matrix) == 0:
                return  # every creator was in the cache, fresh and computed for this second: the usual read
            rows = self._creator_rows(cache, records, joined, clock)
            missing = rows == -1
            if missing.any():
                wanted = np.unique(records["creator"][missing].astype(np.int64))
                expires = clock + keep_s if keep_s > 0 else math.inf  # a cache of this read only when keep_s is 0
                cache.remember(wanted, self._fetch_creators(wanted.tolist()), expires, clock)
                rows = self._creator_rows(cache, records, joined, clock)
            known = rows >= 0
            if not known.any():
                return
            values = cache.features(rows[known], math.floor(now), self._creator_values)
        matrix[np.flatnonzero(known)[:, None], _CREATOR_COLUMNS] = values

    def _creator_rows(self, cache: _CreatorCache, records: np.ndarray, joined: Buffer, clock: float) -> np.ndarray:
        """Each item's creator's row in `cache` if fresh there; -1 if not; -2 if the item has no creator."""
        if self._item_decoder is not None:
            rows = np.empty(len(records), dtype=np.int64)
            self._item_decoder.creator_rows(joined, cache.hashes, cache.expires, clock, rows)
            return rows
        creators = records["creator"].astype(np.int64)
        at, fresh = cache.find(creators, clock)
        return np.where(creators == 0, -2, np.where(fresh, at, -1))

    def _creator_values(self, words: np.ndarray, second: int) -> np.ndarray:
        """The creator features of these counters at `second`: one row per creator, `_creator_names` columns."""
        values = np.zeros((len(words), len(self._creator_names)))
        if self._creator_decoder is not None:
            self._creator_decoder.decode(words.astype(">u4").tobytes(), second, float(second), _NOTHING, _NOTHING,
                                         _NOTHING, values)
        else:
            self._counters(self.creator_layout, words, second,
                           {name: values[:, position] for position, name in enumerate(self._creator_names)})
        return values

    def _fetch_creators(self, creators: list[int]) -> np.ndarray:
        """The counters of `creators` from the store, one round trip (a missing record reads as zeros)."""
        if is_cluster(self.redis):
            batch = Batch(self.redis)
            request = batch.multi_get(*self._creator_keys.slotted(creators))
            values = request.values(batch.execute())
            return _counter_words(_join(values, self.creator_layout.size), self.creator_layout)

        def talk(conversation: _Conversation) -> Buffer:
            exchange = conversation.on(self.redis)  # type: ignore[arg-type]
            exchange.send(self._creator_keys.packed_mget(creators), 1)
            return exchange.records(len(creators), self.creator_layout.size)

        return _counter_words(_converse(self.redis, self._creator_replies, talk), self.creator_layout)

    def _affinities(self, records: np.ndarray, keys: np.ndarray, found: np.ndarray, topics: np.ndarray,
                    columns: dict[str, np.ndarray]) -> None:
        """The user-item features: one sorted lookup (`_affinity_table`) for all three kinds, and the profile match."""
        if len(keys):
            query = np.empty((len(records), layout.MAX_TOPICS + 2), dtype=np.int64)
            query[:, :layout.MAX_TOPICS] = records["topics"]
            query[:, layout.MAX_TOPICS] = records["creator"] ^ np.int64(_AFFINITY_SALTS["c"])
            query[:, layout.MAX_TOPICS + 1] = records["franchise"] ^ np.int64(_AFFINITY_SALTS["f"])
            # most of the items' hashes are not among the user's few hundred: a 16-bit prefilter (one gather)
            # leaves the binary search only the candidates
            prefilter = np.zeros(1 << 16, dtype=bool)
            prefilter[keys & 0xFFFF] = True
            flat = query.ravel()
            candidates = np.flatnonzero(prefilter[flat & 0xFFFF])
            at = np.searchsorted(keys, flat[candidates]).clip(max=len(keys) - 1)
            matched = np.zeros(flat.shape)
            matched[candidates] = np.where(keys[at] == flat[candidates], found[at], 0.0)
            matched = matched.reshape(query.shape)
            columns["affinity_topic"][:] = matched[:, :layout.MAX_TOPICS].sum(axis=1)
            columns["affinity_creator"][:] = matched[:, layout.MAX_TOPICS]
            columns["affinity_franchise"][:] = matched[:, layout.MAX_TOPICS + 1]
        if len(topics):
            columns["profile_topic_match"][:] = np.isin(records["topics"].astype(np.int64), topics).sum(axis=1)

    def _ranked_affinities(self, affinity: dict[bytes, bytes], now: float) -> tuple[dict[str, list[list[Any]]],
                                                                                    np.ndarray, np.ndarray]:
        """The user's decayed affinities at `now`: per kind ("t", "c", "f"), [name, score] pairs strongest first
        (ties by name); and all of them as one sorted table of salted name hashes and scores (see _affinity_table)."""
        shift = (now - AFFINITY_EPOCH) / self._half_life_s
        fields = self._affinity_fields
        ranked: dict[str, list[list[Any]]] = {"t": [], "c": [], "f": []}
        hashes: list[int] = []
        scores: list[float] = []
        for field, value in affinity.items():
            known = fields.get(field)
            if known is None:
                if len(fields) >= AFFINITY_FIELD_ENTRIES:
                    fields.clear()
                kind, _, name = field.decode().partition(":")
                known = fields[field] = (kind, name, layout.name_hash(name) ^ _AFFINITY_SALTS[kind]) \
                    if kind in ranked else ()
            if known:
                kind, name, salted = known
                score = 2.0 ** min(float(value) - shift, 1000.0)
                ranked[kind].append([name, score])
                hashes.append(salted)
                scores.append(score)
        for entries in ranked.values():
            entries.sort(key=_strongest_first)
        return (ranked, *_affinity_table(hashes, scores))

    def _user(self, counts: dict[bytes, bytes], recent: dict[bytes, bytes], ranked: dict[str, list[list[Any]]],
              profile: dict[bytes, bytes], now: float) -> dict[str, Any]:
        user: dict[str, Any] = {"user_events": float(counts.get(b"events", 0))}
        for kind in KNOWN_EVENT_TYPES:
            user[f"user_events_{kind}"] = float(counts.get(f"type:{kind}".encode(), 0))
        user["user_recent_items"] = self._recent_items(recent, now)
        for kind, entries in ranked.items():
            user[_AFFINITY_KINDS[kind]] = entries
        age = profile.get(b"AGE")
        user["user_age"] = float(age) if age else _DEFAULTS["user_age"]
        user["user_profile_topics"] = list(_profile_topics(profile))
        return user

    def _recent_items(self, recent: dict[bytes, bytes], now: float) -> list[dict[str, Any]]:
        entries = []
        for item, entry in recent.items():
            second, event_type, seconds, fraction = entry.decode().split("|")
            if int(second) <= now:
                entries.append({
                    "item_id": item.decode(), "timestamp": float(second), "event_type": event_type,
                    "seconds": float(seconds) if seconds else None, "progress": float(fraction) if fraction else None,
                })
        entries.sort(key=lambda e: (-e["timestamp"], e["item_id"]))
        return entries[: self.config.recent_items]


def window_mask(heads: np.ndarray, second: int, bucket_seconds: int, buckets: int) -> np.ndarray:
    """Which slots of rings with these `heads` a read at `second` counts: one row of `buckets` flags per ring.

    A ring holds the `buckets` buckets up to its head's (the head is its newest event second; 0: empty), bucket b
    in slot b mod N. A read counts those among the N newest up to the bucket holding `second`, and that bucket
    only if none of its events can be after `second` (else it is left out whole: a window never counts the
    future): the head tells for its own bucket; an older bucket may hold events up to its last second.
    The counted buckets are a run of ages (0: the head's bucket): see _counted_run and _slot_flags.
    """
    return _slot_flags(*_counted_run(heads, second, bucket_seconds, buckets), buckets, 1).astype(bool)


def _counted_run(heads: np.ndarray, second: int, bucket_seconds: Any, buckets: Any) -> tuple[np.ndarray, ...]:
    """Each ring's head slot and the run of ages a read at `second` counts: first..end-1 (0: the head's bucket).
    Elementwise: with arrays of `bucket_seconds` and `buckets` (one per ring, the last axis of `heads`), for
    several rings at once."""
    heads = heads.astype(np.int64)
    head_bucket = heads // bucket_seconds
    lead = head_bucket - second // bucket_seconds  # > 0: the head is past the read's bucket
    last_second = (second // bucket_seconds + 1) * bucket_seconds - 1  # of the read's bucket
    # from the read's bucket (left out if it may hold a later event) back to N - 1 buckets before it
    first_age = np.minimum(np.maximum(lead, 0) + (np.minimum(heads, last_second) > second), buckets)
    end_age = np.maximum(np.minimum(lead, 0) + buckets, 0) * (heads > 0)
    return head_bucket % buckets, first_age, end_age


def _slot_flags(head_slot: np.ndarray, first_age: np.ndarray, end_age: np.ndarray, buckets: int,
                kinds: int) -> np.ndarray:
    """The counted slots of rings (one row each), each flag repeated for the slot's `kinds` counts. Small rings
    take their rows from a table of every (head slot, first, end): one gather; the table grows as N^4, so larger
    rings (the creator window of `creator_recent_days`) compare ages instead."""
    if buckets <= FLAG_TABLE_MAX_BUCKETS:
        return _flag_table(buckets, kinds)[(head_slot * (buckets + 1) + first_age) * (buckets + 1) + end_age]
    ages = _ages(buckets)[head_slot]
    return np.repeat((ages >= first_age[:, None]) & (ages < end_age[:, None]), kinds, axis=1)


@lru_cache(maxsize=16)
def _ages(buckets: int) -> np.ndarray:
    """Row h: the age of the bucket in each slot of a ring whose head is in slot h."""
    return (np.arange(buckets).reshape(-1, 1) - np.arange(buckets)) % buckets


@lru_cache(maxsize=16)
def _flag_table(buckets: int, kinds: int) -> np.ndarray:
    """Row (head slot, first age, end age): the flags of the slots holding ages first..end-1, as floats."""
    first = np.arange(buckets + 1).reshape(1, -1, 1, 1)
    end = np.arange(buckets + 1).reshape(1, 1, -1, 1)
    ages = _ages(buckets).reshape(buckets, 1, 1, buckets)
    flags = ((ages >= first) & (ages < end)).reshape(-1, buckets)
    return np.repeat(flags, kinds, axis=1).astype(np.float64)


@dataclass(frozen=True)
class _CounterPlan:
    """How a record's counters make its features: (name, total index); the rings' heads, bucket seconds and
    bucket counts as arrays (one per ring); the block of counters from the first ring to the last, each ring
    with where its slots start in the block; and the 0/1 selector summing the block into the `windowed` features."""

    totals: tuple[tuple[str, int], ...]
    heads: np.ndarray
    bucket_seconds: np.ndarray
    buckets: np.ndarray
    block: slice
    rings: tuple[tuple[layout.Ring, int], ...]
    selector: np.ndarray
    windowed: tuple[str, ...]


@lru_cache(maxsize=16)
def _counter_plan(record: layout.RecordLayout) -> _CounterPlan:
    specs = [s for s in features_of(record.entity) if s.counter is not None]
    first = record.rings[0].first if record.rings else 0
    end = record.rings[-1].end if record.rings else 0
    windowed = [s for s in specs if s.window is not None]
    selector = np.zeros((end - first, len(windowed)))
    for column, spec in enumerate(windowed):
        ring = next(r for r in record.rings if r.window == spec.window)
        kind = ring.kinds.index(str(spec.counter))
        selector[ring.slots - first + kind:ring.end - first:ring.slot_words, column] = 1.0
    return _CounterPlan(
        totals=tuple((s.name, record.total(str(s.counter))) for s in specs if s.window is None),
        heads=np.array([ring.first for ring in record.rings], dtype=np.int64),
        bucket_seconds=np.array([ring.bucket_seconds for ring in record.rings], dtype=np.int64),
        buckets=np.array([ring.buckets for ring in record.rings], dtype=np.int64),
        block=slice(first, end),
        rings=tuple((ring, ring.slots - first) for ring in record.rings),
        selector=selector,
        windowed=tuple(s.name for s in windowed),
    )


def _affinity_table(hashes: list[int], scores: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Affinities of all three kinds as one table sorted by salted name hash (see _AFFINITY_SALTS), with their
    scores: what the item rows look their topics, creator and franchise up in."""
    keys = np.array(hashes, dtype=np.int64)
    order = np.argsort(keys)
    return keys[order], np.array(scores, dtype=np.float64)[order]


def _strongest_first(entry: list[Any]) -> tuple[float, str]:
    return -entry[1], entry[0]


def _profile_topics(profile: dict[bytes, bytes]) -> tuple[str, ...]:
    raw = profile.get(b"TOPICS")
    if not raw:
        return ()
    return tuple(dict.fromkeys(t.strip().lower() for t in raw.decode().split("|") if t.strip()))


class _KeyChunks:
    """Item id (or creator hash) -> its key as a RESP bulk string, or on a cluster its key and slot, kept across
    reads: packing or hashing 1,000 keys anew costs more than the read's network time. A catalog's ids are few
    enough to keep; past KEY_CACHE_ENTRIES it restarts. With `affixes` (RecordLayout.key_affixes), str ids are
    packed natively from the ids themselves, and none is kept."""

    def __init__(self, key: Callable[[Any], str], affixes: tuple[tuple[bytes, ...], bytes] | None = None) -> None:
        self.key = key
        self._chunks: dict[Any, bytes] = {}
        self._slotted: dict[Any, tuple[str, int]] = {}  # on a cluster: id -> (key, slot)
        self._affixes = affixes

    def packed_unique_mget(self, ids: Sequence[Any]) -> tuple[bytes, list[Any]]:
        """The MGET of the keys of `ids`, each once, and those ids in first-seen order."""
        packed = native_decoder.pack_mget(ids, *self._affixes, False) if self._affixes is not None else None
        if packed is not None:
            return packed
        unique = list(dict.fromkeys(ids))
        return self.packed_mget(unique), unique

    @property
    def native(self) -> bool:
        """Whether str ids are packed natively (the cluster reads need it)."""
        return self._affixes is not None

    def packed_bucket_mgets(self, ids: Sequence[Any]) -> tuple[list[tuple[int, int, bytes]], list[Any]] | None:
        """One MGET per bucket of the keys of `ids` (each once): [(bucket, count, request)] in bucket order, and
        the ids in that order; None unless packed natively (then the caller reads through redis-py)."""
        return native_decoder.pack_mget(ids, *self._affixes, True) if self._affixes is not None else None

    def packed_mget(self, ids: Sequence[Any]) -> bytes:
        chunks = self._chunks
        try:
            parts = itemgetter(*ids)(chunks) if len(ids) > 1 else (chunks[ids[0]],)
        except KeyError:
            if len(chunks) + len(ids) > KEY_CACHE_ENTRIES:
                chunks.clear()
            parts = [chunks.get(item_id) or self._add(item_id) for item_id in ids]
        return b"*%d\r\n$4\r\nMGET\r\n%s" % (len(parts) + 1, b"".join(parts))

    def _add(self, item_id: Any) -> bytes:
        key = self.key(item_id).encode()
        chunk = self._chunks[item_id] = b"$%d\r\n%s\r\n" % (len(key), key)
        return chunk

    def slotted(self, ids: Sequence[Any]) -> tuple[list[str], list[int]]:
        """The keys of `ids` and their cluster slots, kept across reads like the packed keys."""
        cache = self._slotted
        if len(cache) + len(ids) > KEY_CACHE_ENTRIES:
            cache.clear()
        keys, slots = [], []
        for item_id in ids:
            known = cache.get(item_id)
            if known is None:
                key = self.key(item_id)
                known = cache[item_id] = (key, key_slot(key.encode()))
            keys.append(known[0])
            slots.append(known[1])
        return keys, slots


class _CreatorCache:
    """Creator hash -> native counters and expiry on the monotonic clock, as sorted arrays: a read finds its
    creators with one searchsorted. Features are a function of the counters and the read's second, so each entry
    also keeps its features at the last second they were computed for: reads within one second reuse them.
    See PitFeatureConfig.creator_cache_s."""

    def __init__(self, words: int, features: int) -> None:
        self.hashes = np.zeros(0, dtype=np.int64)
        self.words = np.zeros((0, words), dtype=np.uint32)
        self.expires = np.zeros(0)
        self.values = np.zeros((0, features))
        self.computed_at = np.zeros(0, dtype=np.int64)

    def find(self, creators: np.ndarray, clock: float) -> tuple[np.ndarray, np.ndarray]:
        """(the entry of each creator, clipped: valid where found; whether it is found and fresh)."""
        if not len(self.hashes):
            return np.zeros(len(creators), dtype=np.int64), np.zeros(len(creators), dtype=bool)
        at = np.searchsorted(self.hashes, creators).clip(max=len(self.hashes) - 1)
        return at, (self.hashes[at] == creators) & (self.expires[at] > clock)

    def remember(self, creators: np.ndarray, words: np.ndarray, expires: float, clock: float) -> None:
        keep = (self.expires > clock) & ~np.isin(self.hashes, creators)
        if keep.sum() + len(creators) > CREATOR_CACHE_ENTRIES:
            keep[:] = False
        hashes = np.concatenate([self.hashes[keep], creators])
        order = np.argsort(hashes)
        self.hashes = hashes[order]
        self.words = np.concatenate([self.words[keep], words])[order]
        self.expires = np.concatenate([self.expires[keep], np.full(len(creators), expires)])[order]
        self.values = np.concatenate([self.values[keep], np.zeros((len(creators), self.values.shape[1]))])[order]
        self.computed_at = np.concatenate([self.computed_at[keep], np.full(len(creators), -1)])[order]

    def features(self, entries: np.ndarray, second: int,
                 compute: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
        """The features of `entries` at `second`, computed by `compute(counters, second)` where not yet."""
        stale = np.unique(entries[self.computed_at[entries] != second])
        if len(stale):
            self.values[stale] = compute(self.words[stale], second)
            self.computed_at[stale] = second
        return self.values[entries]


def _packed(*args: str) -> bytes:
    """One command in RESP (what redis-py would send, without its per-argument checks)."""
    encoded = [arg.encode() for arg in args]
    return b"*%d\r\n%s" % (len(encoded), b"".join(b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in encoded))


Result = TypeVar("Result")


def _converse(client: redis.Redis, scratch: _NativeReplies | None,
              talk: Callable[[_Conversation], Result]) -> Result:
    """`_talk` on one node; connection errors retry the whole talk per the client's retry policy (reads are
    idempotent)."""
    retry = client.get_retry()

    def attempt() -> Result:
        return _talk(scratch, talk)

    return retry.call_with_retry(attempt, lambda _error: None) if retry is not None else attempt()


def _talk(scratch: _NativeReplies | None, talk: Callable[[_Conversation], Result]) -> Result:
    """`talk(conversation)`: pipelined requests and their replies on one pooled connection per node, taken as the
    talk first sends to the node (`_Conversation.on`).

    A connection whose talk fails with replies still unread is out of step: it is dropped (a connection error
    drops it too, as redis-py does).
    """
    conversation = _Conversation(scratch)
    try:
        result = talk(conversation)
        for exchange in conversation.exchanges:
            exchange.finish()
        return result
    except BaseException as error:
        for exchange in conversation.exchanges:
            if exchange.pending or isinstance(error, (redis.ConnectionError, redis.TimeoutError)):
                exchange.connection.disconnect()
        raise
    finally:
        conversation.release()


class _Conversation:
    """The exchanges of one talk: one per node, each on a connection taken from the node's pool when first used."""

    def __init__(self, scratch: _NativeReplies | None) -> None:
        self._scratch = scratch
        self._by_pool: dict[int, tuple[redis.ConnectionPool, _Exchange]] = {}

    @property
    def exchanges(self) -> list[_Exchange]:
        return [exchange for _, exchange in self._by_pool.values()]

    def on(self, client: redis.Redis) -> _Exchange:
        pool = client.connection_pool
        taken = self._by_pool.get(id(pool))
        if taken is None:
            taken = self._by_pool[id(pool)] = (pool, _Exchange(pool.get_connection(), self._scratch))
        return taken[1]

    def release(self) -> None:
        for pool, exchange in self._by_pool.values():
            pool.release(exchange.connection)


class _Exchange:
    """Requests pipelined on one connection: each is sent as soon as it is packed, and their replies are read in
    order. With `scratch` (the native decoder is built) replies are parsed by it from one reused buffer, a records
    reply without one Python object per record; else by redis-py's parser. An error reply is raised once every
    pending reply is read, so the connection stays in step."""

    def __init__(self, connection: redis.connection.AbstractConnection, scratch: _NativeReplies | None) -> None:
        self.connection = connection
        self.pending = 0  # replies sent for and not read yet
        self._stream = scratch.stream(connection) if scratch is not None else None

    def send(self, payload: bytes, replies: int) -> None:
        """Send packed commands that answer with `replies` replies."""
        # no health check once replies are pending: its PING would read them as its own answer
        self.connection.send_packed_command([payload], check_health=not self.pending)
        self.pending += replies

    def replies(self, count: int) -> list[Any]:
        """The next `count` replies as Python values."""
        replies = self._stream.replies(count) if self._stream is not None else [self._read() for _ in range(count)]
        self._received(replies)
        return replies

    def records(self, count: int, record_size: int, into: memoryview | None = None, replies: int = 1) -> Buffer:
        """The next `replies` replies, MGETs of `count` fixed-size records in all, as the records end to end (see
        `_join`), in `into` if given. Several replies and `into` are for the native cluster read only."""
        if self._stream is None:  # redis-py's parser: a single node without the native decoder
            reply = self._read()
            self._received([reply])
            return _join(reply, record_size)
        received, joined = self._stream.records(count, record_size, into, replies)
        self._received(received)
        return joined

    def finish(self) -> None:
        if self._stream is not None:
            self._stream.finish()

    def _read(self) -> Any:
        try:
            return self.connection.read_response(disable_decoding=True)
        except redis.ResponseError as exc:
            return exc

    def _received(self, replies: list[Any]) -> None:
        self.pending -= len(replies)
        error = next((reply for reply in replies if isinstance(reply, redis.ResponseError)), None)
        if error is not None:
            while self.pending:
                self.replies(1)
            raise error


class _NativeReplies:
    """Replies (RESP2 or RESP3) parsed by the native decoder, read straight from redis-py's socket (TLS included)
    into buffers kept per thread, so a read allocates nothing per record and no 400 KB buffer anew (large
    allocations are what made reads slow when glibc returned the memory between them)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def stream(self, connection: redis.connection.AbstractConnection) -> _ReplyStream:
        return _ReplyStream(self, connection)

    def records_buffer(self, size: int) -> memoryview:
        """The thread's buffer for `size` bytes of records (valid until its next read)."""
        out = getattr(self._local, "records", None)
        if out is None or len(out) < size:
            out = self._local.records = bytearray(max(size, 1 << 16))
        return memoryview(out)[:size]

    def spare_buffers(self) -> list[bytearray]:
        """The thread's reply buffers not in use (a cluster read has one stream per node)."""
        spare: list[bytearray] = self._local.__dict__.setdefault("spare", [])
        return spare


class _ReplyStream:
    """The replies of one exchange on `connection`, received into one of the thread's buffers (a cluster read has
    one exchange per node) and consumed in order."""

    def __init__(self, owner: _NativeReplies, connection: redis.connection.AbstractConnection) -> None:
        self._owner = owner
        self._connection = connection
        spare = owner.spare_buffers()
        self._buffer = spare.pop() if spare else bytearray(1 << 16)
        self._start = self._length = 0  # buffer[start:length]: received, not consumed

    def replies(self, count: int) -> list[Any]:
        with self._errors():
            end = self._complete(count)
            replies = native_decoder.parse_replies(self._unread(end), count, count, 1, _NO_RECORDS,
                                                   redis.ResponseError)
        self._start += end
        return replies

    def records(self, count: int, record_size: int, into: memoryview | None,
                replies: int) -> tuple[list[Any], memoryview]:
        joined = into if into is not None else self._owner.records_buffer(count * record_size)
        with self._errors():
            end = self._complete(replies)
            received = native_decoder.parse_replies(self._unread(end), replies, 0, record_size, joined,
                                                    redis.ResponseError)
        self._start += end
        return received, joined

    def finish(self) -> None:
        if self._start != self._length:
            self._connection.disconnect()
            raise redis.ConnectionError(
                f"{self._length - self._start} bytes after the replies: the connection is out of step")
        self._owner.spare_buffers().append(self._buffer)

    def _unread(self, end: int) -> memoryview:
        return memoryview(self._buffer)[self._start:self._start + end]

    def _complete(self, count: int) -> int:
        """The length of the next `count` replies, receiving until they are all in."""
        scanner = native_decoder.ReplyScanner(count)
        while (end := scanner.feed(memoryview(self._buffer)[self._start:], self._length - self._start)) < 0:
            if self._length == len(self._buffer):
                # a new buffer, the unread bytes first (the scanner's offsets count from them)
                unread = self._length - self._start
                grown = bytearray(max(len(self._buffer), 2 * unread))
                grown[:unread] = memoryview(self._buffer)[self._start:self._length]
                self._buffer, self._start, self._length = grown, 0, unread
            got = self._connection._sock.recv_into(  # type: ignore[union-attr]
                memoryview(self._buffer)[self._length:])
            if not got:
                raise redis.ConnectionError("Connection closed by server.")
            self._length += got
        return end

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Reading errors as redis-py raises them, the connection dropped (it is out of step)."""
        connection = self._connection
        try:
            yield
        except socket.timeout as exc:
            connection.disconnect()
            raise redis.TimeoutError(f"Timeout reading from {connection.host}:{connection.port}") from exc
        except (OSError, ValueError) as exc:  # ValueError: not a reply (the connection is out of step)
            connection.disconnect()
            raise redis.ConnectionError(f"Error reading from {connection.host}:{connection.port}: {exc}") from exc
        except BaseException:
            connection.disconnect()
            raise


def _as_dict(reply: Any) -> dict[bytes, bytes]:
    """An HGETALL reply: a flat list in RESP2, a map in RESP3."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2]))


def _join(values: list[bytes | None], size: int) -> bytes:
    """The records end to end; a missing record reads as zeros ("no data").

    Writers keep every record at its full size, so the fast path is one join; a record of another size (e.g.
    written by an older layout under the same key) is cut or zero-padded.
    """
    if None in values:
        empty = bytes(size)
        values = [empty if v is None else v for v in values]
    joined = b"".join(values)  # type: ignore[arg-type]
    if len(joined) != size * len(values):
        joined = b"".join(v[:size].ljust(size, b"\0") for v in values)  # type: ignore[union-attr]
    return joined


def _counter_words(joined: Buffer, record: layout.RecordLayout) -> np.ndarray:
    """The counters of joined records as native uint32, one row per record (one conversion for all)."""
    words = np.frombuffer(joined, dtype=">u4").reshape(-1, record.size // 4)
    return words[:, record.base:].astype(np.uint32)
