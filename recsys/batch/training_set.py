"""Point-in-time-correct training sets in Spark.

For a cutoff T and horizon h (BatchFeatureConfig.label_horizon_days):
- features come from compute_user_features / compute_item_features at T: events before T only;
- labels come from events in [T, T + h) only:
  label_click: the user clicked the item; label_play: the user played it for more than
  qualified_session_minutes in total (KION: a watch longer than N minutes, not a percentage);
  label_purchase: the user bought it; label_engage: the user clicked, liked, played, bought or rated it;
- rows: every (user, item) with an interaction in [T, T + h) (row_source "interaction"), every item
  shown to the user in [T, T + h) without an interaction ("impression": a logged negative), and, for
  users with a positive but no logged impressions, sampled negatives ("sampled"): popular items
  (popularity known at T) the user did not touch in [T - window, T + h), picked by a seeded hash so
  that reruns give the same set.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from recsys.batch.spark_features import (
    add_user_item_features,
    compute_item_features,
    compute_user_features,
    prepare_events,
)
from recsys.batch.spec import EVENT_TIME, features_of
from recsys.batch.window import TimeRange
from recsys.config import BatchFeatureConfig

LABELS = ("label_click", "label_play", "label_purchase", "label_engage")
# Actions that count as engagement (label_engage): anything but a view or an impression. Ratings-only
# datasets (MovieTweetings, many Personalize imports) have no clicks or plays; this label serves them.
ENGAGING_KINDS = ("click", "like", "play", "purchase", "rating")
ROW_SOURCES = ("interaction", "impression", "sampled")


def training_columns() -> list[str]:
    """Column order of a training set."""
    user = [f.name for f in features_of("user")]
    item = [f.name for f in features_of("item")]
    pair = [f.name for f in features_of("user_item")]
    return ["user_id", "item_id", *LABELS, "row_source", *user, *item, *pair]


def compute_labels(events: DataFrame, cutoff: float, config: BatchFeatureConfig) -> DataFrame:
    """(user_id, item_id, <LABELS>, row_source) from [cutoff, cutoff + horizon)."""
    horizon = prepare_events(events, TimeRange.after(cutoff, config.label_horizon_days))
    interacted = (
        horizon.where("is_interaction")
        .groupBy("user_id", "item_id")
        .agg(
            F.max(F.when(F.col("kind") == "click", 1).otherwise(0)).alias("label_click"),
            F.when(F.sum("play_seconds") > config.qualified_play_seconds, 1).otherwise(0).alias("label_play"),
            F.max(F.when(F.col("kind") == "purchase", 1).otherwise(0)).alias("label_purchase"),
            F.max(F.when(F.col("kind").isin(*ENGAGING_KINDS), 1).otherwise(0)).alias("label_engage"),
        )
        .withColumn("row_source", F.lit("interaction"))
    )
    shown = (
        horizon.select("user_id", F.explode("shown_items").alias("item_id"))
        .distinct()
        .join(interacted.select("user_id", "item_id"), ["user_id", "item_id"], "left_anti")
        .select(
            "user_id", "item_id", *(F.lit(0).alias(label) for label in LABELS), F.lit("impression").alias("row_source")
        )
    )
    return interacted.unionByName(shown).select(
        "user_id", "item_id", *(F.col(label).cast("long").alias(label) for label in LABELS), "row_source"
    )


def sample_negatives(
    labels: DataFrame, events: DataFrame, item_features: DataFrame, cutoff: float, config: BatchFeatureConfig
) -> DataFrame:
    """Sampled negatives for users with a positive label and no logged impression in the horizon."""
    positive = sum(F.col(label) for label in LABELS) > 0
    per_user = labels.groupBy("user_id").agg(
        F.sum(F.when(positive, 1).otherwise(0)).alias("positives"),
        F.sum(F.when(F.col("row_source") == "impression", 1).otherwise(0)).alias("impressions"),
    )
    needy = per_user.where((F.col("positives") > 0) & (F.col("impressions") == 0)).select(
        "user_id", (F.col("positives") * config.negatives_per_positive).alias("wanted")
    )
    pool = (
        item_features.orderBy(F.col("item_distinct_users").desc(), F.col("item_id").asc())
        .limit(config.negative_pool_size)
        .select("item_id")
    )
    history = prepare_events(events, TimeRange.before(cutoff, config.window_days)).where("is_interaction")
    touched = history.select("user_id", "item_id").unionByName(labels.select("user_id", "item_id")).distinct()
    draw = Window.partitionBy("user_id").orderBy(F.col("draw"), F.col("item_id"))
    return (
        needy.crossJoin(F.broadcast(pool))
        .join(touched, ["user_id", "item_id"], "left_anti")
        .withColumn("draw", F.xxhash64(F.lit(config.sample_seed), "user_id", "item_id"))
        .withColumn("pick", F.row_number().over(draw))
        .where(F.col("pick") <= F.col("wanted"))
        .select(
            "user_id",
            "item_id",
            *(F.lit(0).cast("long").alias(label) for label in LABELS),
            F.lit("sampled").alias("row_source"),
        )
    )


def build_training_set(
    events: DataFrame,
    users: DataFrame,
    items: DataFrame,
    cutoff: float,
    config: BatchFeatureConfig,
    *,
    user_features: DataFrame | None = None,
    item_features: DataFrame | None = None,
) -> DataFrame:
    """The training set at `cutoff` (columns: training_columns()).

    Feature tables already computed for the same cutoff can be passed to save recomputing them.
    """
    for name, table in (("user_features", user_features), ("item_features", item_features)):
        if table is not None and table.select(EVENT_TIME).where(F.col(EVENT_TIME) != float(cutoff)).limit(1).count():
            raise ValueError(f"{name}: computed for another cutoff than {cutoff}")
    user_features = (
        user_features if user_features is not None else compute_user_features(events, users, items, cutoff, config)
    )
    item_features = item_features if item_features is not None else compute_item_features(events, items, cutoff, config)
    labels = compute_labels(events, cutoff, config)
    rows = labels.unionByName(sample_negatives(labels, events, item_features, cutoff, config))
    joined = rows.join(user_features.drop(EVENT_TIME), "user_id", "left").join(
        item_features.drop(EVENT_TIME), "item_id", "left"
    )
    return add_user_item_features(joined).select(*training_columns())
