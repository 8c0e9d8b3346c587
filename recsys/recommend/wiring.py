"""Building the recommender from explicit settings (`build_recommender`) or from the Lambda environment.

Environment of the Lambda (`recommender_from_env`):
- RECSYS_MODEL_DIR: the model bundle (`recsys.ranking.bundle`) directory, or RECSYS_MODEL_URI: an S3 URI of
  the bundle's `model.tar.gz`, unpacked once into /tmp;
- ENDPOINT_NAME: the SageMaker endpoint (default `StageConfig.names.endpoint`), or RECSYS_SCORING_URL: a local
  inference server (`http://host:port`, or `champion=http://...,challenger=http://...` per variant);
- RECSYS_REDIS_URL or MEMORYDB_*: the feature store (`recsys.store.redis_from_env`);
- RECSYS_FEATURE_STORE: `sagemaker` (SageMaker Feature Store online reads) or `local` (the Redis stand-in, the
  default when RECSYS_REDIS_URL is set);
- EVENTS_TOPIC_ARN / FIREHOSE_STREAM_NAME: where impression events go (the event tracker's sinks);
- BLENDER_PARAMETER: the SSM parameter of the blender rules (default `StageConfig.names.blender_parameter`);
- RECOMMEND_VARIANT_WEIGHTS: `champion=0.5,challenger=0.5` overrides `RecommendConfig.variant_weights`.
"""

from __future__ import annotations

import json
import os
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import redis
from botocore.exceptions import BotoCoreError, ClientError

from recsys import aws
from recsys.batch.feature_store import (
    FeatureStore,
    FeatureStoreError,
    LocalFeatureStore,
    SageMakerFeatureStore,
    feature_group,
    feature_groups,
)
from recsys.blender import HotReloadingConfig
from recsys.config import RecommendConfig, StageConfig
from recsys.features import FeatureReader
from recsys.filters import FilterRegistry
from recsys.models.bundle import CandidateModels
from recsys.monitoring.showcase_health import SnapshotStore
from recsys.ranking.bundle import BUNDLE_FILE, CANDIDATES_DIR
from recsys.ranking.features import FeatureSchema
from recsys.recommend.api import RecommendApi
from recsys.recommend.breaker import CircuitBreaker
from recsys.recommend.scoring import GuardedScorer, HttpScorer, SageMakerScorer, Scorer
from recsys.recommend.service import FEATURE_STORE, REDIS, Backends, Recommender
from recsys.recommend.stores import EditorBoosts, ImpressionStore, RedisFilterStore, redis_item_metadata
from recsys.recommend.telemetry import record_response
from recsys.tracker.sinks import EventSink, SnsEventPublisher, archive_for

STORE_ERRORS: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, BotoCoreError, ClientError,
                                                  FeatureStoreError, OSError)
MODEL_CACHE = Path("/tmp/recsys-model")


@dataclass(frozen=True)
class ServingModel:
    candidates: CandidateModels
    schema: FeatureSchema
    version: str


def load_serving_model(model_dir: str | Path) -> ServingModel:
    """The candidate models and feature schema of a bundle (the rankers stay on the endpoint)."""
    model_dir = Path(model_dir)
    document = json.loads((model_dir / BUNDLE_FILE).read_text())
    return ServingModel(CandidateModels.load(model_dir / CANDIDATES_DIR), FeatureSchema.from_dict(document["schema"]),
                        document["version"])


def fetch_model(uri: str, into: Path = MODEL_CACHE) -> Path:
    """Download and unpack `s3://.../model.tar.gz` once per execution environment."""
    if (into / BUNDLE_FILE).exists():
        return into
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    into.mkdir(parents=True, exist_ok=True)
    archive = into.with_suffix(".tar.gz")
    aws.client("s3").download_file(bucket, key, str(archive))
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def parse_variant_urls(text: str) -> dict[str, str] | str:
    """`http://h:p` (every variant) or `champion=http://h:p,challenger=http://h:q`."""
    if "=" not in text:
        return text
    urls = {}
    for part in text.split(","):
        variant, separator, url = part.partition("=")
        if not separator or not variant.strip() or not url.strip():
            raise ValueError(f"RECSYS_SCORING_URL: expected variant=url pairs, got {part!r}")
        urls[variant.strip()] = url.strip()
    return urls


def parse_weights(text: str) -> tuple[tuple[str, float], ...]:
    weights = []
    for part in text.split(","):
        variant, separator, weight = part.partition("=")
        try:
            weights.append((variant.strip(), float(weight)))
        except ValueError:
            separator = ""
        if not separator or not variant.strip():
            raise ValueError(f"RECOMMEND_VARIANT_WEIGHTS: expected variant=weight pairs, got {part!r}")
    return tuple(weights)


def endpoint_weights(stage: StageConfig) -> tuple[tuple[str, float], ...]:
    """The endpoint's production variants and their weights."""
    return tuple((name, variant.weight) for name, variant in stage.serving.variants)


def build_recommender(stage: StageConfig, model: ServingModel, scorer: Scorer, *, redis_client: Any | None,
                      feature_store: FeatureStore | None = None, sinks: tuple[EventSink, ...] = (),
                      blender_loader: Any = None, config: RecommendConfig | None = None, background: bool = False,
                      on_response: Any = None) -> Recommender:
    """The recommender over explicit adapters; `redis_client` None runs without the real-time store."""
    config = config or stage.recommend
    if not config.variant_weights:
        config = replace(config, variant_weights=endpoint_weights(stage))
    names = stage.names
    guarded = GuardedScorer(scorer, config.endpoint_timeout_ms / 1000.0,
                            CircuitBreaker(config.breaker_failures, config.breaker_reset_s))
    blender = HotReloadingConfig(blender_loader or (lambda: {}), config.blender_reload_s)
    breakers = {store: CircuitBreaker(config.store_breaker_failures, config.store_breaker_reset_s)
                for store in (REDIS, FEATURE_STORE)}
    backends = Backends(scorer=guarded, sinks=sinks, store_errors=STORE_ERRORS, breakers=breakers,
                        rules_current=lambda: blender.last_error is None)
    if redis_client is not None:
        backends.reader = FeatureReader(redis_client, stage.pit_features)
        backends.item_metadata = redis_item_metadata(redis_client)
        backends.impressions = ImpressionStore(redis_client, stage.prefix, config.impression_ttl_s,
                                               config.impressions_per_item)
        backends.boosts = EditorBoosts(redis_client, f"{stage.prefix}:blender:boosts", config.blender_reload_s)
        backends.snapshots = SnapshotStore(redis_client, stage.prefix, stage.monitoring.showcase.snapshot_ttl_days)
        registry = FilterRegistry(RedisFilterStore(redis_client, f"{stage.prefix}:filters"))
    else:
        registry = FilterRegistry()
    if feature_store is not None:
        user_group, item_group = feature_group("user", names).name, feature_group("item", names).name
        backends.user_features = lambda user_id: feature_store.get_record(user_group, user_id)
        backends.item_features = lambda item_ids: feature_store.batch_get(item_group, item_ids)
    return Recommender(model.candidates, model.schema, config, blender.get, registry, backends,
                       model_version=model.version, background=background,
                       on_response=on_response or (lambda stats: None))


def ssm_parameter_loader(name: str, timeout_s: float = 1.0):
    """Reads the blender rules; on the request path, so a stalled SSM costs one read `timeout_s`, not a retry
    series (the last good rules serve meanwhile, and answers say so)."""

    def load() -> str:
        ssm = aws.client("ssm", connect_timeout=timeout_s, read_timeout=timeout_s, max_attempts=1)
        return ssm.get_parameter(Name=name)["Parameter"]["Value"]

    return load


def recommender_from_env(stage: StageConfig, metrics: Any = None) -> Recommender:
    from recsys.store import redis_from_env

    config = stage.recommend
    if os.environ.get("RECOMMEND_VARIANT_WEIGHTS"):
        config = replace(config, variant_weights=parse_weights(os.environ["RECOMMEND_VARIANT_WEIGHTS"]))
    if os.environ.get("RECSYS_MODEL_DIR"):
        model_dir = Path(os.environ["RECSYS_MODEL_DIR"])
    elif os.environ.get("RECSYS_MODEL_URI"):
        model_dir = fetch_model(os.environ["RECSYS_MODEL_URI"])
    else:
        raise RuntimeError("RECSYS_MODEL_DIR or RECSYS_MODEL_URI must name the model bundle")
    timeout_s = config.endpoint_timeout_ms / 1000.0
    scorer: Scorer
    if os.environ.get("RECSYS_SCORING_URL"):
        scorer = HttpScorer(parse_variant_urls(os.environ["RECSYS_SCORING_URL"]), timeout_s)
    else:
        runtime = aws.client("sagemaker-runtime", connect_timeout=timeout_s, read_timeout=timeout_s)
        scorer = SageMakerScorer(os.environ.get("ENDPOINT_NAME") or stage.names.endpoint, runtime)
    client = redis_from_env(timeout_s=config.store_timeout_ms / 1000.0, retries=1)
    kind = os.environ.get("RECSYS_FEATURE_STORE") or ("local" if os.environ.get("RECSYS_REDIS_URL") else "sagemaker")
    groups = feature_groups(stage.names)
    feature_store = LocalFeatureStore(client, groups) if kind == "local" else SageMakerFeatureStore(groups)
    sinks: list[EventSink] = []
    if os.environ.get("EVENTS_TOPIC_ARN"):
        sinks.append(SnsEventPublisher(os.environ["EVENTS_TOPIC_ARN"]))
    if os.environ.get("FIREHOSE_STREAM_NAME"):
        sinks.append(archive_for(os.environ["FIREHOSE_STREAM_NAME"]))
    parameter = os.environ.get("BLENDER_PARAMETER") or stage.names.blender_parameter
    on_response = (lambda stats: record_response(metrics, stats)) if metrics is not None else None
    return build_recommender(stage, load_serving_model(model_dir), scorer, redis_client=client,
                             feature_store=feature_store, sinks=tuple(sinks),
                             blender_loader=ssm_parameter_loader(parameter), config=config, on_response=on_response)


def recommend_api_from_env(stage: StageConfig, metrics: Any = None) -> RecommendApi:
    recommender = recommender_from_env(stage, metrics)
    return RecommendApi(recommender)
