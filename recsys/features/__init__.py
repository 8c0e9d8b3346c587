"""Real-time point-in-time (PIT) features in Redis / MemoryDB: see README.md in this folder.

    from recsys.features import FeatureReader, FeatureWriter, ItemCatalog
    from recsys.store import redis_from_env

    store = redis_from_env()
    ItemCatalog(store).upsert_items([{"ITEM_ID": "i1", "GENRES": "comedy|drama", "CREATOR": "c1"}])
    FeatureWriter(store, config.pit_features).apply(events)        # -> [WriteOutcome(event_id, status), ...]
    snapshot = FeatureReader(store, config.pit_features).read("u1", ["i1", "i2"])
    snapshot.user["user_events"], snapshot.items["i1"]["item_plays_24h"]

The reader needs numpy; it is imported on first use, so the writer Lambda (a pure-Python bundle) never loads it.
"""

from typing import Any

from recsys.features.catalog import ItemCatalog, ItemMeta, UserProfile
from recsys.features.spec import PIT_FEATURES, FeatureSpec, Window, counter_increments, features_of
from recsys.features.writer import FeatureWriter, WriteOutcome, validate_event

_READER_NAMES = ("ITEM_COLUMNS", "FeatureReader", "FeatureSnapshot", "ItemFeatures")


def __getattr__(name: str) -> Any:
    if name in _READER_NAMES:
        from recsys.features import reader

        return getattr(reader, name)
    raise AttributeError(f"module 'recsys.features' has no attribute {name!r}")


__all__ = [
    "ITEM_COLUMNS",
    "PIT_FEATURES",
    "FeatureReader",
    "FeatureSnapshot",
    "FeatureSpec",
    "FeatureWriter",
    "ItemCatalog",
    "ItemFeatures",
    "ItemMeta",
    "UserProfile",
    "Window",
    "WriteOutcome",
    "counter_increments",
    "features_of",
    "validate_event",
]
