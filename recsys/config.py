"""Typed per-stage configuration.

One source of truth for the CDK stacks (`app.py`) and the local platform
(`recsys.local`): resource names, sizes, limits and feature settings all come
from here, so that the local stand-ins are created with the same names and
settings the deployed platform has.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

PROJECT = "recsys"
STAGES = ("dev", "prod")
DEFAULT_STAGE = "dev"
# moto's and LocalStack's fixed account; real deployments pass their own.
LOCAL_ACCOUNT = "123456789012"
LOCAL_REGION = "us-east-1"


@dataclass(frozen=True)
class NetworkConfig:
    cidr: str = "10.40.0.0/16"
    max_azs: int = 2
    nat_gateways: int = 1
    flow_log_retention_days: int = 90


@dataclass(frozen=True)
class QueueConfig:
    """SQS buffer between the events topic and the feature writer."""

    max_receive_count: int = 5
    retention_days: int = 14
    dlq_retention_days: int = 14
    dlq_alarm_threshold: int = 1


@dataclass(frozen=True)
class LambdaConfig:
    memory_mb: int = 512
    timeout_s: int = 30
    log_retention_days: int = 30


@dataclass(frozen=True)
class FeatureWriterConfig:
    batch_size: int = 100
    batching_window_s: int = 1
    # AWS recommends a queue visibility timeout of at least 6x the function timeout.
    visibility_timeout_factor: int = 6
    function: LambdaConfig = field(default_factory=lambda: LambdaConfig(memory_mb=512, timeout_s=30))

    @property
    def visibility_timeout_s(self) -> int:
        return self.function.timeout_s * self.visibility_timeout_factor


@dataclass(frozen=True)
class EventTrackerConfig:
    """Limits of POST /events. Personalize allows 10 events / 10 KB per call; we allow more."""

    max_events_per_call: int = 100
    max_event_bytes: int = 10 * 1024
    max_body_bytes: int = 256 * 1024
    max_properties: int = 32
    max_impressions: int = 1000
    throttle_rate_per_s: int = 1000
    throttle_burst: int = 2000
    function: LambdaConfig = field(default_factory=LambdaConfig)


@dataclass(frozen=True)
class MemoryDbConfig:
    node_type: str = "db.t4g.small"
    num_shards: int = 1
    replicas_per_shard: int = 1
    snapshot_retention_days: int = 7
    engine_version: str = "7.1"
    port: int = 6379


@dataclass(frozen=True)
class PitFeatureConfig:
    """Settings of the real-time point-in-time features (see recsys.features)."""

    qualified_session_minutes: float = 5.0
    recent_items: int = 50
    affinity_half_life_days: float = 14.0
    creator_recent_days: int = 30
    dedupe_ttl_days: int = 7


@dataclass(frozen=True)
class StageConfig:
    stage: str
    account: str | None = None
    region: str = LOCAL_REGION
    network: NetworkConfig = field(default_factory=NetworkConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    feature_writer: FeatureWriterConfig = field(default_factory=FeatureWriterConfig)
    event_tracker: EventTrackerConfig = field(default_factory=EventTrackerConfig)
    memorydb: MemoryDbConfig = field(default_factory=MemoryDbConfig)
    pit_features: PitFeatureConfig = field(default_factory=PitFeatureConfig)
    # Retain data stores on stack deletion in prod; destroy them in dev.
    retain_data: bool = False

    @property
    def prefix(self) -> str:
        return f"{PROJECT}-{self.stage}"

    @property
    def names(self) -> "ResourceNames":
        return ResourceNames(self.prefix)


@dataclass(frozen=True)
class ResourceNames:
    """Physical names shared by the CDK stacks and the local platform."""

    prefix: str

    @property
    def events_topic(self) -> str:
        return f"{self.prefix}-events"

    @property
    def feature_queue(self) -> str:
        return f"{self.prefix}-feature-writer"

    @property
    def feature_dlq(self) -> str:
        return f"{self.prefix}-feature-writer-dlq"

    @property
    def alarm_topic(self) -> str:
        return f"{self.prefix}-oncall"

    @property
    def memorydb_secret(self) -> str:
        return f"{self.prefix}/memorydb/app-user"

    def bucket(self, purpose: str, account: str) -> str:
        """Bucket names are global: the account id keeps them unique."""
        return f"{self.prefix}-{purpose}-{account}"

    @property
    def bucket_purposes(self) -> tuple[str, ...]:
        return ("lake", "artifacts", "access-logs")


def _dev() -> StageConfig:
    return StageConfig(stage="dev")


def _prod() -> StageConfig:
    return StageConfig(
        stage="prod",
        network=NetworkConfig(cidr="10.41.0.0/16", max_azs=3, nat_gateways=2, flow_log_retention_days=365),
        memorydb=MemoryDbConfig(node_type="db.r7g.large", num_shards=2, replicas_per_shard=2, snapshot_retention_days=14),
        feature_writer=FeatureWriterConfig(batch_size=500, batching_window_s=1),
        retain_data=True,
    )


_FACTORIES = {"dev": _dev, "prod": _prod}


def load_stage(stage: str | None = None, *, account: str | None = None, region: str | None = None) -> StageConfig:
    """The config of `stage` (default: $RECSYS_STAGE or dev)."""
    stage = stage or os.environ.get("RECSYS_STAGE", DEFAULT_STAGE)
    if stage not in _FACTORIES:
        raise ValueError(f"unknown stage {stage!r}: expected one of {', '.join(STAGES)}")
    config = _FACTORIES[stage]()
    return replace(config, account=account or config.account, region=region or config.region)
