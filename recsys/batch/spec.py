"""The one spec of the batch features: name, entity, type, window and meaning of every column.

The Spark job (recsys.batch.spark_features) produces exactly these columns, the Feature Store
definitions (recsys.batch.feature_store) and docs/batch_features.md are generated from it, and
tests check all three against it.

Windows: "7d"/"30d"/"60d" are fixed look-backs from the cutoff; "window" is the configured lake
window (BatchFeatureConfig.window_days: Amp 60, KION 180); "trend" is trend_short_days over
trend_long_days; "creator" is trend_long_days; "profile"/"catalogue" come from the newest user/item
import, "derived" is computed from a user row and an item row. Every window ends strictly before
the cutoff: no event at or after it is read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Entity = Literal["user", "item", "item_pair", "user_item"]
DType = Literal["integral", "fractional", "string"]

ENTITIES: tuple[Entity, ...] = ("user", "item", "item_pair", "user_item")
# Identifier columns of each feature table (not features themselves).
ENTITY_KEYS: dict[Entity, tuple[str, ...]] = {
    "user": ("user_id",),
    "item": ("item_id",),
    "item_pair": ("item_id", "other_item_id"),
    "user_item": ("user_id", "item_id"),
}
# Unix seconds of the cutoff: the Feature Store event time of every batch record.
EVENT_TIME = "event_time"
SNAPSHOT_DATE = "snapshot_date"

# Look-backs of the user activity counts; BatchFeatureConfig.window_days must cover the longest.
ACTIVITY_WINDOWS_DAYS = (7, 30, 60)
# Activity kinds counted per user: "play" is listen or watch (PLAY_EVENT_TYPES).
ACTIVITY_KINDS = ("view", "click", "like", "play", "purchase", "rating", "impression")

# Item metadata columns (Personalize CSV headers) whose pipe-separated values are categories.
CATEGORY_COLUMNS = ("GENRES", "GENRE", "CATEGORY", "CATEGORIES", "CATEGORY_L1", "CATEGORY_L2")
# Item metadata columns whose values form the token set of the item-to-item Jaccard (KION: keywords,
# actors, directors, country; plus categories, creator and franchise). Tokens are namespaced by column.
JACCARD_COLUMNS = CATEGORY_COLUMNS + ("KEYWORDS", "CREATOR", "FRANCHISE", "ACTORS", "DIRECTORS", "COUNTRY")


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    entity: Entity
    dtype: DType
    window: str
    description: str


def _activity_features() -> list[FeatureSpec]:
    return [
        FeatureSpec(
            f"user_{kind}_count_{days}d",
            "user",
            "integral",
            f"{days}d",
            f"{kind} events of the user in the {days} days before the cutoff"
            + (" (listen or watch)" if kind == "play" else ""),
        )
        for kind in ACTIVITY_KINDS
        for days in ACTIVITY_WINDOWS_DAYS
    ]


FEATURES: tuple[FeatureSpec, ...] = (
    *_activity_features(),
    FeatureSpec("user_distinct_items", "user", "integral", "window", "distinct items the user interacted with"),
    FeatureSpec(
        "user_days_since_last_event",
        "user",
        "fractional",
        "window",
        "days from the user's last interaction to the cutoff; empty if none in the window",
    ),
    FeatureSpec(
        "user_session_count",
        "user",
        "integral",
        "window",
        "sessions: by session_id, else split by session_gap_minutes of inactivity",
    ),
    FeatureSpec(
        "user_avg_session_seconds",
        "user",
        "fractional",
        "window",
        "mean session length: last event (plus its play time) minus first event",
    ),
    FeatureSpec(
        "user_qualified_session_share",
        "user",
        "fractional",
        "window",
        "share of sessions whose play time exceeds qualified_session_minutes (Amp: > 5 min listening)",
    ),
    FeatureSpec("user_play_seconds", "user", "fractional", "window", "total listen/watch time of the user"),
    FeatureSpec(
        "user_top_category",
        "user",
        "string",
        "window",
        "category (genre) on most of the user's interactions; ties go to the smallest id",
    ),
    FeatureSpec(
        "user_top_category_share",
        "user",
        "fractional",
        "window",
        "share of the user's interactions with categorised items that carry user_top_category",
    ),
    FeatureSpec("user_top_creator", "user", "string", "window", "creator of most of the user's interactions"),
    FeatureSpec(
        "user_top_creator_share",
        "user",
        "fractional",
        "window",
        "share of the user's interactions with items that have a creator that go to user_top_creator",
    ),
    FeatureSpec(
        "user_price_sensitivity",
        "user",
        "fractional",
        "window",
        "mean price of the items the user clicked or purchased over the mean catalogue price (< 1: cheaper)",
    ),
    FeatureSpec("user_geo", "user", "string", "profile", "GEO of the user profile"),
    FeatureSpec("user_acquisition_channel", "user", "string", "profile", "ACQUISITION_CHANNEL of the user profile"),
    FeatureSpec("user_membership", "user", "string", "profile", "MEMBERSHIP of the user profile"),
    FeatureSpec("user_age", "user", "integral", "profile", "AGE of the user profile"),
    FeatureSpec(
        "user_profile_topics",
        "user",
        "string",
        "profile",
        "explicit TOPICS of the user profile, sorted and pipe-joined (Amp's baseline ranks by these)",
    ),
    FeatureSpec("item_view_count", "item", "integral", "window", "view events on the item"),
    FeatureSpec("item_click_count", "item", "integral", "window", "click events on the item"),
    FeatureSpec("item_like_count", "item", "integral", "window", "like events on the item"),
    FeatureSpec("item_play_count", "item", "integral", "window", "listen/watch events on the item"),
    FeatureSpec("item_purchase_count", "item", "integral", "window", "purchase events on the item"),
    FeatureSpec("item_impression_count", "item", "integral", "window", "times the item was shown (impressions)"),
    FeatureSpec("item_distinct_users", "item", "integral", "window", "distinct users who interacted with the item"),
    FeatureSpec(
        "item_like_rate",
        "item",
        "fractional",
        "window",
        "distinct users who liked the item over distinct users who interacted with it",
    ),
    FeatureSpec(
        "item_trend_velocity",
        "item",
        "fractional",
        "trend",
        "daily interactions over the short trend window divided by those over the long one (1 = steady, > 1 rising)",
    ),
    FeatureSpec(
        "item_purchase_propensity",
        "item",
        "fractional",
        "window",
        "purchases over views of the item; empty without views",
    ),
    FeatureSpec("item_avg_play_seconds", "item", "fractional", "window", "mean listen/watch duration of the item"),
    FeatureSpec("item_avg_rating", "item", "fractional", "window", "mean rating (0-10) given to the item"),
    FeatureSpec(
        "item_age_days",
        "item",
        "fractional",
        "catalogue",
        "days from CREATION_TIMESTAMP (release) to the cutoff; items created after the cutoff are left out",
    ),
    FeatureSpec(
        "item_creator_popularity",
        "item",
        "integral",
        "creator",
        "interactions with all items of the item's creator in the long trend window (Amp: plays of recent shows)",
    ),
    FeatureSpec("item_creator", "item", "string", "catalogue", "CREATOR of the item"),
    FeatureSpec(
        "item_categories", "item", "string", "catalogue", "categories (genres) of the item, sorted, pipe-joined"
    ),
    FeatureSpec("item_franchise", "item", "string", "catalogue", "FRANCHISE of the item"),
    FeatureSpec("item_price", "item", "fractional", "catalogue", "PRICE of the item"),
    FeatureSpec("item_is_paid", "item", "integral", "catalogue", "IS_PAID of the item as 0/1"),
    FeatureSpec(
        "item_pair_jaccard",
        "item_pair",
        "fractional",
        "catalogue",
        "|A∩B| / |A∪B| of the two items' metadata token sets (KION); pairs sharing no token are absent",
    ),
    FeatureSpec("item_pair_shared_tokens", "item_pair", "integral", "catalogue", "|A∩B|: metadata tokens in common"),
    FeatureSpec(
        "pair_category_match",
        "user_item",
        "integral",
        "derived",
        "1 if the item carries the user's top category, else 0",
    ),
    FeatureSpec(
        "pair_creator_match",
        "user_item",
        "integral",
        "derived",
        "1 if the item's creator is the user's top creator",
    ),
    FeatureSpec(
        "pair_profile_topic_match",
        "user_item",
        "integral",
        "derived",
        "1 if one of the item's categories is among the user's profile topics (explicit affinity)",
    ),
)

BY_NAME: dict[str, FeatureSpec] = {f.name: f for f in FEATURES}
if len(BY_NAME) != len(FEATURES):
    raise RuntimeError("duplicate feature names in the batch feature spec")


def features_of(entity: Entity) -> tuple[FeatureSpec, ...]:
    if entity not in ENTITY_KEYS:
        raise ValueError(f"entity: unknown {entity!r}; expected one of {', '.join(ENTITIES)}")
    return tuple(f for f in FEATURES if f.entity == entity)


def columns_of(entity: Entity) -> list[str]:
    """Column order of the entity's feature table: keys, then features in spec order."""
    return [*ENTITY_KEYS[entity], *(f.name for f in features_of(entity))]
