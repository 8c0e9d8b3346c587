"""The recommend API's state outside the feature store: small Redis adapters and an in-process TTL cache.

- `TtlCache`: item metadata and item batch features, kept in process `ttl_s` seconds (item data changes slowly;
  1,000 candidates then cost dictionary lookups instead of a round trip);
- `redis_item_metadata`: the catalog columns the event tracker stored per item (`layout.item_key(item, "meta")`), as the
  filters' `Items.*` fields and the blender's franchise / paid / animated-series flags;
- `ImpressionStore`: per user, the recent impression times of each item shown (for "not interested"), and per
  item, how often it was shown (the impressions side of the boosted items' CTR);
- `RedisFilterStore`: named Personalize filters (a `recsys.filters.FilterStore`);
- `EditorBoosts`: the titles editors flagged for boosting (a Redis set), re-read every `ttl_s`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from recsys.blender import Exposure
from recsys.features import layout
from recsys.filters import FilterRecord
from recsys.store import Batch, Script

Loader = Callable[[list[str]], Mapping[str, Mapping[str, Any]]]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class TtlCache:
    """key -> dict, each entry fetched through `loader` at most once per `ttl_s`; absent keys cache as {}."""

    def __init__(self, ttl_s: float, max_entries: int = 500_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, Mapping[str, Any]]] = {}
        self._lock = threading.Lock()

    def get_many(self, keys: Iterable[str], loader: Loader) -> dict[str, Mapping[str, Any]]:
        now = self._clock()
        found: dict[str, Mapping[str, Any]] = {}
        missing: list[str] = []
        entries = self._entries
        for key in keys:
            entry = entries.get(key)
            if entry is not None and entry[0] > now:
                found[key] = entry[1]
            else:
                missing.append(key)
        if missing:
            loaded = loader(missing)  # a store error propagates: the caller degrades, nothing stale is cached
            with self._lock:
                if len(entries) + len(missing) > self.max_entries:
                    entries.clear()
                expires = now + self.ttl_s
                for key in missing:
                    value = loaded.get(key) or {}
                    entries[key] = (expires, value)
                    found[key] = value
        return found


def redis_item_metadata(redis: Any) -> Loader:
    """A loader of the items' catalog columns (`ItemCatalog` keeps every column as text)."""

    def load(item_ids: list[str]) -> dict[str, dict[str, str]]:
        pipe = redis.pipeline(transaction=False)
        for item_id in item_ids:
            pipe.hgetall(layout.item_key(item_id, "meta"))
        return {item_id: {_text(k): _text(v) for k, v in raw.items()}
                for item_id, raw in zip(item_ids, pipe.execute()) if raw}

    return load


# KEYS[1]: the user's impressions hash. ARGV: time, how many times to keep per item, ttl_s, item ids...
_RECORD_IMPRESSIONS = """
local keep = tonumber(ARGV[2])
for i = 4, #ARGV do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  local times = {}
  if old then for t in string.gmatch(old, '[^,]+') do times[#times + 1] = t end end
  times[#times + 1] = ARGV[1]
  local first = math.max(1, #times - keep + 1)
  redis.call('HSET', KEYS[1], ARGV[i], table.concat(times, ',', first, #times))
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return #ARGV - 3
"""


RECORD_IMPRESSIONS = Script(_RECORD_IMPRESSIONS)


class ImpressionStore:
    def __init__(self, redis: Any, prefix: str, ttl_s: int, keep: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.keep = keep

    def user_key(self, user_id: str) -> str:
        return f"{self.prefix}:rec:{{u:{user_id}}}:impressions"

    @property
    def item_counts_key(self) -> str:
        return f"{self.prefix}:rec:item-impressions"

    def record(self, user_id: str, item_ids: Sequence[str], now: float) -> None:
        if not item_ids:
            return
        items = list(dict.fromkeys(item_ids))
        batch = Batch(self.redis)  # one round trip: the user's history and the items' counts
        batch.script(RECORD_IMPRESSIONS, [self.user_key(user_id)], [f"{now:.3f}", self.keep, self.ttl_s, *items])
        for item_id in items:
            batch.command("HINCRBY", self.item_counts_key, item_id, 1)
        batch.execute()

    def user_impressions(self, user_id: str) -> dict[str, tuple[float, ...]]:
        raw = self.redis.hgetall(self.user_key(user_id))
        return {_text(item): tuple(float(t) for t in _text(times).split(",")) for item, times in raw.items()}

    def item_counts(self, item_ids: Sequence[str]) -> dict[str, int]:
        if not item_ids:
            return {}
        values = self.redis.hmget(self.item_counts_key, list(item_ids))
        return {item: int(value) for item, value in zip(item_ids, values) if value is not None}


def exposures_of(impressions: Mapping[str, Sequence[float]], clicks: Mapping[str, Sequence[float]]
                 ) -> dict[str, Exposure]:
    """The blender's per-item exposure history: impression times and click times."""
    return {item: Exposure(impressions=tuple(times), clicks=tuple(clicks.get(item, ())))
            for item, times in impressions.items()}


class RedisFilterStore:
    """Named filters in one Redis hash (name -> record JSON)."""

    def __init__(self, redis: Any, key: str) -> None:
        self.redis = redis
        self.key = key

    def add(self, record: FilterRecord) -> bool:
        return bool(self.redis.hsetnx(self.key, record.name, json.dumps(record.to_dict())))

    def get(self, name: str) -> FilterRecord | None:
        raw = self.redis.hget(self.key, name)
        return None if raw is None else FilterRecord.from_dict(json.loads(raw))

    def all(self) -> list[FilterRecord]:
        return [FilterRecord.from_dict(json.loads(raw)) for raw in self.redis.hvals(self.key)]

    def remove(self, name: str) -> bool:
        return bool(self.redis.hdel(self.key, name))


class EditorBoosts:
    """The editor-flagged titles (a Redis set), re-read at most every `ttl_s` seconds."""

    def __init__(self, redis: Any, key: str, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self.key = key
        self.ttl_s = ttl_s
        self._clock = clock
        self._flags: frozenset[str] = frozenset()
        self._next_read = float("-inf")

    def get(self) -> frozenset[str]:
        now = self._clock()
        if now >= self._next_read:
            self._next_read = now + self.ttl_s
            self._flags = frozenset(_text(member) for member in self.redis.smembers(self.key))
        return self._flags
