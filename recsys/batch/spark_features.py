"""The batch features in Spark: one function per feature table, each point-in-time correct by construction.

Every function takes the cutoff and filters its own inputs to events strictly before it, so a caller
that passes more history (or future events) cannot leak them into the features. The output columns
and types are exactly those of recsys.batch.spec, plus `event_time` (the cutoff, unix seconds).
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys.batch.lake import item_categories, pipe_tokens
from recsys.batch.spec import (
    ACTIVITY_KINDS,
    ACTIVITY_WINDOWS_DAYS,
    CATEGORY_COLUMNS,
    ENTITY_KEYS,
    EVENT_TIME,
    JACCARD_COLUMNS,
    Entity,
    features_of,
)
from recsys.batch.window import DAY_S, TimeRange
from recsys.config import BatchFeatureConfig
from recsys.events import IMPRESSION, PLAY_EVENT_TYPES

SPARK_TYPES = {"integral": T.LongType(), "fractional": T.DoubleType(), "string": T.StringType()}


def _no_strings() -> Column:
    return F.array().cast(T.ArrayType(T.StringType()))


def prepare_events(events: DataFrame, time_range: TimeRange) -> DataFrame:
    """Events of [start, end) with derived columns.

    kind: the event type, with listen/watch as "play"; play_seconds: duration of play events (else 0);
    is_interaction: a user action on an item (anything but an impression); shown_items: the items the
    event reports as shown (its impression list, plus the item of an impression event).
    """
    kind = F.when(F.col("event_type").isin(*PLAY_EVENT_TYPES), F.lit("play")).otherwise(F.col("event_type"))
    play = F.when(
        F.col("event_type").isin(*PLAY_EVENT_TYPES), F.greatest(F.coalesce("event_value", F.lit(0.0)), F.lit(0.0))
    )
    own_impression = F.when(
        (F.col("event_type") == IMPRESSION) & F.col("item_id").isNotNull(), F.array(F.col("item_id"))
    ).otherwise(_no_strings())
    return (
        events.where((F.col("timestamp") >= time_range.start) & (F.col("timestamp") < time_range.end))
        .withColumn("kind", kind)
        .withColumn("play_seconds", F.coalesce(play, F.lit(0.0)))
        .withColumn("is_interaction", F.col("item_id").isNotNull() & (F.col("event_type") != IMPRESSION))
        .withColumn("shown_items", F.array_distinct(F.concat(F.coalesce("impression", _no_strings()), own_impression)))
    )


def _parse_flag(column: str) -> Column:
    value = F.lower(F.trim(F.col(column)))
    return (
        F.when(value.isin("1", "true", "yes", "y", "t"), F.lit(1))
        .when(value.isin("0", "false", "no", "n", "f"), F.lit(0))
        .cast("long")
    )


def _blank_to_null(column: str) -> Column:
    value = F.trim(F.col(column))
    return F.when(value != "", value)


def _joined(tokens: Column) -> Column:
    return F.when(F.size(tokens) > 0, F.concat_ws("|", tokens))


def _namespaced_tokens(column: str) -> Column:
    """Tokens of a metadata column prefixed by their namespace (all category columns share one)."""
    prefix = F.lit(("category" if column in CATEGORY_COLUMNS else column.lower()) + ":")
    return F.transform(pipe_tokens(column), lambda token: F.concat(prefix, token))


def prepare_items(items: DataFrame, cutoff: float) -> DataFrame:
    """Catalogue items that existed before the cutoff (unknown creation time counts as existing)."""
    namespaced = [_namespaced_tokens(c) for c in JACCARD_COLUMNS]
    return items.where(F.col("CREATION_TIMESTAMP").isNull() | (F.col("CREATION_TIMESTAMP") < cutoff)).select(
        F.col("ITEM_ID").alias("item_id"),
        item_categories().alias("categories"),
        _blank_to_null("CREATOR").alias("creator"),
        _blank_to_null("FRANCHISE").alias("franchise"),
        F.col("PRICE").alias("price"),
        _parse_flag("IS_PAID").alias("is_paid"),
        F.col("CREATION_TIMESTAMP").alias("created_at"),
        F.array_distinct(F.flatten(F.array(*namespaced))).alias("tokens"),
    )


def finalize(frame: DataFrame, entity: Entity, cutoff: float) -> DataFrame:
    """The entity's columns in spec order and types, plus event_time."""
    keys = [f"CAST(`{k}` AS STRING) AS `{k}`" for k in ENTITY_KEYS[entity]]
    features = [f"CAST(`{f.name}` AS {SPARK_TYPES[f.dtype].simpleString()}) AS `{f.name}`" for f in features_of(entity)]
    return frame.selectExpr(*keys, *features, f"CAST({float(cutoff)!r} AS DOUBLE) AS {EVENT_TIME}")


def _count_if(condition: Column) -> Column:
    return F.sum(F.when(condition, 1).otherwise(0))


def _combine(key: str, parts: list[DataFrame]) -> DataFrame:
    """Outer join of per-key frames whose other columns are disjoint, as one union and one aggregation.

    Cheaper than a chain of joins (one shuffle instead of one per join); a key absent from a part gets
    nulls for that part's columns. Built from SQL expressions: one JVM call per part, not per column.
    """
    types: dict[str, str] = {}
    for part in parts:
        types.update({f.name: f.dataType.simpleString() for f in part.schema.fields if f.name != key})
    aligned = [
        part.selectExpr(
            key, *(f"`{c}`" if c in part.columns else f"CAST(NULL AS {t}) AS `{c}`" for c, t in types.items())
        )
        for part in parts
    ]
    union = aligned[0]
    for part in aligned[1:]:
        union = union.unionByName(part)
    return union.groupBy(key).agg(*(F.expr(f"max(`{c}`) AS `{c}`") for c in types))


def _user_activity(window: DataFrame, cutoff: float) -> DataFrame:
    counts = [
        F.expr(f"count_if(kind = '{kind}' AND `timestamp` >= {cutoff - days * DAY_S!r}) AS user_{kind}_count_{days}d")
        for kind in ACTIVITY_KINDS
        for days in ACTIVITY_WINDOWS_DAYS
    ]
    last = F.max(F.when(F.col("is_interaction"), F.col("timestamp")))
    return window.groupBy("user_id").agg(
        *counts,
        ((F.lit(cutoff) - last) / DAY_S).alias("user_days_since_last_event"),
        F.sum("play_seconds").alias("user_play_seconds"),
    )


def _user_sessions(window: DataFrame, config: BatchFeatureConfig) -> DataFrame:
    """Sessions by session_id where given, else split by session_gap_minutes of inactivity; then per user."""
    by_time = (
        Window.partitionBy("user_id", "unsessioned")
        .orderBy("timestamp")
        .rowsBetween(Window.unboundedPreceding, Window.currentRow)
    )
    gap = F.col("timestamp") - F.lag("timestamp").over(
        Window.partitionBy("user_id", "unsessioned").orderBy("timestamp")
    )
    starts = F.when(gap.isNull() | (gap > config.session_gap_minutes * 60), 1).otherwise(0)
    sessions = (
        window.where(F.col("event_type") != IMPRESSION)
        .select("user_id", "session_id", "timestamp", "play_seconds", F.col("session_id").isNull().alias("unsessioned"))
        .withColumn("starts", starts)
        .withColumn("session_key", F.coalesce("session_id", F.sum("starts").over(by_time).cast("string")))
        .groupBy("user_id", "unsessioned", "session_key")
        .agg(
            (F.max(F.col("timestamp") + F.col("play_seconds")) - F.min("timestamp")).alias("length"),
            F.sum("play_seconds").alias("play"),
        )
    )
    qualified = F.when(F.col("play") > config.qualified_play_seconds, 1.0).otherwise(0.0)
    return sessions.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("user_session_count"),
        F.avg("length").alias("user_avg_session_seconds"),
        F.avg(qualified).alias("user_qualified_session_share"),
    )


def _top(pairs: DataFrame, value: Column, name: str) -> DataFrame:
    """Per user: the value on most interactions (ties: the smallest) and on how many, from weighted pairs."""
    counted = pairs.select("user_id", value.alias("value"), "n").groupBy("user_id", "value").agg(F.sum("n").alias("n"))
    # min over (-count, value): the most frequent value, ties to the smallest.
    best = F.min(F.struct((-F.col("n")).alias("neg"), F.col("value").alias("value")))
    return (
        counted.where(F.col("value").isNotNull())
        .groupBy("user_id")
        .agg(best.alias("best"))
        .select("user_id", F.col("best.value").alias(name), (-F.col("best.neg")).alias(f"{name}_n"))
    )


def _user_affinities(window: DataFrame, catalogue: DataFrame) -> DataFrame:
    """Distinct items, top category/creator with shares, and price sensitivity.

    Interactions are first reduced to (user, item) pairs weighted by their count, so the category
    explode and the joins with the catalogue work on pairs, not on every event.
    """
    paid = F.col("kind").isin("click", "purchase")
    pairs = (
        window.where("is_interaction")
        .groupBy("user_id", "item_id")
        .agg(F.count(F.lit(1)).alias("n"), _count_if(paid).alias("paid_n"))
        .join(catalogue.select("item_id", "categories", "creator", "price"), "item_id", "left")
    )
    has_categories = F.size(F.coalesce("categories", _no_strings())) > 0
    priced = F.col("price").isNotNull() & (F.col("paid_n") > 0)
    totals = pairs.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("user_distinct_items"),
        F.sum(F.when(has_categories, F.col("n"))).alias("categorised"),
        F.sum(F.when(F.col("creator").isNotNull(), F.col("n"))).alias("with_creator"),
        (F.sum(F.when(priced, F.col("price") * F.col("paid_n"))) / F.sum(F.when(priced, F.col("paid_n")))).alias(
            "paid_price"
        ),
    )
    categories = _top(pairs.withColumn("category", F.explode("categories")), F.col("category"), "top_category")
    creators = _top(pairs, F.col("creator"), "top_creator")
    catalogue_price = catalogue.agg(F.avg("price").alias("catalogue_price"))
    combined = _combine("user_id", [totals, categories, creators]).crossJoin(F.broadcast(catalogue_price))
    return combined.select(
        "user_id",
        "user_distinct_items",
        F.col("top_category").alias("user_top_category"),
        (F.col("top_category_n") / F.col("categorised")).alias("user_top_category_share"),
        F.col("top_creator").alias("user_top_creator"),
        (F.col("top_creator_n") / F.col("with_creator")).alias("user_top_creator_share"),
        F.when(F.col("catalogue_price") > 0, F.col("paid_price") / F.col("catalogue_price")).alias(
            "user_price_sensitivity"
        ),
    )


def compute_user_features(
    events: DataFrame, users: DataFrame, items: DataFrame, cutoff: float, config: BatchFeatureConfig
) -> DataFrame:
    """User features at `cutoff` (columns_of("user") + event_time): profile users and users active in the window."""
    window = prepare_events(events, TimeRange.before(cutoff, config.window_days))
    profile = users.select(
        F.col("USER_ID").alias("user_id"),
        _blank_to_null("GEO").alias("user_geo"),
        _blank_to_null("ACQUISITION_CHANNEL").alias("user_acquisition_channel"),
        _blank_to_null("MEMBERSHIP").alias("user_membership"),
        F.col("AGE").alias("user_age"),
        _joined(F.array_sort(pipe_tokens("TOPICS"))).alias("user_profile_topics"),
    )
    combined = _combine(
        "user_id",
        [
            _user_activity(window, cutoff),
            _user_sessions(window, config),
            _user_affinities(window, prepare_items(items, cutoff)),
            profile,
        ],
    )
    zero_filled = [f"user_{kind}_count_{days}d" for kind in ACTIVITY_KINDS for days in ACTIVITY_WINDOWS_DAYS]
    zero_filled += ["user_distinct_items", "user_session_count", "user_play_seconds"]
    return finalize(combined.fillna(0, subset=zero_filled), "user", cutoff)


def _item_activity(window: DataFrame, config: BatchFeatureConfig, cutoff: float) -> DataFrame:
    """Per item, through (item, user) pairs so that distinct users and likers need no distinct aggregate."""
    short_start, long_start = cutoff - config.trend_short_days * DAY_S, cutoff - config.trend_long_days * DAY_S
    is_play, is_rating = F.col("kind") == "play", F.col("kind") == "rating"
    kinds = ("view", "click", "like", "play", "purchase")
    pairs = (
        window.where("is_interaction")
        .groupBy("item_id", "user_id")
        .agg(
            *(_count_if(F.col("kind") == kind).alias(kind) for kind in kinds),
            _count_if(F.col("timestamp") >= short_start).alias("short"),
            _count_if(F.col("timestamp") >= long_start).alias("long"),
            F.sum(F.when(is_play, F.col("play_seconds"))).alias("play_sum"),
            F.sum(F.when(is_rating, F.col("event_value"))).alias("rating_sum"),
            _count_if(is_rating & F.col("event_value").isNotNull()).alias("ratings"),
        )
    )
    return pairs.groupBy("item_id").agg(
        *(F.sum(kind).alias(f"item_{kind}_count") for kind in kinds),
        F.count(F.lit(1)).alias("item_distinct_users"),
        _count_if(F.col("like") > 0).alias("likers"),
        F.sum("short").alias("short_count"),
        F.sum("long").alias("long_count"),
        (F.sum("play_sum") / F.sum("play")).alias("item_avg_play_seconds"),
        (F.sum("rating_sum") / F.sum("ratings")).alias("item_avg_rating"),
    )


def compute_item_features(events: DataFrame, items: DataFrame, cutoff: float, config: BatchFeatureConfig) -> DataFrame:
    """Item features at `cutoff` (columns_of("item") + event_time): catalogue items and items seen in the window."""
    window = prepare_events(events, TimeRange.before(cutoff, config.window_days))
    catalogue = prepare_items(items, cutoff)
    shown = (
        window.select(F.explode("shown_items").alias("item_id"))
        .groupBy("item_id")
        .agg(F.count(F.lit(1)).alias("item_impression_count"))
    )
    long_start = cutoff - config.trend_long_days * DAY_S
    creators = catalogue.select("item_id", "creator").where(F.col("creator").isNotNull())
    by_creator = (
        window.where(F.col("is_interaction") & (F.col("timestamp") >= long_start))
        .select("item_id")
        .join(creators, "item_id")
        .groupBy("creator")
        .agg(F.count(F.lit(1)).alias("creator_interactions"))
    )
    creator_popularity = creators.join(by_creator, "creator", "left").select(
        "item_id", F.coalesce("creator_interactions", F.lit(0)).alias("item_creator_popularity")
    )
    metadata = catalogue.select(
        "item_id",
        F.col("creator").alias("item_creator"),
        _joined(F.coalesce("categories", _no_strings())).alias("item_categories"),
        F.col("franchise").alias("item_franchise"),
        F.col("price").alias("item_price"),
        F.col("is_paid").alias("item_is_paid"),
        ((F.lit(cutoff) - F.col("created_at")) / DAY_S).alias("item_age_days"),
    )
    combined = _combine("item_id", [_item_activity(window, config, cutoff), shown, creator_popularity, metadata])
    zero_filled = [
        "item_view_count",
        "item_click_count",
        "item_like_count",
        "item_play_count",
        "item_purchase_count",
        "item_impression_count",
        "item_distinct_users",
        "likers",
        "short_count",
        "long_count",
    ]
    short_rate, long_rate = F.col("short_count") / config.trend_short_days, F.col("long_count") / config.trend_long_days
    features = combined.fillna(0, subset=zero_filled).select(
        "*",
        F.when(F.col("item_distinct_users") > 0, F.col("likers") / F.col("item_distinct_users")).alias(
            "item_like_rate"
        ),
        F.when(F.col("long_count") > 0, short_rate / long_rate).otherwise(0.0).alias("item_trend_velocity"),
        F.when(F.col("item_view_count") > 0, F.col("item_purchase_count") / F.col("item_view_count")).alias(
            "item_purchase_propensity"
        ),
    )
    return finalize(features, "item", cutoff)


def compute_item_pairs(items: DataFrame, cutoff: float, config: BatchFeatureConfig) -> DataFrame:
    """Item-to-item Jaccard over metadata token sets, without a cross join.

    Items are exploded to (item, token) and self-joined on the token, so only pairs sharing a token
    are ever formed, and the join's aggregation counts the tokens they share. Tokens carried by more
    than pair_token_max_items items ("common") propose no pairs on their own; the common tokens a
    proposed pair shares are added from the two items' (short) lists of common tokens, so the Jaccard
    is exact. Both directions are emitted, the similar_items_per_item best per item.
    """
    tokens = prepare_items(items, cutoff).select("item_id", "tokens").where(F.size("tokens") > 0)
    exploded = tokens.select("item_id", F.explode("tokens").alias("token"))
    carriers = exploded.groupBy("token").agg(F.count(F.lit(1)).alias("carriers"))
    usable = carriers.where(F.col("carriers").between(2, config.pair_token_max_items)).select("token")
    common = carriers.where(F.col("carriers") > config.pair_token_max_items).select("token")
    proposing = exploded.join(usable, "token")
    left, right = proposing.alias("a"), proposing.alias("b")
    candidates = (
        left.join(right, (F.col("a.token") == F.col("b.token")) & (F.col("a.item_id") < F.col("b.item_id")))
        .groupBy(F.col("a.item_id").alias("item_id"), F.col("b.item_id").alias("other_item_id"))
        .agg(F.count(F.lit(1)).alias("shared_usable"))
    )
    common_of = exploded.join(common, "token").groupBy("item_id").agg(F.collect_set("token").alias("common"))
    sizes = tokens.join(common_of, "item_id", "left").select(
        "item_id", F.size("tokens").alias("size"), F.coalesce("common", _no_strings()).alias("common")
    )
    sizes_a = sizes.select("item_id", F.col("size").alias("size_a"), F.col("common").alias("common_a"))
    sizes_b = sizes.select(
        F.col("item_id").alias("other_item_id"), F.col("size").alias("size_b"), F.col("common").alias("common_b")
    )
    shared = F.col("shared_usable") + F.size(F.array_intersect("common_a", "common_b"))
    scored = (
        candidates.join(sizes_a, "item_id")
        .join(sizes_b, "other_item_id")
        .select(
            "item_id",
            "other_item_id",
            shared.alias("item_pair_shared_tokens"),
            (shared / (F.col("size_a") + F.col("size_b") - shared)).alias("item_pair_jaccard"),
        )
    )
    both_ways = scored.unionByName(
        scored.select(
            F.col("other_item_id").alias("item_id"),
            F.col("item_id").alias("other_item_id"),
            "item_pair_shared_tokens",
            "item_pair_jaccard",
        )
    )
    best = Window.partitionBy("item_id").orderBy(F.col("item_pair_jaccard").desc(), F.col("other_item_id").asc())
    top = both_ways.withColumn("rank", F.row_number().over(best)).where(F.col("rank") <= config.similar_items_per_item)
    return finalize(top, "item_pair", cutoff)


def add_user_item_features(frame: DataFrame) -> DataFrame:
    """The derived user×item features (spec entity "user_item") from joined user and item columns.

    Mirrors recsys.batch.derived.user_item_features, which serving uses on single rows.
    """
    item_categories_ = F.split(F.coalesce("item_categories", F.lit("")), r"\|")
    profile_topics = F.split(F.lower(F.coalesce("user_profile_topics", F.lit(""))), r"\|")
    lowered_categories = F.transform(item_categories_, lambda c: F.lower(c))

    def flag(condition: Column) -> Column:
        return F.when(condition, F.lit(1)).otherwise(F.lit(0)).cast("long")

    return frame.select(
        "*",
        flag(
            F.col("user_top_category").isNotNull() & F.array_contains(item_categories_, F.col("user_top_category"))
        ).alias("pair_category_match"),
        flag(F.col("user_top_creator").isNotNull() & (F.col("item_creator") == F.col("user_top_creator"))).alias(
            "pair_creator_match"
        ),
        flag(
            F.col("user_profile_topics").isNotNull()
            & F.col("item_categories").isNotNull()
            & F.arrays_overlap(lowered_categories, profile_topics)
        ).alias("pair_profile_topic_match"),
    )
