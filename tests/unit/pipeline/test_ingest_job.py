"""IngestFeatures' job (recsys.pipeline.ingest_job): a feature snapshot into the Feature Store (local adapter)."""

from __future__ import annotations

import json

import pytest

from recsys.batch.feature_store import LocalFeatureStore, feature_group
from recsys.batch.paths import feature_table_uri
from recsys.config import load_stage
from recsys.pipeline.ingest_job import main

pytestmark = pytest.mark.timeout(300)
VALUES = {"Integral": 3, "Fractional": 0.5, "String": "x"}


def _snapshot(spark, root, entity: str, ids: list[str]) -> None:
    group = feature_group(entity, load_stage("dev").names)
    rows = [{name: (record_id if name == group.record_identifier else
                    1_709_251_200.0 if name == "event_time" else VALUES[kind])
             for name, kind in group.features} for record_id in ids]
    spark.createDataFrame(rows).write.mode("overwrite").parquet(feature_table_uri(str(root), entity, "2024-03-01"))


def test_the_snapshot_of_the_date_is_written_to_the_online_store(spark, redis_client, local_platform, tmp_path,
                                                                   capsys) -> None:
    _snapshot(spark, tmp_path, "user", ["u1", "u2"])
    _snapshot(spark, tmp_path, "item", ["i1"])
    code = main(["--output", str(tmp_path), "--snapshot-date", "2024-03-01", "--ingest", "local",
                 "--redis-url", local_platform.valkey.url, "--stage", "dev"], spark=spark)
    assert code == 0
    names = load_stage("dev").names
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary == {"snapshot_date": "2024-03-01",
                       "ingested": {names.feature_group("user"): 2, names.feature_group("item"): 1}}
    groups = {g.name: g for g in (feature_group("user", names), feature_group("item", names))}
    store = LocalFeatureStore(redis_client, groups, None)
    assert store.get_record(names.feature_group("user"), "u2") is not None
    assert store.get_record(names.feature_group("item"), "i1") is not None


def test_local_ingestion_needs_the_redis_url(spark, tmp_path, capsys) -> None:
    assert main(["--output", str(tmp_path), "--snapshot-date", "2024-03-01", "--ingest", "local"], spark=spark) == 2
    assert "redis_url" in capsys.readouterr().err
