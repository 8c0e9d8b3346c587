"""Typed per-stage configuration.

One source of truth for the CDK stacks (`app.py`) and the local platform
(`recsys.local`): resource names, sizes, limits and feature settings all come
from here, so that the local stand-ins are created with the same names and
settings the deployed platform has.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace

from recsys.inputs import MAX_ID_CHARS, MAX_PROPERTY_CHARS, MIN_TIME_S

PROJECT = "recsys"
STAGES = ("dev", "prod")
DEFAULT_STAGE = "dev"
# moto's fixed account (LocalStack's is 000000000000: recsys.local.localstack.LOCALSTACK_ACCOUNT); real deployments
# pass their own.
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
    # The default is the platform's earliest time (recsys.inputs), so history of any era can be replayed.
    max_clock_skew_s: int = 15 * 60
    min_sent_at_s: float = MIN_TIME_S
    max_metadata_records_per_call: int = 100
    throttle_rate_per_s: int = 1000
    throttle_burst: int = 2000
    function: LambdaConfig = field(default_factory=LambdaConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.max_id_chars <= MAX_ID_CHARS:
            raise ValueError(f"event_tracker.max_id_chars: must be 1..{MAX_ID_CHARS}, got {self.max_id_chars}")
        if not 1 <= self.max_property_value_chars <= MAX_PROPERTY_CHARS:
            raise ValueError(f"event_tracker.max_property_value_chars: must be 1..{MAX_PROPERTY_CHARS}")
        if self.min_sent_at_s < MIN_TIME_S:
            raise ValueError(f"event_tracker.min_sent_at_s: must be >= {MIN_TIME_S} (the platform's earliest time)")


@dataclass(frozen=True)
class MemoryDbConfig:
    node_type: str = "db.t4g.small"
    # item and creator records spread over at most recsys.features.layout.KEY_BUCKETS (64) shards; users over all
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
    # Item records the FeatureReader keeps across reads, dropped as the store announces their changes (about 500 bytes
    # each; recsys.features.item_cache); 0: no item cache.
    item_cache_entries: int = 100_000

    def __post_init__(self) -> None:
        positive = ("recent_items", "affinity_half_life_days", "creator_recent_days", "dedupe_ttl_days",
                    "affinity_max_entries")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"pit_features.{name}: must be > 0, got {getattr(self, name)!r}")
        for name in ("qualified_session_minutes", "creator_cache_s", "item_cache_entries"):
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
class FirehoseConfig:
    """The lake's delivery stream: tracker events -> transform Lambda -> S3, partitioned by event date.

    Read by stacks/constructs/firehose_to_lake.py and by the local stand-in (recsys/lake/local_firehose.py).
    """

    # Dynamic partitioning needs a 64-128 MiB buffer and no zero buffering; each event-date partition is written
    # as one object when either hint is reached.
    buffer_size_mb: int = 64
    buffer_interval_s: int = 60
    # The transform Lambda gets up to this much data per invocation, at least this often (Firehose: 0.2-3 MB).
    processor_buffer_size_mb: float = 1.0
    processor_buffer_interval_s: int = 60
    # Invocation retries before a batch's records go to the error prefix.
    processor_retries: int = 3
    # How long Firehose retries a failed delivery to an S3 prefix.
    s3_retry_s: int = 300
    log_retention_days: int = 30
    transform: LambdaConfig = field(default_factory=lambda: LambdaConfig(memory_mb=256, timeout_s=60))

    def __post_init__(self) -> None:
        if not 64 <= self.buffer_size_mb <= 128:
            raise ValueError(f"firehose.buffer_size_mb: dynamic partitioning needs 64..128, got {self.buffer_size_mb}")
        if not 0 < self.buffer_interval_s <= 900:
            raise ValueError(
                f"firehose.buffer_interval_s: must be 1..900 (dynamic partitioning has no zero buffering), "
                f"got {self.buffer_interval_s}"
            )
        if not 0.2 <= self.processor_buffer_size_mb <= 3:
            raise ValueError(f"firehose.processor_buffer_size_mb: must be 0.2..3, got {self.processor_buffer_size_mb}")
        if not 0 <= self.processor_buffer_interval_s <= 900:
            raise ValueError(
                f"firehose.processor_buffer_interval_s: must be 0..900, got {self.processor_buffer_interval_s}"
            )
        if not 0 <= self.processor_retries <= 300:
            raise ValueError(f"firehose.processor_retries: must be 0..300, got {self.processor_retries}")
        if not 0 <= self.s3_retry_s <= 7200:
            raise ValueError(f"firehose.s3_retry_s: must be 0..7200, got {self.s3_retry_s}")


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
class AlarmConfig:
    """Thresholds of the on-call alarms (stacks/monitoring.py; runbook in docs/monitoring.md).

    The drift and showcase alarms take their thresholds from DriftMonitorConfig and ShowcaseHealthConfig; the
    endpoint's per-variant alarms are the serving stack's (ServingAlarmConfig).
    """

    # Amp's target. Each API's alarm fires when its 5XX rate (API Gateway's 5XXError Average) exceeds 1 - SLO for
    # availability_evaluation_periods periods in a row; the composite availability alarm is the one that pages.
    availability_slo: float = 0.998
    availability_evaluation_periods: int = 3
    period_minutes: int = 5
    # Amp's end-to-end bar; the tracker only validates and publishes, so it gets less.
    recommend_p99_latency_ms: float = 200.0
    tracker_p99_latency_ms: float = 300.0
    # Oldest message in the feature queue: a backlog this old breaks the reflection-time promise.
    queue_max_age_s: int = 300
    feature_writer_errors: int = 1
    feature_writer_throttles: int = 1
    # Event published -> feature readable, p99 (our bar: 1 s).
    reflection_p99_ms: float = 1000.0
    memorydb_cpu_percent: float = 80.0
    memorydb_memory_percent: float = 80.0
    memorydb_replication_lag_s: float = 5.0
    # Firehose buffers up to firehose.buffer_interval_s (300 s in prod) before it writes; older than this is stuck.
    firehose_freshness_s: int = 900
    # Share of recommend responses served degraded (fallback ranking, open circuit).
    degraded_rate: float = 0.01
    failed_executions: int = 1
    failed_jobs: int = 1
    boost_cap_exceeded: int = 1

    def __post_init__(self) -> None:
        if not 0 < self.availability_slo < 1:
            raise ValueError(f"monitoring.alarms.availability_slo: must lie in (0, 1), got {self.availability_slo!r}")
        if not 0 < self.degraded_rate < 1:
            raise ValueError(f"monitoring.alarms.degraded_rate: must lie in (0, 1), got {self.degraded_rate!r}")
        if self.period_minutes not in (1, 5, 10, 15, 30, 60):
            raise ValueError(
                f"monitoring.alarms.period_minutes: one of 1, 5, 10, 15, 30, 60, got {self.period_minutes}")
        for name in ("availability_evaluation_periods", "recommend_p99_latency_ms", "tracker_p99_latency_ms",
                     "queue_max_age_s", "feature_writer_errors", "feature_writer_throttles", "reflection_p99_ms",
                     "memorydb_cpu_percent", "memorydb_memory_percent", "memorydb_replication_lag_s",
                     "firehose_freshness_s", "failed_executions", "failed_jobs", "boost_cap_exceeded"):
            if not getattr(self, name) > 0:
                raise ValueError(f"monitoring.alarms.{name}: must be > 0, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class MonitoringJobsConfig:
    """The SageMaker Processing jobs that run the drift, A/B and showcase jobs on their schedules."""

    instance_type: str = "ml.t3.medium"
    volume_size_gb: int = 10
    max_runtime_s: int = 1800
    # Where the jobs read and write (keys in the artifacts and lake buckets).
    drift_baseline_key: str = "models/ranker/latest/drift-baseline.json"
    # Scored rows ({"timestamp", "features", "prediction"} JSON lines) in the lake bucket, for the drift job. The A/B
    # job reads the lake's events: the recommend API logs its exposures there as impression events.
    served_rows_prefix: str = "served"
    reports_prefix: str = "monitoring/reports"
    promotions_prefix: str = "monitoring/promotions"
    log_retention_days: int = 90

    def __post_init__(self) -> None:
        if not 1 <= self.volume_size_gb <= 16384 or not 1 <= self.max_runtime_s <= 432000:
            raise ValueError("monitoring.jobs.volume_size_gb/max_runtime_s: must be 1..16384 GB / 1..432000 s")


@dataclass(frozen=True)
class MonitoringConfig:
    drift: DriftMonitorConfig = field(default_factory=DriftMonitorConfig)
    ab: ABTestConfig = field(default_factory=ABTestConfig)
    promotion: PromotionConfig = field(default_factory=PromotionConfig)
    showcase: ShowcaseHealthConfig = field(default_factory=ShowcaseHealthConfig)
    alarms: AlarmConfig = field(default_factory=AlarmConfig)
    jobs: MonitoringJobsConfig = field(default_factory=MonitoringJobsConfig)


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
    training_volume_gb: int = 30
    # The Evaluate step: the offline evaluation (recsys.evaluation) as a processing job in the training image.
    evaluation_instance_type: str = "ml.m5.xlarge"
    evaluation_max_runtime_s: int = 2 * 3600
    # The Lambda steps (ValidateInput, QualityGate, RegisterModel, Deploy) and the state machine's logs.
    step_function: LambdaConfig = field(default_factory=lambda: LambdaConfig(memory_mb=512, timeout_s=300))
    log_retention_days: int = 90
    # Share of traffic the challenger variant gets when a new model is deployed.
    challenger_weight: float = 0.1
    quality_gate: QualityGateConfig = field(default_factory=QualityGateConfig)

    def __post_init__(self) -> None:
        if not 0.0 < self.challenger_weight < 1.0:
            raise ValueError(f"pipeline.challenger_weight: {self.challenger_weight} must be in (0, 1)")
        if self.retry_attempts < 0 or self.retry_interval_s < 1 or self.retry_backoff < 1.0:
            raise ValueError("pipeline.retry_*: attempts >= 0, interval >= 1 s and backoff >= 1 are required")


@dataclass(frozen=True)
class RecommendConfig:
    """The recommend API's request flow (see recsys/recommend/README.md)."""

    # Candidate channels and how many items each proposes, in priority order (the first channel to offer an
    # item keeps it). exploit: affinity and item-to-item from the recent items; popular; trending; new.
    channel_quotas: tuple[tuple[str, int], ...] = (
        ("affinity", 150), ("cooccurrence", 150), ("embeddings", 100), ("ease", 150),
        ("popularity", 150), ("trending", 100), ("new", 50),
    )
    # Explore: this share of the pool is reserved for items younger than the cut-off (Personalize's
    # explorationWeight / explorationItemAgeCutOff); 0 switches exploration off.
    exploration_weight: float = 0.1
    exploration_item_age_cutoff_days: float = 30.0
    max_candidates: int = 1000
    # A list or shelf whose candidates the filter and the blender's rules thin out draws more, up to this many
    # items of the catalogue (its popularity ranking), before it is answered short (see the README).
    max_list_supply: int = 20_000
    default_num_results: int = 25
    max_num_results: int = 500
    max_rank_items: int = 1000  # items a personalized-ranking request may send
    # Scoring: a call slower than this is abandoned and the fallback ranking answers (degraded).
    endpoint_timeout_ms: int = 200
    # Circuit breaker: this many consecutive failures open it; after reset_s one trial call is let through
    # (and another every reset_s while it fails), so an endpoint that comes back serves within reset_s.
    breaker_failures: int = 5
    breaker_reset_s: float = 1.0
    # The stores (Redis / MemoryDB, the online Feature Store): a read slower than store_timeout_ms fails, and each
    # store has a breaker like the endpoint's, so that a stalled store costs a request nothing while it is open.
    store_timeout_ms: int = 150
    store_breaker_failures: int = 2
    store_breaker_reset_s: float = 1.0
    # Sticky A/B assignment of users to endpoint production variants (hash of user and experiment); empty: the
    # endpoint's own variants and weights (StageConfig.serving.variants), the one source of truth.
    experiment: str = "ranker"
    variant_weights: tuple[tuple[str, float], ...] = ()
    # Item metadata and batch features are kept in process this long; blender rules re-read this often.
    item_cache_ttl_s: float = 300.0
    blender_reload_s: float = 30.0
    # Per-user impression history kept for "not interested" (seconds) and impressions kept per item.
    impression_ttl_s: int = 30 * 86400
    impressions_per_item: int = 16
    # Shelves of the showcase built from the channels: shelf id -> channel ("exploit" = the ranked pool).
    showcase_shelves: tuple[tuple[str, str], ...] = (
        ("for_you", "exploit"), ("trending", "trending"), ("popular", "popularity"), ("new", "new"),
    )

    def __post_init__(self) -> None:
        if not 0 <= self.exploration_weight < 1:
            raise ValueError(f"recommend.exploration_weight: must lie in [0, 1), got {self.exploration_weight!r}")
        for name in ("exploration_item_age_cutoff_days", "max_candidates", "max_list_supply", "default_num_results",
                     "max_num_results",
                     "max_rank_items", "endpoint_timeout_ms", "breaker_failures", "breaker_reset_s",
                     "store_timeout_ms", "store_breaker_failures", "store_breaker_reset_s",
                     "impression_ttl_s", "impressions_per_item"):
            if not getattr(self, name) > 0:
                raise ValueError(f"recommend.{name}: must be > 0, got {getattr(self, name)!r}")
        if self.default_num_results > self.max_num_results:
            raise ValueError("recommend.default_num_results: must be <= max_num_results")
        for channel, quota in self.channel_quotas:
            if quota < 0:
                raise ValueError(f"recommend.channel_quotas[{channel!r}]: must be >= 0, got {quota!r}")
        weights = dict(self.variant_weights)
        if len(weights) != len(self.variant_weights):
            raise ValueError("recommend.variant_weights: one weight per variant")
        if weights and (any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0):
            raise ValueError("recommend.variant_weights: weights must be >= 0 with a positive sum")


@dataclass(frozen=True)
class VariantConfig:
    """One production variant of the ranking endpoint: its traffic weight, instances and autoscaling."""

    weight: float = 0.5
    instance_type: str = "ml.c5.large"
    initial_instance_count: int = 1
    min_instances: int = 1
    max_instances: int = 2
    # Target tracking on SageMakerVariantInvocationsPerInstance, a per-minute count per instance.
    target_invocations_per_instance: int = 3000
    scale_in_cooldown_s: int = 300
    scale_out_cooldown_s: int = 60
    # Which ranker of the model bundle the variant serves (RECSYS_RANKER); None: the bundle's default.
    ranker: str | None = None


@dataclass(frozen=True)
class ServingAlarmConfig:
    """Per-variant alarms of the ranking endpoint (see docs/infrastructure.md, serving)."""

    period_s: int = 60
    evaluation_periods: int = 5
    datapoints_to_alarm: int = 3
    # Invocation5XXErrors per period.
    errors_5xx: int = 5
    # p99 of ModelLatency per period (CloudWatch reports it in microseconds; the stack converts).
    model_latency_p99_ms: float = 50.0


# Nitro instances with local NVMe storage encrypt it in hardware and refuse an EndpointConfig KmsKeyId.
_LOCAL_STORAGE_FAMILY = re.compile(r"^ml\.[a-z]+\d+[a-z]*d[a-z]*\.")
_GRAVITON_FAMILY = re.compile(r"^ml\.[a-z]+\d+g[a-z]*\.")


@dataclass(frozen=True)
class ServingConfig:
    """The ranking endpoint: champion and challenger variants of one EndpointConfig, data capture, alarms."""

    champion: VariantConfig = field(default_factory=lambda: VariantConfig(weight=0.5))
    challenger: VariantConfig = field(default_factory=lambda: VariantConfig(weight=0.5, ranker="rf"))
    # Share of requests (and responses) SageMaker copies to the artifacts bucket under data_capture_prefix/.
    data_capture_percent: int = 20
    data_capture_prefix: str = "data-capture"
    # Model artifacts (model.tar.gz) live under this prefix of the artifacts bucket. The stack's EndpointConfig
    # serves each variant's live key (live_model_key): seeded with the bootstrap model by the first deploy
    # (recsys.live_models), then copied there by the daily pipeline after each UpdateEndpoint, so redeploying the
    # stack keeps the deployed models.
    model_prefix: str = "models"
    max_candidates: int = 2000
    log_retention_days: int = 30
    # The deploy-time function that seeds empty live keys with the bootstrap model (a copy per variant).
    seed_function: LambdaConfig = field(default_factory=lambda: LambdaConfig(memory_mb=256, timeout_s=60))
    alarms: ServingAlarmConfig = field(default_factory=ServingAlarmConfig)

    def __post_init__(self) -> None:
        for name, variant in self.variants:
            where = f"serving.{name}"
            if variant.weight < 0:
                raise ValueError(f"{where}.weight: must be >= 0, got {variant.weight!r}")
            if not 1 <= variant.min_instances <= variant.initial_instance_count <= variant.max_instances:
                raise ValueError(f"{where}: need 1 <= min_instances <= initial_instance_count <= max_instances")
            if variant.target_invocations_per_instance <= 0:
                raise ValueError(f"{where}.target_invocations_per_instance: must be > 0")
            if variant.scale_in_cooldown_s < 0 or variant.scale_out_cooldown_s < 0:
                raise ValueError(f"{where}.scale_in_cooldown_s/scale_out_cooldown_s: must be >= 0")
            if not variant.instance_type.startswith("ml."):
                raise ValueError(f"{where}.instance_type: {variant.instance_type!r} is not a SageMaker ml.* type")
            if _LOCAL_STORAGE_FAMILY.match(variant.instance_type):
                raise ValueError(
                    f"{where}.instance_type: {variant.instance_type!r} has local instance storage, which cannot "
                    "take the platform's KMS key; choose a type without local storage (e.g. ml.c5.large)"
                )
        if sum(variant.weight for _, variant in self.variants) <= 0:
            raise ValueError("serving.champion/challenger.weight: at least one weight must be > 0")
        if self.challenger.instance_type != self.champion.instance_type:
            # The daily pipeline deploys the challenger on the champion's type (recsys.pipeline.deploy), and
            # Application Auto Scaling refuses an UpdateEndpoint that changes a scaled variant's type.
            raise ValueError(
                f"serving.challenger.instance_type: {self.challenger.instance_type!r} must equal the champion's "
                f"({self.champion.instance_type!r}): daily deploys put the challenger on the champion's type"
            )
        if not 0 < self.data_capture_percent <= 100:
            raise ValueError(f"serving.data_capture_percent: must lie in 1..100, got {self.data_capture_percent!r}")
        if not self.model_prefix or self.model_prefix.strip("/") != self.model_prefix:
            raise ValueError(f"serving.model_prefix: needs a name, no leading/trailing '/': {self.model_prefix!r}")
        if self.alarms.errors_5xx < 1 or self.alarms.model_latency_p99_ms <= 0:
            raise ValueError("serving.alarms.errors_5xx/model_latency_p99_ms: must be >= 1 / > 0")
        if not 1 <= self.alarms.datapoints_to_alarm <= self.alarms.evaluation_periods:
            raise ValueError("serving.alarms.datapoints_to_alarm: must lie in 1..evaluation_periods")

    @property
    def variants(self) -> tuple[tuple[str, VariantConfig], ...]:
        """(stable variant name, settings), champion first."""
        return ((CHAMPION_VARIANT, self.champion), (CHALLENGER_VARIANT, self.challenger))

    def live_model_key(self, variant: str) -> str:
        """The artifacts-bucket key of the model `variant` serves now (see model_prefix)."""
        return f"{self.model_prefix}/live/{variant}/model.tar.gz"

    @property
    def image_platform(self) -> str:
        """The Docker platform of the inference image: Graviton (ml.*g.*) instances run arm64."""
        return "linux/arm64" if _GRAVITON_FAMILY.match(self.champion.instance_type) else "linux/amd64"


@dataclass(frozen=True)
class RecommendApiConfig:
    """The recommend API's front door and Lambda (the request flow itself is RecommendConfig)."""

    throttle_rate_per_s: int = 600
    throttle_burst: int = 1200
    function: LambdaConfig = field(default_factory=lambda: LambdaConfig(memory_mb=1769, timeout_s=10))
    # Batch recommendations run in one Lambda invocation: Lambda's 15-minute ceiling bounds a file's size.
    batch_function: LambdaConfig = field(default_factory=lambda: LambdaConfig(memory_mb=3008, timeout_s=900))
    # Where batch jobs read users and write recommendations, in the artifacts bucket.
    batch_prefix: str = "batch-recommendations/"

    def __post_init__(self) -> None:
        if not 0 < self.throttle_rate_per_s <= self.throttle_burst:
            raise ValueError("recommend_api.throttle_rate_per_s: must be > 0 and <= throttle_burst")


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
    firehose: FirehoseConfig = field(default_factory=FirehoseConfig)
    # Subscribed to the on-call alarm topic; `cdk deploy -c alarm_emails=a@x.com,b@y.com` adds more.
    alarm_emails: tuple[str, ...] = ()
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    recommend: RecommendConfig = field(default_factory=RecommendConfig)
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    serving: ServingConfig = field(default_factory=ServingConfig)
    recommend_api: RecommendApiConfig = field(default_factory=RecommendApiConfig)
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
    def monitoring_jobs_state_machine(self) -> str:
        """Runs the scheduled drift, A/B and showcase-health processing jobs."""
        return f"{self.prefix}-monitoring-jobs"

    @property
    def dashboard(self) -> str:
        """The on-call dashboard of the stage."""
        return f"{self.prefix}-oncall"

    @property
    def pipeline_topic(self) -> str:
        """The daily pipeline's outcome notifications (deployed / rejected by the quality gate)."""
        return f"{self.prefix}-pipeline"

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
        firehose=FirehoseConfig(buffer_size_mb=128, buffer_interval_s=300),
        serving=ServingConfig(
            champion=VariantConfig(weight=0.9, instance_type="ml.c5.xlarge", initial_instance_count=2,
                                   min_instances=2, max_instances=8),
            challenger=VariantConfig(weight=0.1, instance_type="ml.c5.xlarge", initial_instance_count=1,
                                     min_instances=1, max_instances=4, ranker="rf"),
            data_capture_percent=5,
            log_retention_days=90,
        ),
        recommend_api=RecommendApiConfig(throttle_rate_per_s=2000, throttle_burst=4000),
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
