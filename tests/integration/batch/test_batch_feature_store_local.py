"""The local Feature Store adapter against the real Valkey server (online) and moto's S3 (offline)."""

from __future__ import annotations

import io
import re

import pyarrow.parquet as pq
import pytest

from recsys import aws as clients
from recsys.batch.feature_store import FeatureStoreError, LocalFeatureStore, OfflineStoreLocation, feature_group
from recsys.config import load_stage

NAMES = load_stage("dev").names
USER, ITEM = feature_group("user", NAMES), feature_group("item", NAMES)
BUCKET = "fs-test-lake"
T = 1_709_251_200.0  # 2024-03-01T00:00:00Z


@pytest.fixture
def store(aws, redis_client):
    clients.client("s3").create_bucket(Bucket=BUCKET)
    offline = OfflineStoreLocation(BUCKET, "feature-store", "123456789012", "us-east-1")
    store = LocalFeatureStore(redis_client, {USER.name: USER, ITEM.name: ITEM}, offline, batch_size=2)
    store.create_feature_groups()
    return store


def _user(user_id: str, event_time: float = T, **values) -> dict:
    return {"user_id": user_id, "event_time": event_time, **values}


def test_online_records_read_back_typed(store, redis_client):
    records = [
        _user("u1", user_click_count_7d=3, user_geo="ES", user_price_sensitivity=0.75, user_age=None),
        _user("u2", user_click_count_7d=0),
        _user("u3", user_geo="IN"),
    ]
    assert store.ingest(USER.name, records) == 3
    assert store.get_record(USER.name, "u1") == {
        "user_id": "u1",
        "event_time": T,
        "user_click_count_7d": 3,
        "user_geo": "ES",
        "user_price_sensitivity": 0.75,
    }
    assert set(store.batch_get(USER.name, ["u2", "u3", "nobody"])) == {"u2", "u3"}
    assert store.get_record(USER.name, "nobody") is None
    assert redis_client.hget(f"fs:{USER.name}:u1", "user_geo") == b"ES"


def test_online_store_keeps_the_latest_event_time(store):
    store.ingest(USER.name, [_user("u1", T + 86_400, user_geo="ES", user_age=30)])
    store.ingest(USER.name, [_user("u1", T, user_geo="FR")])  # an older snapshot, e.g. a backfill
    assert store.get_record(USER.name, "u1")["user_geo"] == "ES"
    store.ingest(USER.name, [_user("u1", T + 2 * 86_400, user_geo="PT")])  # newer: replaces the whole record
    assert store.get_record(USER.name, "u1") == {"user_id": "u1", "event_time": T + 2 * 86_400, "user_geo": "PT"}


def test_offline_store_uses_sagemakers_layout_and_keeps_history(store):
    store.ingest(USER.name, [_user("u1", T + 3600 * 5 + 12, user_geo="ES"), _user("u2", T + 3600 * 5, user_age=40)])
    store.ingest(USER.name, [_user("u1", T + 86_400, user_geo="FR")])
    created = store.create_feature_groups()[USER.name]
    s3 = clients.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="feature-store/")["Contents"])
    prefix = f"feature-store/123456789012/sagemaker/us-east-1/offline-store/{USER.name}-{created}/data/"
    assert len(keys) == 2 and all(k.startswith(prefix) for k in keys)
    assert re.fullmatch(
        re.escape(prefix) + r"year=2024/month=03/day=01/hour=05/20240301T050012Z_[A-Za-z0-9]{16}\.parquet", keys[0]
    )
    assert "/year=2024/month=03/day=02/hour=00/" in keys[1]
    table = pq.read_table(io.BytesIO(s3.get_object(Bucket=BUCKET, Key=keys[0])["Body"].read()))
    assert table.column_names == [name for name, _ in USER.features] + [
        "write_time",
        "api_invocation_time",
        "is_deleted",
    ]
    rows = {r["user_id"]: r for r in table.to_pylist()}
    assert (rows["u1"]["user_geo"], rows["u2"]["user_age"], rows["u2"]["user_geo"], rows["u1"]["is_deleted"]) == (
        "ES",
        40,
        None,
        False,
    )


def test_a_bad_record_writes_nothing_of_its_batch(store):
    with pytest.raises(FeatureStoreError, match="u2: user_age: expected an integer"):
        store.ingest(USER.name, [_user("u1", user_age=3), _user("u2", user_age=2.5)])
    assert store.batch_get(USER.name, ["u1", "u2"]) == {}


def test_groups_must_exist(aws, redis_client):
    store = LocalFeatureStore(redis_client, {USER.name: USER})
    with pytest.raises(FeatureStoreError, match="does not exist \\(create_feature_groups first\\)"):
        store.ingest(USER.name, [_user("u1")])
    with pytest.raises(FeatureStoreError, match="feature group 'nope' does not exist"):
        store.batch_get("nope", ["u1"])
