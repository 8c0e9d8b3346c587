"""Item and user metadata for the PIT features (Personalize PutItems / PutUsers).

Records are dicts keyed by Personalize column names (UPPER_CASE). Every column is kept (as text, lists joined with
"|", in `layout.item_key(item, "meta")` / `pit:{u:<user>}:profile`), so nothing sent is lost; the columns the features use
are validated, and a bad value raises ValueError naming the record and the column. An upsert replaces the
entity's previous metadata. All records of a call are validated before anything is written.

Item columns used: topics from TOPICS and the category columns (CATEGORY, GENRES, ...; "|"-separated, compared
in lower case), CREATOR, FRANCHISE, IS_PAID, IS_ANIMATED_SERIES, CREATION_TIMESTAMP (unix seconds), PRICE.
User columns used: AGE, TOPICS.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from recsys.batch.spec import CATEGORY_COLUMNS
from recsys.config import PitFeatureConfig
from recsys.features import layout, scripts
from recsys.inputs import MAX_ID_CHARS, id_problem, text_problem
from recsys.store import Batch, Store

TOPIC_COLUMNS = ("TOPICS", *CATEGORY_COLUMNS)
MAX_COLUMN_CHARS = 64 * 1024  # one metadata value, e.g. a description
# Unix seconds beyond this are almost surely milliseconds (year 5138).
MIN_UNIX_SECONDS = -5_364_662_400  # 1800-01-01
MAX_UNIX_SECONDS = 1e11


@dataclass(frozen=True)
class ItemMeta:
    """The item metadata the features use, normalized."""

    item_id: str
    topics: tuple[str, ...] = ()
    creator: str | None = None
    franchise: str | None = None
    is_paid: bool = False
    is_animated_series: bool = False
    creation_timestamp: float | None = None
    price: float = 0.0

    @classmethod
    def parse(cls, record: Mapping[str, Any], where: str = "item") -> "ItemMeta":
        """From a record of Personalize columns, or from the stored metadata hash (same column names)."""
        item_id = _identifier(record.get("ITEM_ID"), f"{where}.ITEM_ID")
        topics: dict[str, None] = {}
        for column in TOPIC_COLUMNS:
            for topic in _values(record.get(column), f"{where}.{column}"):
                topics[topic.lower()] = None
        return cls(
            item_id=item_id,
            topics=tuple(topics),
            creator=_optional_text(record.get("CREATOR"), f"{where}.CREATOR"),
            franchise=_optional_text(record.get("FRANCHISE"), f"{where}.FRANCHISE"),
            is_paid=_boolean(record.get("IS_PAID"), f"{where}.IS_PAID"),
            is_animated_series=_boolean(record.get("IS_ANIMATED_SERIES"), f"{where}.IS_ANIMATED_SERIES"),
            creation_timestamp=_timestamp(record.get("CREATION_TIMESTAMP"), f"{where}.CREATION_TIMESTAMP"),
            price=_non_negative(record.get("PRICE"), f"{where}.PRICE"),
        )

    def catalog_section(self) -> bytes:
        """The first CATALOG_BYTES of the item record (see recsys.features.layout)."""
        topics = [layout.name_hash(t) for t in self.topics[: layout.MAX_TOPICS]]
        topics += [0] * (layout.MAX_TOPICS - len(topics))
        flags = layout.FLAG_KNOWN | (layout.FLAG_PAID * self.is_paid) | (layout.FLAG_ANIMATED * self.is_animated_series)
        return struct.pack(
            layout.CATALOG_FORMAT,
            layout.name_hash(self.creator) if self.creator else 0,
            layout.name_hash(self.franchise) if self.franchise else 0,
            *topics,
            self.price,
            math.nan if self.creation_timestamp is None else self.creation_timestamp,
            flags,
        )


@dataclass(frozen=True)
class UserProfile:
    user_id: str
    age: float | None = None
    topics: tuple[str, ...] = ()

    @classmethod
    def parse(cls, record: Mapping[str, Any], where: str = "user") -> "UserProfile":
        age = record.get("AGE")
        if age is not None and age != "":
            age = _number(age, f"{where}.AGE")
            if not 0 <= age <= 150:
                raise ValueError(f"{where}.AGE: must lie in [0, 150], got {age!r}")
        else:
            age = None
        topics = tuple(dict.fromkeys(t.lower() for t in _values(record.get("TOPICS"), f"{where}.TOPICS")))
        return cls(_identifier(record.get("USER_ID"), f"{where}.USER_ID"), age, topics)


class ItemCatalog:
    """Upserts item metadata and user profiles into the feature store."""

    def __init__(self, redis: Store, config: PitFeatureConfig | None = None) -> None:
        self.redis = redis
        self.record = layout.record_layout("item", config or PitFeatureConfig())

    def upsert_items(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Validate every record, then replace each item's metadata; returns how many were written."""
        parsed = [(ItemMeta.parse(_mapping(r, f"items[{i}]"), f"items[{i}]"), _columns(r, f"items[{i}]"))
                  for i, r in enumerate(records)]
        batch = Batch(self.redis)
        for meta, columns in parsed:
            keys = [layout.item_key(meta.item_id, "meta"), self.record.key(meta.item_id)]
            batch.script(scripts.CATALOG_ITEM, keys, [meta.catalog_section(), self.record.size, *columns])
        batch.execute()
        return len(parsed)

    def upsert_users(self, records: Sequence[Mapping[str, Any]]) -> int:
        """Validate every record, then replace each user's profile; returns how many were written."""
        parsed = [(UserProfile.parse(_mapping(r, f"users[{i}]"), f"users[{i}]"), _columns(r, f"users[{i}]"))
                  for i, r in enumerate(records)]
        batch = Batch(self.redis)
        for profile, columns in parsed:
            batch.script(scripts.REPLACE_HASH, [layout.user_key(profile.user_id, "profile")], columns)
        batch.execute()
        return len(parsed)


def _mapping(record: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(record, Mapping):
        raise ValueError(f"{where}: must be an object of Personalize columns, got {type(record).__name__}")
    return record


def _columns(record: Mapping[str, Any], where: str) -> list[str]:
    """Every non-empty column as (name, text) pairs, flattened; names and texts follow the input rules."""
    pairs: list[str] = []
    for name, value in record.items():
        if value is None or value == "":
            continue
        if isinstance(value, (list, tuple)):
            value = "|".join(str(v) for v in value)
        elif isinstance(value, bool):
            value = "true" if value else "false"
        text = str(value)
        problem = id_problem(name, MAX_ID_CHARS)
        if problem:
            raise ValueError(f"{where}.{str(name)[:64]}: the column name {problem}")
        problem = text_problem(text, MAX_COLUMN_CHARS, free_text=True)
        if problem:
            raise ValueError(f"{where}.{name}: {problem}")
        pairs += [name, text]
    return pairs


def _identifier(value: Any, where: str) -> str:
    if value is None:
        raise ValueError(f"{where}: is required")
    problem = id_problem(value, MAX_ID_CHARS)
    if problem:
        raise ValueError(f"{where}: {problem}")
    return value


def _values(value: Any, where: str) -> list[str]:
    """A "|"-separated string (Personalize's multi-value categorical) or a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        parts = value.split("|")
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        parts = list(value)
    else:
        raise ValueError(f"{where}: must be a '|'-separated string or a list of strings, got {value!r}")
    return [p.strip() for p in parts if p.strip()]


def _optional_text(value: Any, where: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise ValueError(f"{where}: must be a string, got {value!r}")
    return str(value)


def _boolean(value: Any, where: str) -> bool:
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ValueError(f"{where}: must be a boolean (true/false, 1/0), got {value!r}")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{where}: must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{where}: must be finite, got {value!r}")
    return number


def _non_negative(value: Any, where: str) -> float:
    if value is None or value == "":
        return 0.0
    number = _number(value, where)
    if number < 0:
        raise ValueError(f"{where}: must be >= 0, got {value!r}")
    return number


def _timestamp(value: Any, where: str) -> float | None:
    if value is None or value == "":
        return None
    number = _number(value, where)
    # Release dates may predate 1970 (MovieTweetings has films from 1894), so negative seconds are valid.
    if not MIN_UNIX_SECONDS <= number < MAX_UNIX_SECONDS:
        raise ValueError(f"{where}: must be unix seconds since 1970 (not milliseconds), after 1800, got {value!r}")
    return number
