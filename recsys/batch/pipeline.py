"""The batch job: read the lake up to a cutoff, write versioned feature tables and a training set, ingest.

Outputs (Parquet):
- `<output>/features/{user,item,item_pairs}/snapshot_date=YYYY-MM-DD/`: the features at the cutoff; a
  rerun of the same date replaces that snapshot only, earlier snapshots stay (the version history);
- `<output>/training/cutoff=<YYYYMMDDTHHMMSSZ>/`: the training set at the training cutoff, which
  defaults to cutoff - label_horizon_days so that its labels are complete.

No event at or after the cutoff is read. containers/processing/job.py is the command-line entry point;
recsys.batch.local_run runs this against the local stand-ins.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

from recsys.batch.ingest import StoreTarget, ingest_frame
from recsys.batch.lake import read_events, read_items, read_users, spark_uri
from recsys.batch.paths import feature_table_uri, training_set_uri
from recsys.batch.spark_features import compute_item_features, compute_item_pairs, compute_user_features
from recsys.batch.training_set import build_training_set
from recsys.batch.window import DAY_S, TimeRange, cutoff_label, utc_date
from recsys.config import BatchFeatureConfig

MODES = ("features", "training-set", "all")
@dataclass(frozen=True)
class BatchRun:
    lake: str
    output: str
    cutoff: float
    config: BatchFeatureConfig
    mode: str = "all"
    snapshot_date: str | None = None
    training_cutoff: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode: {self.mode!r} is not one of {', '.join(MODES)}")
        if self.snapshot_date is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", self.snapshot_date):
            raise ValueError(f"snapshot_date: {self.snapshot_date!r} is not YYYY-MM-DD")
        if self.config.qualified_session_minutes is None:
            raise ValueError("config: resolve qualified_session_minutes first (BatchFeatureConfig.resolved)")
        if (
            self.training_cutoff is not None
            and self.training_cutoff + self.config.label_horizon_days * DAY_S > self.cutoff
        ):
            raise ValueError(
                "training_cutoff: its label horizon would reach past the cutoff; "
                f"use at most cutoff - {self.config.label_horizon_days} days"
            )

    @property
    def snapshot(self) -> str:
        return self.snapshot_date or utc_date(self.cutoff)

    @property
    def label_cutoff(self) -> float:
        if self.training_cutoff is not None:
            return self.training_cutoff
        return self.cutoff - self.config.label_horizon_days * DAY_S

    @property
    def wants_features(self) -> bool:
        return self.mode in ("features", "all")

    @property
    def wants_training_set(self) -> bool:
        return self.mode in ("training-set", "all")

    def read_range(self) -> TimeRange:
        first_cutoff = min(self.cutoff, self.label_cutoff) if self.wants_training_set else self.cutoff
        return TimeRange(first_cutoff - self.config.window_days * DAY_S, self.cutoff)


@dataclass
class BatchResult:
    cutoff: float
    snapshot_date: str
    outputs: dict[str, str] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    ingested: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        cutoff = f"{utc_date(self.cutoff)} ({cutoff_label(self.cutoff)})"
        lines = [f"cutoff {cutoff}, snapshot {self.snapshot_date}, {self.seconds:.1f}s"]
        lines += [f"{name}: {self.rows[name]} rows -> {uri}" for name, uri in self.outputs.items()]
        lines += [f"ingested {count} records into {group}" for group, count in self.ingested.items()]
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def spark_session(app_name: str, master: str | None = None) -> SparkSession:
    """The job's session: UTC, sized shuffles; the master is the submitter's (SageMaker) unless given."""
    # Python workers must run this interpreter (with this environment's packages), unless the image says otherwise.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name).config("spark.sql.session.timeZone", "UTC")
    if os.environ.get("PYTHONPATH"):
        # On a cluster (SageMaker Processing on several instances) the executors' Python workers need the
        # recsys package too; the image puts it on PYTHONPATH, which YARN containers do not inherit.
        builder = builder.config("spark.executorEnv.PYTHONPATH", os.environ["PYTHONPATH"])
    if master:
        builder = builder.master(master)
    spark = builder.getOrCreate()
    default_shuffle_partitions(spark)
    return spark


def default_shuffle_partitions(spark: SparkSession, per_core: int = 4) -> None:
    """Unless the submitter set spark.sql.shuffle.partitions, use `per_core` per executor core.

    Spark's default of 200 suits clusters; on a few cores it makes thousands of tiny tasks (the test
    lake took 200 s on local[2] with 200 and 20 s with 4). Adaptive execution still coalesces small ones.
    """
    if not spark.sparkContext.getConf().contains("spark.sql.shuffle.partitions"):
        spark.conf.set("spark.sql.shuffle.partitions", str(per_core * spark.sparkContext.defaultParallelism))


def _write(frame: DataFrame, uri: str, spark: SparkSession) -> int:
    frame.write.mode("overwrite").parquet(spark_uri(uri))
    return spark.read.parquet(spark_uri(uri)).count()


def run_batch(spark: SparkSession, run: BatchRun, store: StoreTarget | None = None) -> BatchResult:
    """Run the job; with `store`, ingest the user and item features of the snapshot into the Feature Store."""
    began = time.monotonic()
    config = run.config
    result = BatchResult(cutoff=run.cutoff, snapshot_date=run.snapshot)
    events = read_events(spark, run.lake, run.read_range()).persist(StorageLevel.MEMORY_AND_DISK)
    users = read_users(spark, run.lake).persist()
    items = read_items(spark, run.lake).persist()
    cached: list[DataFrame] = [events, users, items]
    try:
        if run.wants_features:
            features = {
                "user": compute_user_features(events, users, items, run.cutoff, config),
                "item": compute_item_features(events, items, run.cutoff, config),
                "item_pairs": compute_item_pairs(items, run.cutoff, config),
            }
            for table, frame in features.items():
                frame.persist(StorageLevel.MEMORY_AND_DISK)
                cached.append(frame)
                uri = feature_table_uri(run.output, table, run.snapshot)
                result.outputs[f"features/{table}"] = uri
                result.rows[f"features/{table}"] = _write(frame, uri, spark)
            if store is not None:
                for group in store.groups:
                    result.ingested[group.name] = ingest_frame(features[group.entity], group, store)
        if run.wants_training_set:
            training = build_training_set(events, users, items, run.label_cutoff, config)
            uri = training_set_uri(run.output, run.label_cutoff)
            result.outputs["training"] = uri
            result.rows["training"] = _write(training, uri, spark)
    finally:
        for frame in cached:
            frame.unpersist()
    result.seconds = time.monotonic() - began
    return result
