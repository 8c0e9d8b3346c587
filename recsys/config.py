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
# Stable production-variant names of the ranking endpoint: A/B analysis, alarms and promotion key on them.
CHAMPION_VARIANT = "champion"
CHALLENGER_VARIANT = "challenger"


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
    # None: the function scales within the account's unreserved concurrency.
    reserved_concurrency: int | None = None


@dataclass(frozen=True)
class FeatureWriterConfig:
    """The SQS -> feature-writer event source mapping and function."""

    # SQS allows batches above 10 only with a batching window of >= 1 s, which alone would eat the
    # 1 s reflection-time budget; dev favours latency, prod (500 / 1 s) favours throughput.
    batch_size: int = 10
    batching_window_s: int = 0
    # AWS recommends a queue visibility timeout of at least 6x the function timeout.
    visibility_timeout_factor: int = 6
    function: LambdaConfig = field(default_factory=lambda: LambdaConfig(memory_mb=512, timeout_s=30))

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError(f"feature_writer.batch_size: must be 1..10000, got {self.batch_size}")
        if self.batch_size > 10 and self.batching_window_s < 1:
            raise ValueError("feature_writer.batching_window_s: SQS needs >= 1 s when batch_size > 10")

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
    # Ids (user, session, item, event type, ...) and property keys; Personalize allows 256 too.
    max_id_chars: int = 256
    max_property_value_chars: int = 1024
    # sent_at must lie in [min_sent_at_s, now + max_clock_skew_s]: catches milliseconds and broken clocks.
    max_clock_skew_s: int = 15 * 60
    min_sent_at_s: float = 946_684_800.0  # 2000-01-01T00:00:00Z
    max_metadata_records_per_call: int = 100
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
    # ACL rule of the platform's user: every key and command but the dangerous ones (FLUSHALL, CONFIG, KEYS, ...).
    access_string: str = "on ~* &* +@all -@dangerous"


@dataclass(frozen=True)
class PitFeatureConfig:
    """Settings of the real-time point-in-time features (see recsys.features)."""

    qualified_session_minutes: float = 5.0
    recent_items: int = 50
    affinity_half_life_days: float = 14.0
    creator_recent_days: int = 30
    dedupe_ttl_days: int = 7
    # Affinity weight of one event of each type (others add nothing); weights must be > 0.
    affinity_event_weights: tuple[tuple[str, float], ...] = (
        ("view", 1.0), ("click", 0.5), ("like", 3.0), ("listen", 2.0), ("watch", 2.0), ("purchase", 5.0), ("rating", 1.0),
    )
    # Affinity entries kept per user (topics, creators and franchises together): the weakest go first.
    affinity_max_entries: int = 200
    # The FeatureReader keeps creator records this long (creator popularity is a 30-day count); 0: no cache.
    creator_cache_s: float = 5.0

    def __post_init__(self) -> None:
        positive = ("recent_items", "affinity_half_life_days", "creator_recent_days", "dedupe_ttl_days",
                    "affinity_max_entries")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"pit_features.{name}: must be > 0, got {getattr(self, name)!r}")
        for name in ("qualified_session_minutes", "creator_cache_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"pit_features.{name}: must be >= 0, got {getattr(self, name)!r}")
        for event_type, weight in self.affinity_event_weights:
            if not weight > 0:
                raise ValueError(f"pit_features.affinity_event_weights[{event_type!r}]: must be > 0, got {weight!r}")

    def affinity_weight(self, event_type: str) -> float:
        return dict(self.affinity_event_weights).get(event_type, 0.0)


@dataclass(frozen=True)
class ProcessingConfig:
    """SageMaker Processing cluster of the Spark batch job; more instances scale it out (see docs/batch_features.md)."""

    instance_count: int = 1
    instance_type: str = "ml.m5.xlarge"
    volume_size_gb: int = 30
    max_runtime_s: int = 3600
    spark_version: str = "3.5"


@dataclass(frozen=True)
class BatchFeatureConfig:
    """Settings of the Spark batch features and training sets (see recsys.batch)."""

    # Lake history read per run, ending at the cutoff: Amp 60 days, KION 180.
    window_days: int = 60
    # Trend velocity: daily rate over the short window divided by daily rate over the long one.
    trend_short_days: int = 7
    trend_long_days: int = 30
    # None: the real-time features' threshold (PitFeatureConfig.qualified_session_minutes), so both paths agree.
    qualified_session_minutes: float | None = None
    # Events without a session_id are grouped into sessions split by this much inactivity.
    session_gap_minutes: float = 30.0
    # Training labels come from [cutoff, cutoff + label_horizon_days).
    label_horizon_days: int = 7
    negatives_per_positive: int = 4
    # Sampled negatives are drawn from this many most popular items (known before the cutoff).
    negative_pool_size: int = 200
    sample_seed: int = 42
    # Item-to-item pairs: tokens carried by more items than this do not propose pairs on their own
    # (a genre shared by half the catalogue would make the join quadratic); pairs kept per item.
    pair_token_max_items: int = 2000
    similar_items_per_item: int = 50
    # Online Feature Store writes are sent in batches of this many records.
    online_batch_size: int = 200
    # Offline store prefix in the lake bucket (SageMaker appends <account>/sagemaker/<region>/offline-store/...).
    offline_store_prefix: str = "feature-store"
    processing: ProcessingConfig = field(default_factory=ProcessingConfig)

    def __post_init__(self) -> None:
        if self.window_days < 60:
            raise ValueError(
                f"batch_features.window_days: {self.window_days} is shorter than the 60-day activity window"
            )
        if not 0 < self.trend_short_days < self.trend_long_days <= self.window_days:
            raise ValueError("batch_features.trend_short_days/trend_long_days: need 0 < short < long <= window_days")
        if self.label_horizon_days <= 0:
            raise ValueError("batch_features.label_horizon_days: must be positive")
        if self.negatives_per_positive < 0 or self.negative_pool_size <= 0:
            raise ValueError("batch_features.negatives_per_positive/negative_pool_size: must be >= 0 / > 0")

    def resolved(self, pit: PitFeatureConfig) -> "BatchFeatureConfig":
        """This config with the qualified-session threshold filled in from the real-time features' one."""
        if self.qualified_session_minutes is not None:
            return self
        return replace(self, qualified_session_minutes=pit.qualified_session_minutes)

    @property
    def qualified_play_seconds(self) -> float:
        if self.qualified_session_minutes is None:
            raise ValueError("batch_features.qualified_session_minutes: unresolved; call resolved(stage.pit_features)")
        return self.qualified_session_minutes * 60.0


@dataclass(frozen=True)
class StorageConfig:
    """Lifecycle of the S3 buckets (see stacks/constructs/secure_bucket.py)."""

    noncurrent_version_days: int = 30
    access_log_retention_days: int = 365


@dataclass(frozen=True)
class DriftMonitorConfig:
    """Feature and prediction drift job (see recsys.monitoring.drift and docs/monitoring.md)."""

    # EventBridge schedule: several times a day (Meesho checks skew and prior shift after deployment).
    schedule: str = "rate(6 hours)"
    # Served rows compared: those logged in the last window_hours.
    window_hours: int = 6
    # PSI rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 major shift.
    psi_warn: float = 0.1
    psi_alarm: float = 0.25
    # KS flags a feature only when the shift is both significant and large: with many rows any shift is significant.
    ks_p_value: float = 0.01
    ks_warn_statistic: float = 0.1
    ks_alarm_statistic: float = 0.2
    # Relative gap between the mean served prediction and the training positive rate (prior shift).
    prior_shift_warn: float = 0.1
    prior_shift_alarm: float = 0.25
    # Fewer served values than this: the feature is reported as "insufficient", not judged.
    min_samples: int = 500
    # The alarm on DriftedFeatures fires at this many features in "alarm" state.
    drifted_features_alarm: int = 1
    baseline_bins: int = 10
    baseline_max_categories: int = 50
    baseline_sample_size: int = 5000

    def __post_init__(self) -> None:
        for warn, alarm in (("psi_warn", "psi_alarm"), ("ks_warn_statistic", "ks_alarm_statistic"),
                            ("prior_shift_warn", "prior_shift_alarm")):
            if not 0 < getattr(self, warn) <= getattr(self, alarm):
                raise ValueError(f"monitoring.drift.{warn}: must be > 0 and <= {alarm}")
        if not 0 < self.ks_p_value < 1:
            raise ValueError("monitoring.drift.ks_p_value: must lie in (0, 1)")
        if self.min_samples < 1 or self.baseline_bins < 2 or self.baseline_sample_size < 1:
            raise ValueError("monitoring.drift.min_samples/baseline_bins/baseline_sample_size: must be >= 1/2/1")


@dataclass(frozen=True)
class ABTestConfig:
    """Near-real-time A/B analysis job (see recsys.monitoring.abtest)."""

    schedule: str = "rate(5 minutes)"
    control_variant: str = CHAMPION_VARIANT
    # The metric the promotion rule tests: ctr, cvr or engagement.
    primary_metric: str = "ctr"
    alpha: float = 0.05
    # SD of the mSPRT's normal mixture relative to the metric's level: the relative lift the test is tuned to.
    msprt_mixture_relative_sd: float = 0.1
    # Per variant, before any comparison is called significant.
    min_users_per_variant: int = 500
    # Sample-ratio mismatch: chi-square p below this means the split is broken and results are not trusted.
    srm_p_threshold: float = 0.001
    # Unit the traffic is split by: "user" (the API pins users to variants) or "exposure" (per-request routing).
    srm_unit: str = "user"
    # Outcomes without a recommendation id are credited to the user's latest exposure this recent.
    attribution_window_s: int = 24 * 3600
    guardrail_p99_latency_ms: float = 200.0
    guardrail_degraded_rate: float = 0.01

    def __post_init__(self) -> None:
        if self.primary_metric not in ("ctr", "cvr", "engagement"):
            raise ValueError(
                f"monitoring.ab.primary_metric: {self.primary_metric!r} is not one of ctr, cvr, engagement"
            )
        if self.srm_unit not in ("user", "exposure"):
            raise ValueError(f"monitoring.ab.srm_unit: {self.srm_unit!r} is not one of user, exposure")
        if not 0 < self.alpha < 1:
            raise ValueError("monitoring.ab.alpha: must lie in (0, 1)")


@dataclass(frozen=True)
class PromotionConfig:
    """Shifting endpoint variant weights toward an A/B winner (see recsys.monitoring.promotion)."""

    enabled: bool = False
    # Each promotion moves this fraction of the traffic not yet on the winner onto it.
    step: float = 0.25
    min_users_per_variant: int = 2000

    def __post_init__(self) -> None:
        if not 0 < self.step <= 1:
            raise ValueError("monitoring.promotion.step: must lie in (0, 1]")


@dataclass(frozen=True)
class ShowcaseHealthConfig:
    """Daily showcase comparison (KION; see recsys.monitoring.showcase_health)."""

    schedule: str = "cron(30 1 * * ? *)"
    # Alarm when more than this share of users see exactly yesterday's showcase.
    unchanged_share_alarm: float = 0.2
    # Alarm when fewer than this share of visible items are new since yesterday.
    daily_novelty_alarm_below: float = 0.05
    snapshot_ttl_days: int = 8


@dataclass(frozen=True)
class MonitoringConfig:
    drift: DriftMonitorConfig = field(default_factory=DriftMonitorConfig)
    ab: ABTestConfig = field(default_factory=ABTestConfig)
    promotion: PromotionConfig = field(default_factory=PromotionConfig)
    showcase: ShowcaseHealthConfig = field(default_factory=ShowcaseHealthConfig)


@dataclass(frozen=True)
class DatasetImportConfig:
    """Rules of the Personalize-format dataset importer (see recsys.datasets)."""

    # Amazon Personalize's documented minimum training data.
    min_users: int = 50
    min_items: int = 50
    min_interactions: int = 1500
    max_errors_shown: int = 20
    # Lake files hold at most this many events; events wait in memory up to this size, then spill to local disk.
    events_per_part: int = 1_000_000
    buffer_mb: int = 32

    def __post_init__(self) -> None:
        for name in ("min_users", "min_items", "min_interactions", "max_errors_shown", "events_per_part", "buffer_mb"):
            if getattr(self, name) < 1:
                raise ValueError(f"datasets.{name}: must be at least 1")


@dataclass(frozen=True)
class QualityGateConfig:
    """What a newly trained model must reach before it is deployed (recsys.pipeline.gate)."""

    k: int = 10
    min_ndcg: float = 0.02
    min_auc: float = 0.55
    # NDCG@k must beat popularity's by at least this share.
    min_lift_over_popularity: float = 0.1
    # ...and may fall at most this share below the champion's.
    max_drop_vs_champion: float = 0.05

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"quality_gate.k: {self.k} must be >= 1")
        if not 0.0 <= self.max_drop_vs_champion < 1.0:
            raise ValueError(f"quality_gate.max_drop_vs_champion: {self.max_drop_vs_champion} must be in [0, 1)")


@dataclass(frozen=True)
class PipelineConfig:
    """The daily pipeline: its schedule, retries, quality gate and how much traffic a new model gets."""

    # EventBridge Scheduler expression and time zone: daily at 22:00 UTC by default.
    schedule: str = "cron(0 22 * * ? *)"
    timezone: str = "UTC"
    schedule_enabled: bool = True
    # Retries of throttling / transient errors: attempts after the first, first interval, backoff rate.
    retry_attempts: int = 3
    retry_interval_s: int = 30
    retry_backoff: float = 2.0
    training_instance_type: str = "ml.m5.xlarge"
    training_max_runtime_s: int = 4 * 3600
    # Share of traffic the challenger variant gets when a new model is deployed.
    challenger_weight: float = 0.1
    quality_gate: QualityGateConfig = field(default_factory=QualityGateConfig)

    def __post_init__(self) -> None:
        if not 0.0 < self.challenger_weight < 1.0:
            raise ValueError(f"pipeline.challenger_weight: {self.challenger_weight} must be in (0, 1)")
        if self.retry_attempts < 0 or self.retry_interval_s < 1 or self.retry_backoff < 1.0:
            raise ValueError("pipeline.retry_*: attempts >= 0, interval >= 1 s and backoff >= 1 are required")


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
    datasets: DatasetImportConfig = field(default_factory=DatasetImportConfig)
    batch_features: BatchFeatureConfig = field(default_factory=BatchFeatureConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    # Subscribed to the on-call alarm topic; `cdk deploy -c alarm_emails=a@x.com,b@y.com` adds more.
    alarm_emails: tuple[str, ...] = ()
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
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

    @property
    def memorydb_cluster(self) -> str:
        return f"{self.prefix}-features"

    @property
    def memorydb_user(self) -> str:
        return f"{self.prefix}-app"

    @property
    def memorydb_acl(self) -> str:
        return f"{self.prefix}-acl"

    @property
    def data_key_alias(self) -> str:
        return f"alias/{self.prefix}-data"

    @property
    def event_tracker_api(self) -> str:
        return f"{self.prefix}-event-tracker"

    @property
    def metrics_namespace(self) -> str:
        """CloudWatch namespace of the platform's own metrics (Powertools / EMF)."""
        return self.prefix

    def function(self, purpose: str) -> str:
        """Lambda function names: `feature_writer` -> recsys-dev-feature-writer."""
        return f"{self.prefix}-{purpose.replace('_', '-')}"

    def bucket(self, purpose: str, account: str) -> str:
        """Bucket names are global: the account id keeps them unique."""
        return f"{self.prefix}-{purpose}-{account}"

    def feature_group(self, entity: str) -> str:
        """SageMaker Feature Store group of the batch features of `entity` (user, item)."""
        return f"{self.prefix}-{entity}-batch-features"

    @property
    def firehose_stream(self) -> str:
        """Firehose stream of the batch path: tracker events -> the data lake."""
        return f"{self.prefix}-events-to-lake"

    @property
    def glue_database(self) -> str:
        """Glue/Athena names allow only lowercase letters, digits and underscores."""
        return f"{self.prefix.replace('-', '_')}_lake"

    @property
    def events_table(self) -> str:
        return "events"

    @property
    def state_machine(self) -> str:
        """The daily pipeline: batch features -> ... -> deployment."""
        return f"{self.prefix}-daily-pipeline"

    @property
    def model_package_group(self) -> str:
        return f"{self.prefix}-ranker"

    @property
    def endpoint(self) -> str:
        """The SageMaker endpoint that scores candidates (champion and challenger variants)."""
        return f"{self.prefix}-ranker"

    @property
    def recommend_api(self) -> str:
        return f"{self.prefix}-recommend"

    @property
    def blender_parameter(self) -> str:
        """SSM parameter holding the blender's runtime rules (JSON), hot-reloaded by the recommend API."""
        return f"/{self.prefix}/blender/rules"

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
        batch_features=BatchFeatureConfig(
            processing=ProcessingConfig(instance_count=2, instance_type="ml.m5.2xlarge"),
        ),
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
