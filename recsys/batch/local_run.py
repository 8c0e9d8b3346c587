"""The batch job against the local stand-ins, as SageMaker Processing would run it (what `make demo` calls).

SageMaker Processing copies ProcessingInputs from S3 to the container's disk, runs the job, and uploads
the ProcessingOutputs back to S3. Locally the lake is in moto's S3, which Spark cannot read without the
Hadoop S3 connector jars, so this module does the same three steps: download the part of the lake the
run reads, run the job with local[*] Spark, upload features/ and training/ to the lake bucket. The
user and item features are ingested into the local Feature Store: Valkey online, moto S3 offline.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from pyspark.sql import functions as F

from recsys import aws
from recsys.batch.feature_store import LocalFeatureStore, OfflineStoreLocation, feature_group
from recsys.batch.ingest import StoreTarget
from recsys.batch.paths import TRAINING_PREFIX
from recsys.batch.pipeline import BatchResult, BatchRun, run_batch, spark_session
from recsys.batch.window import utc_date
from recsys.config import LOCAL_ACCOUNT, StageConfig
from recsys.events import FEATURES_PREFIX
from recsys.lake.listing import download, history_keys, latest_cutoff


@dataclass
class LocalBatchReport:
    result: BatchResult
    preview: str

    def summary(self) -> str:
        return self.result.summary() + "\n" + self.preview


def stage_lake(bucket: str, run: BatchRun, destination: Path) -> int:
    """Download the event partitions the run reads and the newest users/items imports; returns the file count."""
    first, last = run.read_range().partition_dates()
    return download(bucket, history_keys(bucket, lambda date: first <= date <= last), destination)


def publish_outputs(output: Path, bucket: str) -> int:
    """Upload the job's features/ and training/ folders to the bucket (Spark's .crc side files left out)."""
    s3 = aws.client("s3")
    count = 0
    for top in (FEATURES_PREFIX, TRAINING_PREFIX):
        for path in sorted((output / top).rglob("*")):
            if path.is_file() and not path.name.endswith(".crc"):
                s3.upload_file(str(path), bucket, path.relative_to(output).as_posix())
                count += 1
    return count


def _preview(store: LocalFeatureStore, result: BatchResult, spark, rows: int = 3) -> str:
    """The most active users and items, read back from the online store."""
    lines = []
    for entity, key, busiest, columns in (
        (
            "user",
            "user_id",
            "user_distinct_items",
            ("user_distinct_items", "user_days_since_last_event", "user_top_category", "user_top_category_share"),
        ),
        (
            "item",
            "item_id",
            "item_distinct_users",
            ("item_distinct_users", "item_trend_velocity", "item_avg_rating", "item_categories"),
        ),
    ):
        table = spark.read.parquet(result.outputs[f"features/{entity}"])
        ids = [row[key] for row in table.orderBy(F.col(busiest).desc(), key).select(key).limit(rows).collect()]
        group = next(g for g in store.groups.values() if g.entity == entity)
        records = store.batch_get(group.name, ids)
        for record_id in ids:
            record = records.get(record_id, {})
            shown = ", ".join(f"{c}={record.get(c)!r}" for c in columns)
            lines.append(f"{group.name} {record_id}: {shown}")
    return "\n".join(lines)


def run_local_batch(
    config: StageConfig,
    *,
    lake_bucket: str,
    redis_url: str,
    cutoff: float | None = None,
    mode: str = "all",
    work_dir: Path | None = None,
    spark=None,
) -> LocalBatchReport:
    """Stage the lake, run the job on local Spark, publish its outputs to the lake bucket and ingest the features.

    `spark`: a session to use (kept open); by default a local[*] one is started and stopped.
    """
    import redis

    batch = config.batch_features.resolved(config.pit_features)
    cutoff = latest_cutoff(lake_bucket) if cutoff is None else cutoff
    with tempfile.TemporaryDirectory(prefix="recsys-processing-", dir=work_dir) as root:
        lake, output = Path(root) / "input" / "lake", Path(root) / "output"
        run = BatchRun(str(lake), str(output), cutoff, batch, mode, utc_date(cutoff))
        stage_lake(lake_bucket, run, lake)
        groups = tuple(feature_group(entity, config.names) for entity in ("user", "item"))
        offline = OfflineStoreLocation(
            lake_bucket, batch.offline_store_prefix, config.account or LOCAL_ACCOUNT, config.region
        )
        target = StoreTarget("local", groups, redis_url=redis_url, offline=offline, batch_size=batch.online_batch_size)
        store = LocalFeatureStore(redis.Redis.from_url(redis_url), {g.name: g for g in groups}, offline)
        store.create_feature_groups()
        own_session = spark is None
        if own_session:
            spark = spark_session("recsys-batch-features-local", "local[*]")
        try:
            result = run_batch(spark, run, target if run.wants_features else None)
            preview = _preview(store, result, spark) if run.wants_features else ""
        finally:
            if own_session:
                spark.stop()
        publish_outputs(output, lake_bucket)
    result.outputs = {
        name: f"s3://{lake_bucket}/{Path(uri).relative_to(output).as_posix()}" for name, uri in result.outputs.items()
    }
    return LocalBatchReport(result, preview)
