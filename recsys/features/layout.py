"""Key names and the binary layout of item and creator records, both derived from the spec.

Every key of one entity carries the same hash tag, so it lives in one cluster slot and one Lua script can update
them atomically. A user's tag is the user: `pit:{u:<user>}:...`. Items and creators are tagged by a bucket of their
id instead (`key_bucket`): `pit:{i:<bucket tag>}:<item>:...`, `pit:{c:<bucket tag>}:<creator hash>:...`. A read of
1,000 items is then one MGET per bucket on a cluster, which refuses an MGET across slots; tagged by the id, it
took one GET per item.

Records put their layout first, `pit:r<fingerprint>:{i:<bucket tag>}:<item>` (`RecordLayout.key_prefix`), so that
one key prefix names every item record of a layout and nothing else: the reader's item cache asks the server to
announce changes of the keys under that prefix (CLIENT TRACKING BCAST PREFIX).

An item record is one string the reader fetches with a single GET:

- bytes 0-79, the catalog section, written by `ItemCatalog`: creator, franchise and up to MAX_TOPICS topic hashes
  (int64), price (float32), creation time (float64), flags (uint32);
- then uint32 counters, updated by the writer's Lua script with BITFIELD: the all-time totals, then one ring of
  buckets per window. A ring is its head, the newest event second it counted (0: empty), then one slot of counts
  (one per counter kind of the window) per bucket. The head says which bucket each slot holds: the slot of bucket
  b is b mod N, and the ring holds the N buckets up to the head's. When the head moves to a newer bucket, the
  slots it reuses (buckets that fell out of the ring) are zeroed.

All numbers are big-endian (BITFIELD's order). A creator record has no catalog section. The fingerprint changes
when the layout does (a spec or config change), so a new layout starts from empty records instead of misreading
old ones; replaying events rebuilds them.

This module needs no numpy: the writer Lambda's bundle is pure Python.
"""

from __future__ import annotations

import binascii
import hashlib
import struct
from dataclasses import dataclass
from functools import cached_property, lru_cache

from recsys.config import PitFeatureConfig
from recsys.features.spec import DAY, PIT_FEATURES, Entity, Window

PREFIX = "pit"
MAX_TOPICS = 6
CATALOG_FORMAT = f">qq{MAX_TOPICS}qfdI"  # creator, franchise, topics, price, created, flags
CATALOG_BYTES = struct.calcsize(CATALOG_FORMAT)
FLAG_KNOWN = 1  # the catalog section was written
FLAG_PAID = 2
FLAG_ANIMATED = 4


@lru_cache(maxsize=1 << 16)
def name_hash(name: str) -> int:
    """A stable non-zero signed 64-bit hash of a metadata value (0 means "none" in records)."""
    value = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
    return value or 1


def event_hash(event_id: str) -> int:
    """The dedupe marker of an event id: an integer, so small marker sets stay compact (intset)."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8, person=b"pit-event").digest(), "big",
                          signed=True)


# Buckets of item (and creator) keys. More buckets spread the items over more shards; fewer make fewer commands per
# read. Changing it moves every item and creator key: replay the events to rebuild them.
KEY_BUCKETS = 64
CLUSTER_SLOTS = 16384


def key_bucket(entity_id: str) -> int:
    """The bucket of an item id (or a creator's hex hash): CRC16, the cluster's own key hash, modulo KEY_BUCKETS
    (the native MGET packer computes the same)."""
    return binascii.crc_hqx(entity_id.encode(), 0) % KEY_BUCKETS


@lru_cache(maxsize=4)
def bucket_tags(entity: str) -> tuple[str, ...]:
    """Each bucket's hash tag, `<entity>:<bucket>.<n>`, with the first n that puts bucket b in the b-th of
    KEY_BUCKETS equal slot ranges: a cluster whose shards own equal slot ranges (the default) holds equal shares of
    the buckets, where tags by the bucket alone left some shards 60% more than others."""
    width = CLUSTER_SLOTS // KEY_BUCKETS
    tags = []
    for bucket in range(KEY_BUCKETS):
        n = 0
        while binascii.crc_hqx(f"{entity}:{bucket}.{n}".encode(), 0) % CLUSTER_SLOTS // width != bucket:
            n += 1
        tags.append(f"{entity}:{bucket}.{n}")
    return tuple(tags)


def bucket_tag(entity: str, entity_id: str) -> str:
    """The hash tag of an item's ("i") or a creator's ("c") keys."""
    return bucket_tags(entity)[key_bucket(entity_id)]


def item_key(item_id: str, part: str) -> str:
    """An item's key other than its record (its metadata, its dedupe markers)."""
    return f"{PREFIX}:{{{bucket_tag('i', item_id)}}}:{item_id}:{part}"


def user_key(user_id: str, part: str) -> str:
    return f"{PREFIX}:{{u:{user_id}}}:{part}"


def creator_id(creator_hash: int) -> str:
    """How a creator hash names its keys: 16 hex digits."""
    return f"{creator_hash & 0xFFFFFFFFFFFFFFFF:016x}"


@lru_cache(maxsize=1 << 16)
def creator_key(creator_hash: int, part: str) -> str:
    """A creator's key other than its record (its dedupe markers)."""
    creator = creator_id(creator_hash)
    return f"{PREFIX}:{{{bucket_tag('c', creator)}}}:{creator}:{part}"


def seen_part(timestamp: float) -> str:
    """Dedupe markers are kept per entity in one set per day of event time (a redelivery has the same time)."""
    return f"seen:{int(timestamp // DAY)}"


# Bumped when the encoding changes without the shape changing, so the fingerprint moves too.
RECORD_FORMAT = 2


@dataclass(frozen=True)
class Ring:
    """One window: the head (uint32 index `first`), then `buckets` slots of one count per kind."""

    window: Window
    buckets: int
    kinds: tuple[str, ...]
    first: int

    @property
    def bucket_seconds(self) -> int:
        return self.window.bucket_seconds

    @property
    def slot_words(self) -> int:
        return len(self.kinds)

    @property
    def words(self) -> int:
        return 1 + self.buckets * self.slot_words

    @property
    def slots(self) -> int:
        """uint32 index (in the counters) of the first slot."""
        return self.first + 1

    @property
    def end(self) -> int:
        """uint32 index (in the counters) just past the last slot."""
        return self.first + self.words


@dataclass(frozen=True)
class RecordLayout:
    entity: Entity
    header_bytes: int
    totals: tuple[str, ...]  # counter kinds kept all-time, in spec order
    rings: tuple[Ring, ...]

    @property
    def words(self) -> int:
        return len(self.totals) + sum(ring.words for ring in self.rings)

    @property
    def size(self) -> int:
        return self.header_bytes + 4 * self.words

    @property
    def base(self) -> int:
        """uint32 index of the first counter within the record (BITFIELD '#' offsets count from byte 0)."""
        return self.header_bytes // 4

    @cached_property  # every key of an item names it: hashed once per layout, not per key
    def fingerprint(self) -> str:
        shape = [RECORD_FORMAT, self.entity, self.header_bytes, self.totals,
                 [(r.window.name, r.bucket_seconds, r.buckets, r.kinds) for r in self.rings]]
        return hashlib.sha1(repr(shape).encode()).hexdigest()[:8]

    @property
    def tag_entity(self) -> str:
        """The entity letter of this record's hash tags: "i" (item) or "c" (creator)."""
        return {"item": "i", "creator": "c"}[self.entity]

    @cached_property
    def key_prefix(self) -> str:
        """What every record key of this layout starts with, and no other key."""
        return f"{PREFIX}:r{self.fingerprint}:"

    def key(self, entity_id: str) -> str:
        """The record key of an item id (or of a creator's `creator_id`)."""
        return f"{self.key_prefix}{{{bucket_tag(self.tag_entity, entity_id)}}}:{entity_id}"

    def key_affixes(self) -> tuple[tuple[bytes, ...], bytes]:
        """What the native MGET packer joins into `key(id)`: each bucket's UTF-8 bytes before the id, and the bytes
        after it."""
        return tuple(f"{self.key_prefix}{{{tag}}}:".encode() for tag in bucket_tags(self.tag_entity)), b""

    def total(self, kind: str) -> int:
        return self.totals.index(kind)


@lru_cache(maxsize=32)
def record_layout(entity: Entity, config: PitFeatureConfig) -> RecordLayout:
    """The record layout of `entity` ("item" or "creator"): its counters and windows, in spec order."""
    specs = [s for s in PIT_FEATURES if s.entity == entity and s.counter is not None]
    totals = tuple(dict.fromkeys(s.counter for s in specs if s.window is None))
    windows: dict[Window, list[str]] = {}
    for spec in specs:
        if spec.window is not None:
            windows.setdefault(spec.window, []).append(str(spec.counter))
    rings, first = [], len(totals)
    for window, kinds in windows.items():
        ring = Ring(window, window.buckets(config), tuple(dict.fromkeys(kinds)), first)
        rings.append(ring)
        first += ring.words
    header = CATALOG_BYTES if entity == "item" else 0
    return RecordLayout(entity, header, totals, tuple(rings))
