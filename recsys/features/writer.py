"""Applies events to the PIT features in Redis / MemoryDB, exactly once per event.

Per event, the updates are grouped by entity: the item's counters, the user's counts / recent items / affinities,
and the creator's plays. Each group is one Lua script on the keys of one entity (one hash tag, one cluster slot)
that checks and sets the entity's dedupe marker for the event and applies the group atomically. So:

- an event applied before (a redelivery, a retry, the same event sent twice) changes nothing;
- a batch that failed part-way (a store outage, a Lambda timeout) and is sent again applies exactly the
  groups that were missing: each entity sees each event once.

A batch takes two round trips: the metadata of its items (creator, topics, franchise, creation time), then every
script in one pipeline. Redis errors propagate: the caller reports the batch as failed and retries it later.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from recsys.config import PitFeatureConfig
from recsys.events import IMPRESSION, PLAY_EVENT_TYPES, Event
from recsys.features import layout, scripts
from recsys.features.catalog import ItemMeta
from recsys.features.spec import DAY, counter_increments, creator_increments
from recsys.store import Batch, Store

# Fixed reference time of the affinity scores (2020-01-01T00:00:00Z): see recsys.features.affinity_term.
AFFINITY_EPOCH = 1_577_836_800.0
MAX_SECOND = 2**32 - 1  # event times are stored as uint32 seconds
# Trimming runs when a user's recent items / affinities exceed the kept number by this factor (amortized O(1)).
TRIM_SLACK = 1.5

Status = Literal["applied", "duplicate"]


@dataclass(frozen=True)
class WriteOutcome:
    event_id: str
    status: Status


def validate_event(event: Event) -> None:
    """Raise ValueError naming the field when the writer cannot apply `event`."""
    for name in ("event_id", "user_id", "event_type"):
        value = getattr(event, name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"event {event.event_id!r}: {name} must be a non-empty string")
    if event.item_id is not None and (not isinstance(event.item_id, str) or not event.item_id):
        raise ValueError(f"event {event.event_id!r}: item_id must be a non-empty string or absent")
    if not (isinstance(event.timestamp, (int, float)) and 1 <= event.timestamp <= MAX_SECOND):
        raise ValueError(
            f"event {event.event_id!r}: timestamp must be unix seconds in [1, 2^32), got {event.timestamp!r}")
    if event.event_value is not None and not math.isfinite(event.event_value):
        raise ValueError(f"event {event.event_id!r}: event_value must be finite, got {event.event_value!r}")
    progress(event)


def progress(event: Event) -> float | None:
    """properties["progress"], the fraction of the item consumed, if the client sent one."""
    raw = (event.properties or {}).get("progress")
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"event {event.event_id!r}: properties.progress must be a number in [0, 1], got {raw!r}")
    return value


def affinity_term(weight: float, timestamp: float, half_life_days: float) -> float:
    """log2(weight * 2^((t - AFFINITY_EPOCH) / half_life)): one event's share of a stored affinity.

    A stored affinity is log2(sum of these powers) over the user's events; its value at time `now` is
    2^(stored - (now - AFFINITY_EPOCH) / half_life) = sum(w_i * 2^(-(now - t_i) / half_life)). Adding an event is
    a log-add-exp, independent of the order of events, and the logarithm keeps the sum in range for any epoch.
    """
    return math.log2(weight) + (timestamp - AFFINITY_EPOCH) / (half_life_days * DAY)


def recent_entry(event: Event) -> str:
    """The user's recent-items entry of an event: "second|type|seconds played|progress" (empty when unknown)."""
    seconds = event.event_value if event.event_type in PLAY_EVENT_TYPES and event.event_value is not None else None
    fraction = progress(event)
    return "|".join([
        str(int(event.timestamp)),
        event.event_type,
        "" if seconds is None else repr(float(seconds)),
        "" if fraction is None else repr(fraction),
    ])


class FeatureWriter:
    def __init__(self, redis: Store, config: PitFeatureConfig) -> None:
        self.redis = redis
        self.config = config
        self.item_layout = layout.record_layout("item", config)
        self.creator_layout = layout.record_layout("creator", config)
        self.ttl_s = config.dedupe_ttl_days * DAY

    def apply(self, events: Sequence[Event]) -> list[WriteOutcome]:
        """Apply `events` once each; returns one outcome per event, in order.

        Raises ValueError (naming the event and field) before writing anything if an event is invalid, and any
        redis exception if the store fails; calling again with the same events is always safe.
        """
        for event in events:
            validate_event(event)
        if not events:
            return []
        metas = self._item_metas({e.item_id for e in events if e.item_id is not None})
        batch = Batch(self.redis)
        commands: list[list[int]] = []
        for event in events:
            meta = metas.get(event.item_id) if event.item_id is not None else None
            commands.append(self._queue(batch, event, meta))
        results = batch.execute()
        return [
            WriteOutcome(event.event_id, "applied" if any(results[i] == 1 for i in indexes) else "duplicate")
            for event, indexes in zip(events, commands)
        ]

    def _item_metas(self, item_ids: set[str]) -> dict[str, ItemMeta]:
        if not item_ids:
            return {}
        ordered = sorted(item_ids)
        batch = Batch(self.redis)
        for item_id in ordered:
            batch.command("HGETALL", layout.item_key(item_id, "meta"))
        metas = {}
        for item_id, fields in zip(ordered, batch.execute()):
            if fields:
                columns = {k.decode(): v.decode() for k, v in fields.items()}
                metas[item_id] = ItemMeta.parse(columns, f"metadata of item {item_id!r}")
        return metas

    def _queue(self, batch: Batch, event: Event, meta: ItemMeta | None) -> list[int]:
        marker = layout.event_hash(event.event_id)
        seen = layout.seen_part(event.timestamp)
        indexes = [self._queue_user(batch, event, meta, marker, seen)]
        kinds = counter_increments(event, self.config)
        if event.item_id is not None and kinds:
            item_id = event.item_id
            indexes.append(self._queue_counters(batch, self.item_layout, layout.item_key(item_id, seen), item_id,
                                                kinds, event, marker))
        if meta is not None and meta.creator:
            creator_kinds = creator_increments(event, meta.creation_timestamp, self.config)
            creator = layout.name_hash(meta.creator)
            if creator_kinds:
                indexes.append(self._queue_counters(
                    batch, self.creator_layout, layout.creator_key(creator, seen), layout.creator_id(creator),
                    creator_kinds, event, marker))
        return indexes

    def _queue_counters(self, batch: Batch, record: layout.RecordLayout, seen_key: str, entity_id: str,
                        kinds: frozenset[str], event: Event, marker: int) -> int:
        keys = [seen_key, record.key(entity_id)]
        argv = [marker, self.ttl_s, record.size, *counter_args(record, kinds, int(event.timestamp))]
        return batch.script(scripts.COUNTERS, keys, argv)

    def _queue_user(self, batch: Batch, event: Event, meta: ItemMeta | None, marker: int, seen: str) -> int:
        config = self.config
        keys = [layout.user_key(event.user_id, part) for part in (seen, "n", "recent", "aff")]
        tracked_item = event.item_id if event.item_id is not None and event.event_type != IMPRESSION else ""
        argv: list[object] = [
            marker, self.ttl_s, event.event_type, "0" if event.event_type == IMPRESSION else "1",
            tracked_item, recent_entry(event) if tracked_item else "",
            config.recent_items, int(config.recent_items * TRIM_SLACK),
            config.affinity_max_entries, int(config.affinity_max_entries * TRIM_SLACK),
        ]
        weight = config.affinity_weight(event.event_type)
        if meta is not None and weight > 0:
            term = repr(affinity_term(weight, event.timestamp, config.affinity_half_life_days))
            for field in affinity_fields(meta):
                argv += [field, term]
        return batch.script(scripts.USER, keys, argv)


def affinity_fields(meta: ItemMeta) -> list[str]:
    """The user's affinity hash fields one event on this item adds to: "t:" topic, "c:" creator, "f:" franchise."""
    fields = [f"t:{topic}" for topic in meta.topics]
    if meta.creator:
        fields.append(f"c:{meta.creator}")
    if meta.franchise:
        fields.append(f"f:{meta.franchise}")
    return fields


def counter_args(record: layout.RecordLayout, kinds: frozenset[str], second: int) -> list[int]:
    """The COUNTERS script's arguments after (marker, ttl, size) for an event of `kinds` at `second`."""
    base = record.base
    totals = [kind for kind in record.totals if kind in kinds]
    args: list[int] = [second, len(totals)]
    for kind in totals:
        args += [base + record.total(kind), 1]
    rings = [ring for ring in record.rings if kinds.intersection(ring.kinds)]
    args.append(len(rings))
    for ring in rings:
        args += [base + ring.first, base + ring.slots, ring.buckets, ring.bucket_seconds, len(ring.kinds)]
        args += [int(kind in kinds) for kind in ring.kinds]
    return args
