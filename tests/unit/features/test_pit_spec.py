"""The PIT feature spec, the record layouts derived from it, and the generated doc."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from recsys.config import PitFeatureConfig
from recsys.events import Event
from recsys.features import ITEM_COLUMNS, PIT_FEATURES, counter_increments
from recsys.features.docs import DOC_PATH, render_markdown
from recsys.features.layout import CATALOG_BYTES, record_layout
from recsys.features.spec import COUNTER_KINDS, ENTITIES, W_1H, W_7D, W_24H, W_CREATOR_RECENT, is_qualified_session
from recsys.features.writer import counter_args

CONFIG = PitFeatureConfig()


def event(event_type: str, value: float | None = None) -> Event:
    return Event("e1", "u1", event_type, 1_700_000_000.0, item_id="i1", event_value=value)


def test_names_are_unique_and_every_feature_is_well_formed():
    names = [spec.name for spec in PIT_FEATURES]
    assert len(names) == len(set(names))
    for spec in PIT_FEATURES:
        assert spec.entity in ENTITIES
        assert spec.dtype in ("float", "list")
        assert (spec.default is None) == (spec.dtype == "list"), spec.name
        assert spec.counter is None or spec.counter in COUNTER_KINDS or spec.counter.startswith("type:")
        assert spec.window is None or spec.counter is not None, f"{spec.name}: a window needs a counter"


def test_item_rows_hold_item_creator_and_user_item_features_in_spec_order():
    expected = [s.name for s in PIT_FEATURES if s.entity in ("item", "creator", "user_item")]
    assert list(ITEM_COLUMNS) == expected
    assert {"item_likes", "item_plays", "item_purchases", "item_clicks", "item_qualified_sessions",
            "item_events_1h", "item_events_24h", "item_events_7d", "creator_recent_plays",
            "affinity_topic", "affinity_creator", "affinity_franchise"} <= set(ITEM_COLUMNS)


@pytest.mark.parametrize(
    ("window", "buckets", "bucket_seconds"),
    [(W_1H, 6, 600), (W_24H, 12, 7200), (W_7D, 7, 86400), (W_CREATOR_RECENT, 30, 86400)],
)
def test_windows_are_counted_in_aligned_buckets(window, buckets, bucket_seconds):
    assert window.buckets(CONFIG) == buckets
    assert window.bucket_seconds == bucket_seconds


def test_the_creator_window_follows_the_config():
    assert W_CREATOR_RECENT.buckets(replace(CONFIG, creator_recent_days=10)) == 10


@pytest.mark.parametrize(
    ("event_type", "value", "kinds"),
    [
        ("view", None, {"events", "views"}),
        ("listen", 300.0, {"events", "plays"}),  # exactly 5 minutes is not "longer than 5 minutes"
        ("listen", 300.5, {"events", "plays", "qualified_sessions"}),
        ("watch", 3600.0, {"events", "plays", "qualified_sessions"}),
        ("watch", None, {"events", "plays"}),
        ("like", None, {"events", "likes"}),
        ("purchase", 19.99, {"events", "purchases"}),
        ("click", None, {"events", "clicks"}),
        ("rating", 4.0, {"events"}),
        ("share", None, {"events"}),  # types without a meaning of their own still count as events
        ("impression", None, set()),
    ],
)
def test_counter_increments_per_event_type(event_type, value, kinds):
    assert counter_increments(event(event_type, value), CONFIG) == kinds


def test_the_qualified_session_threshold_is_configurable():
    kion = replace(CONFIG, qualified_session_minutes=20)
    assert not is_qualified_session(event("watch", 20 * 60), kion)
    assert is_qualified_session(event("watch", 20 * 60 + 1), kion)
    assert not is_qualified_session(event("like", 10_000), kion)


def test_item_record_layout_has_the_catalog_section_then_totals_then_one_ring_per_window():
    item = record_layout("item", CONFIG)
    assert item.header_bytes == CATALOG_BYTES == 80
    assert item.totals == ("events", "views", "plays", "likes", "purchases", "clicks", "qualified_sessions")
    assert [(r.window.name, r.buckets, r.kinds) for r in item.rings] == [
        ("1h", 6, ("events", "plays", "purchases")),
        ("24h", 12, ("events", "plays", "purchases")),
        ("7d", 7, ("events", "plays", "purchases")),
    ]
    # 7 totals, then per ring a head and N slots of 3 counts: 85 uint32 and 420 bytes in all
    assert item.words == 7 + (1 + 6 * 3) + (1 + 12 * 3) + (1 + 7 * 3) == 85
    assert item.size == 80 + 4 * item.words == 420
    assert [(r.first, r.slots) for r in item.rings] == [(7, 8), (26, 27), (63, 64)]
    assert record_layout("creator", CONFIG).size == 4 * (1 + 1 + 30)  # plays, then the head and 30 daily counts


def test_the_layout_fingerprint_changes_with_the_layout_only():
    assert record_layout("creator", CONFIG).fingerprint == record_layout("creator", PitFeatureConfig()).fingerprint
    other = replace(CONFIG, creator_recent_days=10)
    assert record_layout("creator", other).fingerprint != record_layout("creator", CONFIG).fingerprint
    assert record_layout("item", other).fingerprint == record_layout("item", CONFIG).fingerprint


def test_counter_args_address_the_totals_and_each_window_ring():
    item = record_layout("item", CONFIG)
    second = 1_700_000_123
    args = counter_args(item, frozenset({"events", "plays"}), second)
    base = 20  # the catalog section is 80 bytes = 20 uint32
    assert args[:6] == [second, 2, base + 0, 1, base + 2, 1]
    assert args[6] == 3  # rings touched
    # per ring: head index, first slot index, buckets, bucket seconds, kinds, then one increment per kind
    # (events, plays, purchases); the script finds the event's slot from the second and the head
    assert args[7:15] == [base + 7, base + 8, 6, 600, 3, 1, 1, 0]
    assert args[15:23] == [base + 26, base + 27, 12, 7200, 3, 1, 1, 0]
    assert args[23:] == [base + 63, base + 64, 7, 86400, 3, 1, 1, 0]


def test_an_event_without_windowed_kinds_touches_no_ring():
    args = counter_args(record_layout("item", CONFIG), frozenset({"events", "likes"}) - {"events"}, 1_700_000_000)
    assert args == [1_700_000_000, 1, 20 + 3, 1, 0]


def test_the_generated_doc_is_up_to_date():
    assert DOC_PATH.read_text() == render_markdown(), "run: python -m recsys.features.docs --write"


def test_the_doc_lists_every_feature_once():
    text = render_markdown()
    for spec in PIT_FEATURES:
        assert text.count(f"| `{spec.name}` |") == 1


def test_the_writer_side_imports_without_numpy():
    """The feature-writer and tracker Lambdas are pure-Python bundles: no numpy there."""
    code = ("import sys; sys.modules['numpy'] = None\n"
            "from recsys.features import FeatureWriter, ItemCatalog, PIT_FEATURES, validate_event\n"
            "from recsys.store import redis_from_env\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[3])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"recent_items": 0}, "pit_features.recent_items: must be > 0"),
        ({"affinity_half_life_days": -1.0}, "pit_features.affinity_half_life_days: must be > 0"),
        ({"qualified_session_minutes": -5.0}, "pit_features.qualified_session_minutes: must be >= 0"),
        ({"creator_cache_s": -1.0}, "pit_features.creator_cache_s: must be >= 0"),
        ({"affinity_event_weights": (("like", 0.0),)}, "pit_features.affinity_event_weights\\['like'\\]: must be > 0"),
    ],
)
def test_bad_pit_settings_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        replace(CONFIG, **changes)


def test_event_types_without_a_weight_add_no_affinity():
    assert (CONFIG.affinity_weight("purchase"), CONFIG.affinity_weight("impression")) == (5.0, 0.0)
