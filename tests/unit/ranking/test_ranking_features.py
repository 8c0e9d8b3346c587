"""One assembly for training and serving: rows built from the training log and frame equal the rows built from the
serving-time reads (real-time features in a real Valkey, batch features as dicts) for the same (user, item, time)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.config import PitFeatureConfig
from recsys.events import Event
from recsys.models import CandidateRequest
from recsys.ranking.features import (
    MODEL_FEATURES,
    ExternalColumns,
    FeatureSchema,
    assemble,
    assemble_frame,
    assemble_request,
    coerce,
    request_from_pit,
    user_requests,
)

USER_BATCH = ("user_click_count_7d", "user_days_since_last_event", "user_top_category_share")
ITEM_BATCH = ("item_click_count", "item_like_rate", "item_age_days")
PAIR = ("pair_category_match", "pair_creator_match")


def _batch_tables(fitted) -> tuple[dict[str, dict], dict[str, dict]]:
    """Stand-ins for the Feature Store rows at T: per user and per item, spec-named values (some missing)."""
    rng = np.random.default_rng(3)
    users = {}
    for i, user in enumerate(sorted(fitted.interactions.user_ids.tolist())):
        users[user] = {"user_click_count_7d": int(rng.integers(0, 20)), "user_top_category": "comedy",
                       "user_top_creator": "c00001", "user_days_since_last_event": None if i % 7 == 0 else 1.5 * i,
                       "user_top_category_share": float(rng.random())}
    items = {}
    for i, item in enumerate(fitted.catalog.item_ids.tolist()):
        items[item] = {"item_click_count": int(rng.integers(0, 50)), "item_like_rate": float(rng.random()),
                       "item_age_days": 3.0 * i, "item_categories": "comedy|news" if i % 3 == 0 else "drama",
                       "item_creator": "c00001" if i % 4 == 0 else "c00002"}
    return users, items


def _training_frame(users: dict, items: dict, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """What the batch training-set builder writes: keys, labels, then user/item/derived columns."""
    from recsys.batch.derived import user_item_features

    rows = []
    for user, item in pairs:
        row = {"user_id": user, "item_id": item, "label_click": 0}
        row.update({k: v for k, v in users[user].items()})
        row.update({k: v for k, v in items.get(item, {}).items()})
        row.update(user_item_features(users[user], items.get(item, {})))
        rows.append(row)
    return pd.DataFrame(rows)


def _events_before(fitted, cutoff: float) -> list[Event]:
    frame = fitted.frames["interactions"]
    frame = frame[frame["TIMESTAMP"] < cutoff]
    return [Event(event_id=f"e{i}", user_id=r.USER_ID, event_type=r.EVENT_TYPE, timestamp=float(r.TIMESTAMP),
                  item_id=r.ITEM_ID, event_value=None if pd.isna(r.EVENT_VALUE) else float(r.EVENT_VALUE))
            for i, r in enumerate(frame.itertuples())]


def test_training_rows_equal_serving_rows_for_the_same_user_item_and_time(synthetic_fitted, redis_client):
    from recsys.features import FeatureReader, FeatureWriter

    fitted = synthetic_fitted
    cutoff = fitted.cutoff
    config = PitFeatureConfig()
    writer = FeatureWriter(redis_client, config)
    events = _events_before(fitted, cutoff)
    for start in range(0, len(events), 500):
        writer.apply(events[start:start + 500])
    reader = FeatureReader(redis_client, config)

    users, items = _batch_tables(fitted)
    schema = FeatureSchema(user=USER_BATCH, item=ITEM_BATCH, pair=PAIR)
    requests = user_requests(fitted.models, fitted.interactions, cutoff)
    chosen_users = sorted(requests)[:6]
    candidates = fitted.catalog.item_ids[:40].tolist() + ["never-seen-item"]
    frame = _training_frame(users, items, [(u, i) for u in chosen_users for i in candidates])
    training = assemble_frame(fitted.models, schema, frame, requests, cutoff)

    checked_history = 0
    for n, user in enumerate(chosen_users):
        snapshot = reader.read(user, candidates, now=cutoff)
        request = request_from_pit(user, snapshot.user, cutoff)
        checked_history += len(request.history) > 0
        assert request.history == requests[user].history  # the recent items the PIT store kept = the log's
        serving, names = assemble_request(fitted.models, schema, request, candidates, user=users[user], items=items,
                                          pit_user=snapshot.user, pit_items=snapshot.items)
        assert names == schema.names
        rows = training[n * len(candidates):(n + 1) * len(candidates)]
        np.testing.assert_array_equal(serving, rows)
    assert checked_history == len(chosen_users)
    unknown = (frame["item_id"] == "never-seen-item").to_numpy()
    assert np.isnan(training[unknown, names.index("m_popularity")]).all()  # an unknown item has no model features
    assert not np.isnan(training[~unknown, names.index("m_ease")]).any()


def test_rows_follow_the_schema_order_and_model_features_are_the_channels_scores(synthetic_fitted):
    fitted = synthetic_fitted
    request = user_requests(fitted.models, fitted.interactions, fitted.cutoff)
    user = sorted(request)[0]
    query = fitted.models.query(request[user])
    items = np.arange(10)
    schema = FeatureSchema()
    rows = assemble(fitted.models, schema, query, items)
    assert rows.shape == (10, len(MODEL_FEATURES)) and rows.dtype == np.float32
    ease = fitted.models["ease"].score_query(query, items)
    assert rows[:, schema.names.index("m_ease")] == pytest.approx(ease)
    popularity = fitted.models["popularity"].score_query(query, items)
    assert rows[:, schema.names.index("m_popularity")] == pytest.approx(np.log1p(popularity))
    assert (rows[:, schema.names.index("u_history_length")] == len(query.history)).all()


def test_pit_item_features_read_the_same_from_dicts_and_from_reader_columns():
    from recsys.features.reader import ITEM_COLUMNS, ItemFeatures

    matrix = np.arange(2 * len(ITEM_COLUMNS), dtype=float).reshape(2, -1)
    reader_items = ItemFeatures(["i1", "i2"], matrix)
    as_dicts = {item: reader_items[item] for item in reader_items}
    schema = FeatureSchema(model=(), pit_user=("user_events",), pit_item=("item_plays_24h", "affinity_topic"))
    candidates = ["i2", "missing", "i1"]
    pit_user = {"user_events": 12.0, "user_recent_items": []}
    a = ExternalColumns.from_serving(schema, candidates, pit_user=pit_user, pit_items=reader_items).columns
    b = ExternalColumns.from_serving(schema, candidates, pit_user=pit_user, pit_items=as_dicts).columns
    assert list(a) == ["pit_user_events", "pit_item_plays_24h", "pit_affinity_topic"]
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    column = ITEM_COLUMNS.index("item_plays_24h")
    np.testing.assert_array_equal(a["pit_item_plays_24h"], [matrix[1, column], np.nan, matrix[0, column]])
    assert a["pit_user_events"].tolist() == [12.0, 12.0, 12.0]


def test_coercion_is_numeric_with_nan_for_missing_and_text():
    assert coerce([1, None, True, "x", 2.5]).tolist() == pytest.approx([1.0, np.nan, 1.0, np.nan, 2.5], nan_ok=True)
    assert coerce(np.array([1, 2], dtype=np.int64)).dtype == np.float32
    assert coerce(pd.Series([1.0, None]).to_numpy()).tolist() == pytest.approx([1.0, np.nan], nan_ok=True)


def test_schema_rejects_unknown_and_duplicate_features_and_has_a_stable_id():
    with pytest.raises(ValueError, match="unknown m_magic"):
        FeatureSchema(model=("m_magic",))
    with pytest.raises(ValueError, match="duplicates"):
        FeatureSchema(user=("x",), item=("x",))
    assert FeatureSchema(user=("a",)).id == FeatureSchema(user=("a",)).id != FeatureSchema(user=("b",)).id
    assert FeatureSchema.from_dict(FeatureSchema(pit_item=("item_plays",)).to_dict()).names[-1] == "pit_item_plays"


def test_a_row_count_mismatch_is_named(synthetic_fitted):
    fitted = synthetic_fitted
    schema = FeatureSchema(user=("u_x",))
    query = fitted.models.query(CandidateRequest(now=fitted.cutoff))
    with pytest.raises(ValueError, match="feature u_x: 3 values for 2 candidates"):
        assemble(fitted.models, schema, query, np.arange(2), ExternalColumns({"u_x": np.zeros(3, np.float32)}))
