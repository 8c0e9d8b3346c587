"""Reads the PIT features of one user and up to thousands of candidate items, at a point in time.

Two round trips, whatever the number of items:

1. one pipeline: the user's hashes (counts, recent items, affinities, profile) and every item record (one MGET;
   on a cluster, one read script per node);
2. the records of the items' distinct creators (skipped when no item has one, or when all of them are in the
   reader's cache: creator records are kept `creator_cache_s` seconds, 5 by default: creator popularity counts
   30 days in daily buckets, so a few seconds of staleness change nothing that matters, and most reads then
   take one round trip; 0 turns the cache off).

Item records are fixed-layout binary strings (recsys.features.layout), decoded for all items at once with numpy;
windows are summed there too. `FeatureSnapshot.items` maps an item id to its features without building 1,000
dicts up front; `matrix` / `column()` give the same values as arrays.

Point in time: windowed counts and recent items only reflect events at or before `now` (whole seconds; a bucket
with a later event is left out of the window rather than counted). All-time totals and affinities include every
event applied so far; they are the values at the latest event.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recsys.config import PitFeatureConfig
from recsys.events import KNOWN_EVENT_TYPES
from recsys.features import layout
from recsys.features.spec import DAY, PIT_FEATURES, features_of, item_row_features
from recsys.features.writer import AFFINITY_EPOCH
from recsys.store import Batch, Store

# The catalog section of an item record (layout.CATALOG_FORMAT), as numpy reads it.
CATALOG_DTYPE = np.dtype([
    ("creator", ">i8"), ("franchise", ">i8"), ("topics", ">i8", (layout.MAX_TOPICS,)),
    ("price", ">f4"), ("created", ">f8"), ("flags", ">u4"),
])
ITEM_COLUMNS: tuple[str, ...] = tuple(spec.name for spec in item_row_features())
CREATOR_CACHE_ENTRIES = 200_000  # about 60 MB of creator records at most
_DEFAULTS = {spec.name: spec.default for spec in PIT_FEATURES}
_AFFINITY_KINDS = {"t": "user_topic_affinity", "c": "user_creator_affinity", "f": "user_franchise_affinity"}


class ItemFeatures(Mapping[str, dict[str, float]]):
    """item id -> {feature name: value}, backed by one float64 matrix (rows: items, columns: ITEM_COLUMNS)."""

    def __init__(self, item_ids: Sequence[str], matrix: np.ndarray) -> None:
        self.item_ids = tuple(item_ids)
        self.names = ITEM_COLUMNS
        self.matrix = matrix
        self._rows: dict[str, int] | None = None  # built on the first lookup by id
        self._columns = {name: column for column, name in enumerate(self.names)}

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
        return self.matrix[:, self._columns[name]]


@dataclass(frozen=True)
class FeatureSnapshot:
    user: dict[str, Any]  # feature name -> float or list (see PIT_FEATURES, entity "user")
    items: ItemFeatures
    now: float


class FeatureReader:
    def __init__(self, redis: Store, config: PitFeatureConfig) -> None:
        self.redis = redis
        self.config = config
        self.item_layout = layout.record_layout("item", config)
        self.creator_layout = layout.record_layout("creator", config)
        self._item_dtype = np.dtype(
            CATALOG_DTYPE.descr + [("counters", ">u4", (self.item_layout.words,))])
        self._half_life_s = config.affinity_half_life_days * DAY
        # creator hash -> (expiry on the monotonic clock, record); see PitFeatureConfig.creator_cache_s
        self._creator_cache: dict[int, tuple[float, bytes]] = {}

    def read(self, user_id: str, item_ids: Sequence[str], now: float | None = None) -> FeatureSnapshot:
        """The features of `user_id` and of each of `item_ids` (duplicates once) at `now` (default: the clock)."""
        now = time.time() if now is None else float(now)
        ids = list(dict.fromkeys(item_ids))
        batch = Batch(self.redis)
        user_parts = ("n", "recent", "aff", "profile")
        for part in user_parts:
            batch.command("HGETALL", layout.user_key(user_id, part))
        prefix, suffix = layout.item_key("", self.item_layout.record_part).split("}", 1)
        items = batch.multi_get([f"{prefix}{item_id}}}{suffix}" for item_id in ids])
        results = batch.execute()
        counts, recent, affinity, profile = results[: len(user_parts)]
        joined = _join(items.values(results), self.item_layout.size)
        records = np.frombuffer(joined, dtype=self._item_dtype)

        scores = self._affinity_scores(affinity, now)
        user = self._user(counts, recent, scores, profile, now)
        matrix = np.zeros((len(ids), len(ITEM_COLUMNS)))
        columns = {name: matrix[:, i] for i, name in enumerate(ITEM_COLUMNS)}
        self._counters(self.item_layout, _counter_words(joined, self.item_layout), now, columns)
        self._catalog(records, now, columns)
        self._creators(records["creator"], now, columns)
        self._affinities(records, scores, profile, columns)
        return FeatureSnapshot(user, ItemFeatures(ids, matrix), now)

    def _counters(self, record: layout.RecordLayout, counters: np.ndarray, now: float,
                  columns: dict[str, np.ndarray]) -> None:
        """The totals and window sums of `record`'s features (entity item or creator), into `columns`.

        `counters`: one row of native uint32 counters per entity (see `_counter_words`).
        """
        second = math.floor(now)
        totals, windows = _counter_plan(record)
        for name, index in totals:
            columns[name][:] = counters[:, index]
        for ring, features in windows:
            ring_words = counters[:, ring.first:ring.first + ring.words]
            slots = ring_words.reshape(len(counters), ring.buckets, ring.slot_words)
            inside = window_mask(slots[:, :, 0], second, ring.bucket_seconds, ring.buckets).astype(np.uint32)
            for name, kind in features:  # einsum: several times faster than a masked sum over strided slots
                columns[name][:] = np.einsum("sn,sn->s", slots[:, :, 1 + kind], inside, dtype=np.uint64)

    def _catalog(self, records: np.ndarray, now: float, columns: dict[str, np.ndarray]) -> None:
        flags = records["flags"].astype(np.int64)
        columns["item_price"][:] = np.where(flags & layout.FLAG_KNOWN, records["price"], 0.0)
        columns["item_is_paid"][:] = (flags & layout.FLAG_PAID) > 0
        columns["item_is_animated_series"][:] = (flags & layout.FLAG_ANIMATED) > 0
        created = records["created"].astype(np.float64)
        known = (flags & layout.FLAG_KNOWN > 0) & np.isfinite(created) & (created <= now)
        columns["item_age_days"][:] = np.where(known, (now - np.where(known, created, now)) / DAY, -1.0)

    def _creators(self, creators: np.ndarray, now: float, columns: dict[str, np.ndarray]) -> None:
        unique, inverse = np.unique(creators.astype(np.int64), return_inverse=True)
        known = unique != 0
        if not known.any():
            return
        joined = b"".join(self._creator_records(unique[known].tolist()))
        per_creator = {spec.name: np.zeros(len(unique)) for spec in features_of("creator")}
        found = {name: np.zeros(int(known.sum())) for name in per_creator}
        self._counters(self.creator_layout, _counter_words(joined, self.creator_layout), now, found)
        for name, values in found.items():
            per_creator[name][known] = values
            columns[name][:] = per_creator[name][inverse]

    def _creator_records(self, creators: list[int]) -> list[bytes]:
        """The records of `creators`: from the process cache while fresh, the rest in one round trip."""
        clock = time.monotonic()
        records: list[bytes | None] = [None] * len(creators)
        missing = []
        for position, creator in enumerate(creators):
            cached = self._creator_cache.get(creator)
            if cached is not None and cached[0] > clock:
                records[position] = cached[1]
            else:
                missing.append(position)
        if missing:
            if len(self._creator_cache) > CREATOR_CACHE_ENTRIES:
                self._creator_cache = {k: v for k, v in self._creator_cache.items() if v[0] > clock}
                if len(self._creator_cache) > CREATOR_CACHE_ENTRIES:
                    self._creator_cache.clear()
            part = self.creator_layout.record_part
            batch = Batch(self.redis)
            request = batch.multi_get([layout.creator_key(creators[p], part) for p in missing])
            size = self.creator_layout.size
            fetched = _join(request.values(batch.execute()), size)
            expires = clock + self.config.creator_cache_s
            for n, position in enumerate(missing):
                records[position] = fetched[n * size:(n + 1) * size]
                if self.config.creator_cache_s > 0:
                    self._creator_cache[creators[position]] = (expires, records[position])
        return records  # type: ignore[return-value]

    def _affinities(self, records: np.ndarray, scores: dict[str, dict[str, float]], profile: dict[bytes, bytes],
                    columns: dict[str, np.ndarray]) -> None:
        lookups = (("affinity_topic", "t", records["topics"]), ("affinity_creator", "c", records["creator"]),
                   ("affinity_franchise", "f", records["franchise"]))
        for name, kind, hashes in lookups:
            entries = scores[kind]
            if not entries:
                continue
            keys = np.array([layout.name_hash(n) for n in entries], dtype=np.int64)
            values = np.array(list(entries.values()))
            order = np.argsort(keys)
            keys, values = keys[order], values[order]
            query = hashes.astype(np.int64)
            at = np.clip(np.searchsorted(keys, query), 0, len(keys) - 1)
            matched = np.where(keys[at] == query, values[at], 0.0)
            columns[name][:] = matched.sum(axis=1) if matched.ndim == 2 else matched
        topics = _profile_topics(profile)
        if topics:
            wanted = np.array([layout.name_hash(t) for t in topics], dtype=np.int64)
            columns["profile_topic_match"][:] = np.isin(records["topics"].astype(np.int64), wanted).sum(axis=1)

    def _affinity_scores(self, affinity: dict[bytes, bytes], now: float) -> dict[str, dict[str, float]]:
        """kind ("t", "c", "f") -> {name: decayed score at `now`}."""
        shift = (now - AFFINITY_EPOCH) / self._half_life_s
        scores: dict[str, dict[str, float]] = {"t": {}, "c": {}, "f": {}}
        for field, value in affinity.items():
            kind, _, name = field.decode().partition(":")
            if kind in scores:
                scores[kind][name] = 2.0 ** min(float(value) - shift, 1000.0)
        return scores

    def _user(self, counts: dict[bytes, bytes], recent: dict[bytes, bytes], scores: dict[str, dict[str, float]],
              profile: dict[bytes, bytes], now: float) -> dict[str, Any]:
        user: dict[str, Any] = {"user_events": float(counts.get(b"events", 0))}
        for kind in KNOWN_EVENT_TYPES:
            user[f"user_events_{kind}"] = float(counts.get(f"type:{kind}".encode(), 0))
        user["user_recent_items"] = self._recent_items(recent, now)
        for kind, entries in scores.items():
            user[_AFFINITY_KINDS[kind]] = sorted(([n, s] for n, s in entries.items()), key=lambda e: (-e[1], e[0]))
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


def window_mask(tags: np.ndarray, second: int, bucket_seconds: int, buckets: int) -> np.ndarray:
    """Which ring slots a read at `second` counts, from their tags (the newest event second each slot counted).

    A slot counts when its bucket is one of the `buckets` newest up to the one holding `second`, and all of its
    events are at or before `second` (a bucket holding a later event is left out: no leak from the future).
    An empty slot has tag 0.
    """
    newest = second // bucket_seconds
    return (tags > 0) & (tags <= second) & (tags // bucket_seconds > newest - buckets)


@lru_cache(maxsize=16)
def _counter_plan(record: layout.RecordLayout) -> tuple[
        list[tuple[str, int]], list[tuple[layout.Ring, list[tuple[str, int]]]]]:
    """Which counter feeds each feature: (name, total index), and per ring (ring, (name, kind index))."""
    specs = [s for s in features_of(record.entity) if s.counter is not None]
    totals = [(s.name, record.total(s.counter)) for s in specs if s.window is None]  # type: ignore[arg-type]
    windows = [(ring, [(s.name, ring.kinds.index(str(s.counter))) for s in specs if s.window == ring.window])
               for ring in record.rings]
    return totals, windows


def _profile_topics(profile: dict[bytes, bytes]) -> tuple[str, ...]:
    raw = profile.get(b"TOPICS")
    if not raw:
        return ()
    return tuple(dict.fromkeys(t.strip().lower() for t in raw.decode().split("|") if t.strip()))


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


def _counter_words(joined: bytes, record: layout.RecordLayout) -> np.ndarray:
    """The counters of joined records as native uint32, one row per record (one conversion for all)."""
    words = np.frombuffer(joined, dtype=">u4").reshape(-1, record.size // 4)
    return words[:, record.base:].astype(np.uint32)
