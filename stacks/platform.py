"""The whole platform as one CDK app: every stack, built from one `StageConfig`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from aws_cdk import App, Environment, Tags

from recsys.config import PROJECT, StageConfig, load_stage
from stacks.batch import BatchStack
from stacks.foundation import FoundationStack
from stacks.monitoring import MonitoringStack
from stacks.nag import enable_nag
from stacks.network import NetworkStack
from stacks.pipeline import PipelineStack
from stacks.realtime import RealtimeStack
from stacks.recommend import RecommendStack
from stacks.serving import ServingStack

# CDK feature flags the platform relies on; set in code so that tests and `cdk synth` build the same app.
FEATURE_FLAGS: dict[str, Any] = {
    # Grant S3 log delivery through the access-logs bucket's policy, not ACLs (ACLs are disabled everywhere).
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    # Exports stay protected from deletion while another stack imports them (CDK's current default, made explicit).
    "@aws-cdk/core:defaultCrossStackReferences": "strong",
}


@dataclass(frozen=True)
class Platform:
    config: StageConfig
    foundation: FoundationStack
    network: NetworkStack
    realtime: RealtimeStack
    monitoring: MonitoringStack
    batch: BatchStack
    serving: ServingStack
    recommend: RecommendStack
    pipeline: PipelineStack


def config_from_context(app: App) -> StageConfig:
    """The stage named by `-c stage=dev|prod` (cdk.json defaults it to dev), plus `-c alarm_emails=a@x,b@y`."""
    config = load_stage(app.node.try_get_context("stage") or None)
    emails = app.node.try_get_context("alarm_emails")
    if emails:
        extra = tuple(email.strip() for email in str(emails).split(",") if email.strip())
        config = replace(config, alarm_emails=config.alarm_emails + extra)
    return config


def environment() -> Environment:
    """The account and region the CDK CLI resolved, if any: without credentials the stacks stay env-agnostic."""
    return Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"))


def build_platform(app: App, config: StageConfig) -> Platform:
    env = environment()
    prefix = config.prefix
    common: dict[str, Any] = dict(env=env, termination_protection=config.retain_data)
    foundation = FoundationStack(
        app,
        f"{prefix}-foundation",
        config=config,
        description=f"{prefix}: KMS key, S3 buckets, on-call topic",
        **common,
    )
    network = NetworkStack(
        app,
        f"{prefix}-network",
        config=config,
        key=foundation.key,
        description=f"{prefix}: VPC, endpoints, flow logs",
        **common,
    )
    batch = BatchStack(
        app,
        f"{prefix}-batch",
        config=config,
        key=foundation.key,
        description=f"{prefix}: Firehose -> S3 data lake, Glue catalog, Feature Store groups",
        **common,
    )
    realtime = RealtimeStack(
        app,
        f"{prefix}-realtime",
        config=config,
        network=network,
        key=foundation.key,
        alarm_topic=foundation.alarm_topic,
        description=f"{prefix}: event tracker API, SNS -> SQS -> feature writer, MemoryDB",
        **common,
    )
    realtime.add_stack_dependency(batch, "the tracker sends every event to the lake's stream, by name")
    serving = ServingStack(
        app,
        f"{prefix}-serving",
        config=config,
        network=network,
        key=foundation.key,
        alarm_topic=foundation.alarm_topic,
        description=f"{prefix}: ranker inference image, SageMaker endpoint (champion/challenger), autoscaling, alarms",
        **common,
    )
    recommend = RecommendStack(
        app,
        f"{prefix}-recommend",
        config=config,
        network=network,
        realtime=realtime,
        key=foundation.key,
        description=f"{prefix}: recommend API (SigV4) and Lambda, blender rules parameter",
        **common,
    )
    # Referenced by name only: the Lambda scores on the endpoint and reads the Feature Store groups.
    recommend.add_stack_dependency(serving, "scores on the ranker endpoint")
    recommend.add_stack_dependency(batch, "reads the Feature Store groups, logs exposures to the lake's stream")
    monitoring = MonitoringStack(
        app,
        f"{prefix}-monitoring",
        config=config,
        key=foundation.key,
        alarm_topic=foundation.alarm_topic,
        network=network,
        feature_store_endpoint=realtime.feature_store.endpoint,
        description=f"{prefix}: on-call dashboard, alarms, scheduled drift / A/B / showcase-health jobs",
        **common,
    )
    pipeline = PipelineStack(
        app,
        f"{prefix}-pipeline",
        config=config,
        key=foundation.key,
        alarm_topic=foundation.alarm_topic,
        network=network,
        serving=serving,
        description=f"{prefix}: daily pipeline (Step Functions on an EventBridge schedule), model package group",
        **common,
    )
    Tags.of(app).add("project", PROJECT)
    Tags.of(app).add("stage", config.stage)
    return Platform(
        config=config, foundation=foundation, network=network, realtime=realtime, monitoring=monitoring, batch=batch,
        serving=serving, recommend=recommend, pipeline=pipeline,
    )


def create_app(
    *, outdir: str | None = None, context: Mapping[str, Any] | None = None, builtin_validation: bool = True
) -> tuple[App, Platform]:
    """The CDK app with every stack and cdk-nag registered; `app.synth()` writes the cloud assembly.

    `builtin_validation=False` skips CDK's own CloudFormation schema check, which costs seconds per synth; the
    infra tests turn it off because they run cfn-lint, the stricter check, on every template.
    """
    app = App(
        outdir=outdir,
        context={**FEATURE_FLAGS, **(context or {})},
        builtin_cloud_formation_validation=builtin_validation,
    )
    platform = build_platform(app, config_from_context(app))
    enable_nag(app)
    return app, platform
