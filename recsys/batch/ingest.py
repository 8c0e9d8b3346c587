"""Feature Store ingestion from Spark: each partition writes its rows in batches, on the executor that holds it.

On SageMaker Processing the partitions spread over the instances, so ingestion scales out with the job;
locally they run in the local[*] executors. The target is a small picklable description; executors
open their own store from it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from pyspark.sql import DataFrame

from recsys.batch.feature_store import (
    FeatureGroup,
    FeatureStore,
    LocalFeatureStore,
    OfflineStoreLocation,
    SageMakerFeatureStore,
)

# Settings an executor needs to reach the same endpoints as the driver (local stand-ins, LocalStack).
_FORWARDED_ENV = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "RECSYS_AWS_TARGET", "LOCALSTACK_HOST")


@dataclass(frozen=True)
class StoreTarget:
    kind: Literal["local", "sagemaker"]
    groups: tuple[FeatureGroup, ...]
    redis_url: str | None = None
    offline: OfflineStoreLocation | None = None
    batch_size: int = 200
    env: dict[str, str] = field(default_factory=lambda: {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ})

    def __post_init__(self) -> None:
        if self.kind == "local" and not self.redis_url:
            raise ValueError("redis_url: required for the local feature store")
        if self.kind not in ("local", "sagemaker"):
            raise ValueError(f"kind: {self.kind!r} is not local or sagemaker")

    def open(self) -> FeatureStore:
        os.environ.update(self.env)
        groups = {group.name: group for group in self.groups}
        if self.kind == "sagemaker":
            return SageMakerFeatureStore(groups)
        import redis

        store = LocalFeatureStore(
            redis.Redis.from_url(self.redis_url), groups, self.offline, batch_size=self.batch_size
        )
        store.create_feature_groups()
        return store


def ingest_frame(frame: DataFrame, group: FeatureGroup, target: StoreTarget) -> int:
    """Write every row of `frame` (a feature table) into `group`; returns the number of records written."""
    columns = [name for name, _ in group.features]
    missing = sorted(set(columns) - set(frame.columns))
    if missing:
        raise ValueError(f"{group.name}: feature table lacks {', '.join(missing)}")

    def write_partition(rows):
        store = target.open()
        yield store.ingest(group.name, (row.asDict() for row in rows))

    return sum(frame.select(*columns).rdd.mapPartitions(write_partition).collect())
