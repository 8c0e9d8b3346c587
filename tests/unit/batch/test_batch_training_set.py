"""Point-in-time training sets: hand-checked rows and labels, and the no-leakage properties (hypothesis)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from recsys.batch.spec import EVENT_TIME, features_of
from recsys.batch.training_set import LABELS, build_training_set, compute_labels, training_columns
from recsys.events import KNOWN_EVENT_TYPES, Event
from tests.unit.batch.conftest import by_key
from tests.unit.batch.lake_fixture import CUTOFF, DAY, EVENTS, events_frame

pytestmark = pytest.mark.spark
HORIZON_S = 7 * DAY


@pytest.fixture(scope="session")
def training_rows(frames, batch_config, user_table, item_table):
    events, users, items = frames
    table = build_training_set(
        events, users, items, CUTOFF, batch_config, user_features=user_table, item_features=item_table
    )
    assert table.columns == training_columns()
    return by_key(table, "user_id", "item_id")


def _labels(row) -> tuple[int, ...]:
    return tuple(row[label] for label in LABELS)


def test_labels_and_row_sources_come_from_the_horizon_only(training_rows):
    # (click, play, purchase, engage). e10 clicks at the cutoff (inside the horizon); e24 is after it.
    expected = {
        ("u1", "i1"): ((1, 0, 0, 1), "interaction"),
        ("u1", "i2"): ((0, 1, 0, 1), "interaction"),  # listens of 200 s + 150 s > 5 min in total
        ("u2", "i3"): ((0, 0, 1, 1), "interaction"),
        ("u2", "i1"): ((0, 0, 0, 0), "impression"),  # shown by e23, not acted on: a logged negative
        ("u2", "i5"): ((0, 0, 0, 0), "impression"),
        ("u3", "i6"): ((0, 0, 0, 0), "interaction"),  # a view: no positive label
    }
    logged = {
        key: (_labels(row), row["row_source"]) for key, row in training_rows.items() if row["row_source"] != "sampled"
    }
    assert logged == expected


def test_sampled_negatives_only_for_users_without_logged_impressions(training_rows):
    sampled = {key for key, row in training_rows.items() if row["row_source"] == "sampled"}
    # u1: 2 positives x 1 negative each, from popular items u1 never touched (not i1 i2 i3); u2 has impressions,
    # u3 has no positive.
    assert len(sampled) == 2
    assert {user for user, _ in sampled} == {"u1"}
    assert {item for _, item in sampled} <= {"i5", "i6", "i7"}
    assert all(_labels(training_rows[key]) == (0, 0, 0, 0) for key in sampled)


def test_sampling_is_seeded(spark, frames, batch_config, user_table, item_table, training_rows):
    events, users, items = frames
    again = build_training_set(
        events, users, items, CUTOFF, batch_config, user_features=user_table, item_features=item_table
    )
    assert sorted(by_key(again, "user_id", "item_id")) == sorted(training_rows)


def test_rows_carry_the_features_at_the_cutoff(training_rows, users_by_id, items_by_id):
    row = training_rows[("u1", "i2")]
    for spec in features_of("user"):
        assert row[spec.name] == users_by_id["u1"][spec.name], spec.name
    for spec in features_of("item"):
        assert row[spec.name] == items_by_id["i2"][spec.name], spec.name
    assert (row["pair_category_match"], row["pair_creator_match"], row["pair_profile_topic_match"]) == (1, 1, 1)


def test_feature_tables_of_another_cutoff_are_refused(frames, batch_config, user_table, item_table):
    events, users, items = frames
    with pytest.raises(ValueError, match="user_features: computed for another cutoff"):
        build_training_set(
            events, users, items, CUTOFF + DAY, batch_config, user_features=user_table, item_features=item_table
        )


# --- no leakage -------------------------------------------------------------------------------------------------

USERS = [f"u{i}" for i in range(4)]
ITEMS = ["i1", "i2", "i3", "i5", "i6", "i9"]  # catalogued, metadata-less, and uncatalogued items


def _event_strategy(lowest: float, highest: float):
    return st.builds(
        lambda user, kind, offset, item, value, session, shown: Event(
            event_id="",
            user_id=user,
            event_type=kind,
            timestamp=float(offset),
            item_id=None if kind == "impression" else item,
            event_value=value,
            session_id=session,
            impression=tuple(shown),
        ),
        st.sampled_from(USERS),
        st.sampled_from(KNOWN_EVENT_TYPES),
        st.integers(int(lowest), int(highest) - 1),
        st.sampled_from(ITEMS),
        st.one_of(st.none(), st.floats(0, 3600, allow_nan=False)),
        st.sampled_from([None, "s1", "s2"]),
        st.lists(st.sampled_from(ITEMS), max_size=3),
    )


def _numbered(events: list[Event], prefix: str) -> list[Event]:
    return [replace(event, event_id=f"{prefix}{n}") for n, event in enumerate(events)]


def _rows(frame, *keys) -> list[str]:
    return sorted(repr(sorted(row.items())) for row in by_key(frame, *keys).values())


# Spark makes each example cost seconds: few examples, and no shrinking (a failure prints its example as found).
SPARK_SETTINGS = dict(
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@settings(max_examples=8, **SPARK_SETTINGS)
@given(
    history=st.lists(_event_strategy(CUTOFF - 70 * DAY, CUTOFF), min_size=1, max_size=25),
    future=st.lists(_event_strategy(CUTOFF, CUTOFF + 30 * DAY), min_size=1, max_size=10),
)
def test_events_at_or_after_the_cutoff_never_change_the_features(spark, frames, batch_config, history, future):
    from recsys.batch.spark_features import compute_item_features, compute_user_features

    _, users, items = frames
    before = events_frame(spark, _numbered(history, "h"))
    with_future = events_frame(spark, _numbered(history, "h") + _numbered(future, "f"))
    for compute, key in (
        (lambda e: compute_user_features(e, users, items, CUTOFF, batch_config), "user_id"),
        (lambda e: compute_item_features(e, items, CUTOFF, batch_config), "item_id"),
    ):
        assert _rows(compute(with_future), key) == _rows(compute(before), key)


@settings(max_examples=15, **SPARK_SETTINGS)
@given(
    horizon=st.lists(_event_strategy(CUTOFF, CUTOFF + HORIZON_S), max_size=15),
    outside=st.lists(
        st.one_of(_event_strategy(CUTOFF - 70 * DAY, CUTOFF), _event_strategy(CUTOFF + HORIZON_S, CUTOFF + 40 * DAY)),
        min_size=1,
        max_size=15,
    ),
)
def test_labels_depend_only_on_the_horizon(spark, batch_config, horizon, outside):
    inside = events_frame(spark, _numbered(horizon, "h"))
    everything = events_frame(spark, _numbered(horizon, "h") + _numbered(outside, "o"))
    assert _rows(compute_labels(everything, CUTOFF, batch_config), "user_id", "item_id") == _rows(
        compute_labels(inside, CUTOFF, batch_config), "user_id", "item_id"
    )


def test_fixture_exercises_the_boundaries():
    """The hand-checked fixture has an event exactly at the cutoff and one just past the horizon."""
    stamps = {e.event_id: e.timestamp for e in EVENTS}
    assert stamps["e10"] == CUTOFF and stamps["e24"] >= CUTOFF + HORIZON_S
    assert EVENT_TIME == "event_time"
