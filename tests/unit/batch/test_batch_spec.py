"""The batch feature spec, its generated document, the batch config and the cutoff/window arithmetic."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recsys.batch import docs
from recsys.batch.spec import BY_NAME, ENTITIES, FEATURES, columns_of, features_of
from recsys.batch.window import TimeRange, cutoff_label, parse_cutoff, utc_date
from recsys.config import BatchFeatureConfig, PitFeatureConfig, load_stage


def test_at_least_21_named_typed_documented_features():
    assert len([f for f in FEATURES if f.entity in ("user", "item", "item_pair")]) >= 21
    assert len(BY_NAME) == len(FEATURES)
    for spec in FEATURES:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", spec.name), spec.name
        assert spec.entity in ENTITIES and spec.dtype in ("integral", "fractional", "string")
        assert spec.description and spec.window
        prefix = {"user": "user_", "item": "item_", "item_pair": "item_pair_", "user_item": "pair_"}[spec.entity]
        assert spec.name.startswith(prefix), spec.name


def test_the_issue_s_feature_families_are_all_there():
    required = [
        "user_click_count_7d",
        "user_play_count_30d",
        "user_purchase_count_60d",
        "user_distinct_items",
        "user_days_since_last_event",
        "user_avg_session_seconds",
        "user_qualified_session_share",
        "user_top_category",
        "user_top_category_share",
        "user_top_creator",
        "user_price_sensitivity",
        "user_geo",
        "user_acquisition_channel",
        "item_view_count",
        "item_like_rate",
        "item_trend_velocity",
        "item_purchase_propensity",
        "item_avg_play_seconds",
        "item_age_days",
        "item_creator_popularity",
        "item_pair_jaccard",
    ]
    assert [name for name in required if name not in BY_NAME] == []


def test_columns_start_with_the_keys():
    assert columns_of("item_pair")[:2] == ["item_id", "other_item_id"]
    assert columns_of("user")[1:] == [f.name for f in features_of("user")]
    with pytest.raises(ValueError, match="entity: unknown 'shelf'"):
        features_of("shelf")  # type: ignore[arg-type]


def test_features_document_is_generated_from_the_current_spec(repo_root):
    text = (repo_root / "docs" / "batch_features.md").read_text()
    assert docs.generated_block(text) == docs.render(), "run: .venv/bin/python -m recsys.batch.docs"
    assert all(f"`{f.name}`" in text for f in FEATURES)


def test_batch_config_defaults_and_stage_sizes():
    dev, prod = load_stage("dev").batch_features, load_stage("prod").batch_features
    assert (dev.window_days, dev.trend_short_days, dev.trend_long_days, dev.label_horizon_days) == (60, 7, 30, 7)
    assert prod.processing.instance_count > dev.processing.instance_count
    # The qualified-session threshold follows the real-time features' unless set.
    assert dev.resolved(PitFeatureConfig(qualified_session_minutes=7.0)).qualified_play_seconds == 420.0
    assert (
        BatchFeatureConfig(window_days=180, qualified_session_minutes=3)
        .resolved(PitFeatureConfig())
        .qualified_play_seconds
        == 180
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"window_days": 30}, "window_days: 30 is shorter than the 60-day activity window"),
        ({"trend_short_days": 30, "trend_long_days": 7}, "trend_short_days/trend_long_days"),
        ({"label_horizon_days": 0}, "label_horizon_days: must be positive"),
        ({"negative_pool_size": 0}, "negatives_per_positive/negative_pool_size"),
    ],
)
def test_bad_batch_config_names_the_field(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        BatchFeatureConfig(**changes)


def test_unresolved_threshold_is_a_clear_error():
    with pytest.raises(ValueError, match="qualified_session_minutes: unresolved"):
        _ = BatchFeatureConfig().qualified_play_seconds


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01", 1_709_251_200.0),
        ("2024-03-01T00:00:00Z", 1_709_251_200.0),
        ("2024-03-01T01:00:00+01:00", 1_709_251_200.0),
        ("2024-03-01T06:30", 1_709_251_200.0 + 6.5 * 3600),
        ("1709251200", 1_709_251_200.0),
        (" 1709251200.5 ", 1_709_251_200.5),
    ],
)
def test_cutoffs_parse_as_utc(text, expected):
    assert parse_cutoff(text) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01"])
def test_bad_cutoffs_are_named(text):
    with pytest.raises(ValueError, match="cutoff: "):
        parse_cutoff(text)


@given(st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31)))
def test_cutoff_label_and_date_agree_with_the_instant(moment):
    stamp = moment.replace(tzinfo=dt.timezone.utc, microsecond=0).timestamp()
    assert parse_cutoff(cutoff_label(stamp)) == stamp  # ISO-8601 basic form parses back
    assert utc_date(stamp) == moment.strftime("%Y-%m-%d") and ":" not in cutoff_label(stamp)


@given(start=st.integers(946_684_800, 4_000_000_000), length=st.integers(1, 400 * 86_400))
def test_partition_dates_cover_exactly_the_range(start, length):
    time_range = TimeRange(float(start), float(start + length))
    first, last = time_range.partition_dates()
    assert first == utc_date(time_range.start)
    # The last partition is the date of the last whole second before the end.
    assert last == utc_date(time_range.end - 1)
    assert first <= last


def test_empty_time_range_is_refused():
    with pytest.raises(ValueError, match="time range: start"):
        TimeRange(10.0, 10.0)
