"""The one declaration of the real-time point-in-time (PIT) features.

`PIT_FEATURES` lists every feature the `FeatureReader` returns, with its entity, type, default and window. The
writer derives the binary layout of its counters from it (recsys.features.layout), the reader returns exactly
these names, training-time assembly reads the same definitions, and docs/features.md is generated from it
(recsys.features.docs; a test keeps it up to date).

Entities: `user` features describe the user; `item` features the candidate item; `creator` features the item's
creator (returned with each item); `user_item` features are the user's affinity to the item's metadata
(returned with each item).

Counters: each counted feature names a counter kind; `counter_increments` says which events increment it.
Windows count by event time, in buckets of `Window.bucket_seconds`: a read at `now` counts the `buckets` newest
buckets up to the one holding `now`, and only events at or before `now` (whole seconds). Buckets are as coarse as
the windows allow (a window covers between N - 1 and N buckets): the reader fetches every item's buckets for
each candidate, so their number sets the record size, and with it the read latency.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from recsys.config import PitFeatureConfig
from recsys.events import CLICK, IMPRESSION, KNOWN_EVENT_TYPES, LIKE, PLAY_EVENT_TYPES, PURCHASE, VIEW, Event

Entity = Literal["user", "item", "creator", "user_item"]
DType = Literal["float", "list"]

ENTITIES: tuple[Entity, ...] = ("user", "item", "creator", "user_item")
HOUR = 3600
DAY = 24 * HOUR


@dataclass(frozen=True)
class Window:
    """A sliding window over event time, counted in aligned buckets of `bucket_seconds`.

    `seconds` is the window length; None takes it from the config field `length_days_from` (in days).
    """

    name: str
    bucket_seconds: int
    seconds: int | None = None
    length_days_from: str | None = None

    def length_seconds(self, config: PitFeatureConfig) -> int:
        if self.seconds is not None:
            return self.seconds
        return int(getattr(config, str(self.length_days_from))) * DAY

    def buckets(self, config: PitFeatureConfig) -> int:
        """Buckets in the window: a read counts these many, the newest holding `now`."""
        return -(-self.length_seconds(config) // self.bucket_seconds)

    def describe(self) -> str:
        length = f"{self.seconds // HOUR} h" if self.seconds else f"`{self.length_days_from}` days"
        bucket = f"{self.bucket_seconds // 60} min" if self.bucket_seconds < HOUR else (
            f"{self.bucket_seconds // HOUR} h" if self.bucket_seconds < DAY else f"{self.bucket_seconds // DAY} d")
        return f"{length}, {bucket} buckets"


W_1H = Window("1h", bucket_seconds=10 * 60, seconds=HOUR)
W_24H = Window("24h", bucket_seconds=2 * HOUR, seconds=DAY)
W_7D = Window("7d", bucket_seconds=DAY, seconds=7 * DAY)
W_CREATOR_RECENT = Window("creator_recent", bucket_seconds=DAY, length_days_from="creator_recent_days")


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    entity: Entity
    dtype: DType
    default: float | None
    description: str
    window: Window | None = None
    # The counter kind a counted feature sums (see counter_increments); None for other features.
    counter: str | None = None


# Counter kinds and the events that increment them by one.
COUNTER_KINDS: dict[str, str] = {
    "events": "every event but impressions",
    "views": "`view` events",
    "plays": "`listen` and `watch` events",
    "likes": "`like` events",
    "purchases": "`purchase` events",
    "clicks": "`click` events",
    "qualified_sessions": "`listen`/`watch` events whose EVENT_VALUE (seconds played) exceeds "
    "`qualified_session_minutes`",
    "recent_item_plays": "`listen`/`watch` events of an item created at most `creator_recent_days` before the play "
    "(items without CREATION_TIMESTAMP count as recent)",
}


def counter_increments(event: Event, config: PitFeatureConfig) -> frozenset[str]:
    """The item counter kinds one event increments (by one each)."""
    kind = event.event_type
    if kind == IMPRESSION:
        return frozenset()
    kinds = {"events"}
    if kind == VIEW:
        kinds.add("views")
    elif kind in PLAY_EVENT_TYPES:
        kinds.add("plays")
        if is_qualified_session(event, config):
            kinds.add("qualified_sessions")
    elif kind == LIKE:
        kinds.add("likes")
    elif kind == PURCHASE:
        kinds.add("purchases")
    elif kind == CLICK:
        kinds.add("clicks")
    return frozenset(kinds)


def creator_increments(event: Event, item_created: float | None, config: PitFeatureConfig) -> frozenset[str]:
    """The creator counter kinds a play of one of the creator's items increments (by one each)."""
    if event.event_type not in PLAY_EVENT_TYPES:
        return frozenset()
    recent = item_created is None or event.timestamp - item_created <= config.creator_recent_days * DAY
    return frozenset({"plays", "recent_item_plays"} if recent else {"plays"})


def is_qualified_session(event: Event, config: PitFeatureConfig) -> bool:
    """A play longer than N minutes (KION: minutes watched, not a share of the title)."""
    return (
        event.event_type in PLAY_EVENT_TYPES
        and event.event_value is not None
        and event.event_value > config.qualified_session_minutes * 60
    )


def _item_counts() -> list[FeatureSpec]:
    totals = [
        FeatureSpec(f"item_{kind}", "item", "float", 0.0, f"all-time count of {COUNTER_KINDS[kind]}", counter=kind)
        for kind in ("events", "views", "plays", "likes", "purchases", "clicks", "qualified_sessions")
    ]
    windowed = [
        FeatureSpec(
            f"item_{kind}_{window.name}", "item", "float", 0.0,
            f"{COUNTER_KINDS[kind]} in the last {window.name} of event time", window=window, counter=kind,
        )
        for kind in ("events", "plays", "purchases")
        for window in (W_1H, W_24H, W_7D)
    ]
    return totals + windowed


def _user_counts() -> list[FeatureSpec]:
    return [FeatureSpec("user_events", "user", "float", 0.0, "all-time count of the user's events but impressions",
                        counter="events")] + [
        FeatureSpec(f"user_events_{kind}", "user", "float", 0.0, f"all-time count of the user's `{kind}` events",
                    counter=f"type:{kind}")
        for kind in KNOWN_EVENT_TYPES
    ]


PIT_FEATURES: tuple[FeatureSpec, ...] = (
    *_item_counts(),
    FeatureSpec("item_price", "item", "float", 0.0, "PRICE from the catalog"),
    FeatureSpec("item_is_paid", "item", "float", 0.0, "1 if IS_PAID in the catalog, else 0"),
    FeatureSpec("item_is_animated_series", "item", "float", 0.0, "1 if IS_ANIMATED_SERIES in the catalog, else 0"),
    FeatureSpec("item_age_days", "item", "float", -1.0,
                "days from CREATION_TIMESTAMP to `now`; -1 when unknown or after `now`"),
    FeatureSpec("creator_plays", "creator", "float", 0.0, "all-time plays of the item's creator's items",
                counter="plays"),
    FeatureSpec("creator_recent_plays", "creator", "float", 0.0,
                "plays of the creator's recent items (Amp's creator popularity): "
                f"{COUNTER_KINDS['recent_item_plays']}, in the last `creator_recent_days`",
                window=W_CREATOR_RECENT, counter="recent_item_plays"),
    FeatureSpec("affinity_topic", "user_item", "float", 0.0,
                "sum of the user's decayed affinity to each of the item's topics (categories, genres)"),
    FeatureSpec("affinity_creator", "user_item", "float", 0.0, "the user's decayed affinity to the item's creator"),
    FeatureSpec("affinity_franchise", "user_item", "float", 0.0,
                "the user's decayed affinity to the item's franchise"),
    FeatureSpec("profile_topic_match", "user_item", "float", 0.0,
                "how many of the item's topics are among the TOPICS of the user's profile (explicit interest)"),
    *_user_counts(),
    FeatureSpec("user_recent_items", "user", "list", None,
                "the last `recent_items` items by event time, newest first: "
                "{item_id, timestamp, event_type, seconds, progress} (for continue-watching and remove-watched)"),
    FeatureSpec("user_topic_affinity", "user", "list", None,
                "[topic, score] pairs, strongest first: decayed affinity at `now`"),
    FeatureSpec("user_creator_affinity", "user", "list", None, "[creator, score] pairs, strongest first"),
    FeatureSpec("user_franchise_affinity", "user", "list", None, "[franchise, score] pairs, strongest first"),
    FeatureSpec("user_age", "user", "float", -1.0, "AGE from the user's profile; -1 when unknown"),
    FeatureSpec("user_profile_topics", "user", "list", None, "TOPICS of the user's profile (lower case)"),
)


def features_of(entity: Entity) -> tuple[FeatureSpec, ...]:
    return tuple(spec for spec in PIT_FEATURES if spec.entity == entity)


def item_row_features() -> tuple[FeatureSpec, ...]:
    """The features returned per item, in the column order of `FeatureSnapshot.items`."""
    return tuple(spec for spec in PIT_FEATURES if spec.entity in ("item", "creator", "user_item"))
