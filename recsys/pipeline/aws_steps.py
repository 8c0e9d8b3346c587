"""The pipeline's Lambda steps against AWS: thin adapters over run.py, gate.py, registry.py and deploy.py.

Each function takes the state's payload and a `StepSettings` (read from the Lambda's environment) and returns
what the state machine stores. Throttling and other transient AWS errors are re-raised as `TransientError`,
which the state machine retries by name with the configured backoff; every other error fails the state and
goes to the failure path.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from recsys import aws
from recsys.config import StageConfig, load_stage
from recsys.events import EVENTS_PREFIX, ITEMS_PREFIX, USERS_PREFIX
from recsys.lake import listing
from recsys.monitoring.storage import split_s3
from recsys.pipeline.deploy import DeployPlan, champion_variant, endpoint_config_request, plan_deploy
from recsys.pipeline.gate import GateMetrics, decide
from recsys.pipeline.registry import (
    MODEL_PACKAGE_TAG,
    RUN_TAG,
    gate_metadata,
    metrics_from_metadata,
    model_package_request,
)
from recsys.pipeline.run import PipelineInputError, lake_manifest, plan_run

TRANSIENT_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
    "SlowDown", "ServiceUnavailable", "InternalError", "InternalFailure", "InternalServerError",
})
F = TypeVar("F", bound=Callable[..., Any])


class TransientError(RuntimeError):
    """A throttled or briefly unavailable AWS call; the state machine retries the step."""


def transient_errors(function: F) -> F:
    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in TRANSIENT_CODES:
                raise TransientError(str(exc)) from exc
            raise

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class StepSettings:
    config: StageConfig
    lake_bucket: str
    artifacts_bucket: str
    kms_key_arn: str | None = None
    training_image: str | None = None
    inference_image: str | None = None
    model_role_arn: str | None = None
    model_security_group: str | None = None
    model_subnets: tuple[str, ...] = ()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> "StepSettings":
        missing = [name for name in ("LAKE_BUCKET", "ARTIFACTS_BUCKET") if not environ.get(name)]
        if missing:
            raise RuntimeError(f"environment: {', '.join(missing)} not set")
        return cls(
            config=load_stage(environ.get("RECSYS_STAGE")),
            lake_bucket=environ["LAKE_BUCKET"],
            artifacts_bucket=environ["ARTIFACTS_BUCKET"],
            kms_key_arn=environ.get("KMS_KEY_ARN") or None,
            training_image=environ.get("TRAINING_IMAGE_URI") or None,
            inference_image=environ.get("INFERENCE_IMAGE_URI") or None,
            model_role_arn=environ.get("MODEL_ROLE_ARN") or None,
            model_security_group=environ.get("MODEL_SECURITY_GROUP") or None,
            model_subnets=tuple(s for s in environ.get("MODEL_SUBNETS", "").split(",") if s),
        )


# --- ValidateInput --------------------------------------------------------------------------------------------


@transient_errors
def validate_input(event: Mapping[str, Any], settings: StepSettings) -> dict[str, Any]:
    """The run plan; writes the lake manifest of the window. Bad input: PipelineInputError naming the field."""
    given = event.get("input")
    if given is not None and not isinstance(given, Mapping):
        raise PipelineInputError(f"input: expected a JSON object, got {type(given).__name__}")
    plan = plan_run(
        given,
        execution_name=str(event["execution"]),
        started_at=str(event["started_at"]),
        config=settings.config,
        lake_bucket=settings.lake_bucket,
        artifacts_bucket=settings.artifacts_bucket,
        training_image=settings.training_image or "",
    )
    keys = [key for prefix in (EVENTS_PREFIX, ITEMS_PREFIX, USERS_PREFIX)
            for key in listing.keys(settings.lake_bucket, f"{prefix}/")]
    manifest = lake_manifest(keys, lake_bucket=settings.lake_bucket, cutoff=plan.cutoff_epoch,
                             window_days=plan.window_days)
    bucket, key = split_s3(plan.interactions_manifest)
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode(),
                                ContentType="application/json")
    return {**plan.to_dict(), "input_objects": len(manifest) - 1}


# --- QualityGate ----------------------------------------------------------------------------------------------


def _describe_endpoint(name: str) -> dict[str, Any] | None:
    try:
        return aws.client("sagemaker").describe_endpoint(EndpointName=name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ValidationException" and "Could not find" in str(exc):
            return None
        raise


def _champion_model(endpoint_name: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str | None]:
    """(endpoint, endpoint config, champion model name); Nones when there is no endpoint yet."""
    endpoint = _describe_endpoint(endpoint_name)
    if endpoint is None:
        return None, None, None
    config = aws.client("sagemaker").describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    variants = config.get("ProductionVariants", [])
    return endpoint, config, (champion_variant(variants)["ModelName"] if variants else None)


def champion_metrics(endpoint_name: str) -> GateMetrics | None:
    """The figures the serving champion was registered with, or None (no endpoint, or a model not from the
    pipeline, e.g. the stack's initial one)."""
    sagemaker = aws.client("sagemaker")
    _, _, model_name = _champion_model(endpoint_name)
    if model_name is None:
        return None
    model_arn = sagemaker.describe_model(ModelName=model_name)["ModelArn"]
    tags = {tag["Key"]: tag["Value"] for tag in sagemaker.list_tags(ResourceArn=model_arn).get("Tags", [])}
    if MODEL_PACKAGE_TAG not in tags:
        return None
    package = sagemaker.describe_model_package(ModelPackageName=tags[MODEL_PACKAGE_TAG])
    return metrics_from_metadata(package.get("CustomerMetadataProperties"))


@transient_errors
def quality_gate(event: Mapping[str, Any], settings: StepSettings) -> dict[str, Any]:
    run = event["run"]
    bucket, key = split_s3(run["evaluation_report"])
    report = json.loads(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    gate = settings.config.pipeline.quality_gate
    decision = decide(GateMetrics.from_report(report, gate), champion_metrics(settings.config.names.endpoint), gate)
    return {**decision.to_dict(), "metadata": gate_metadata(decision.candidate, run["run_id"])}


# --- RegisterModel --------------------------------------------------------------------------------------------


@transient_errors
def register_model(event: Mapping[str, Any], settings: StepSettings) -> dict[str, Any]:
    if not settings.inference_image:
        raise RuntimeError("environment: INFERENCE_IMAGE_URI not set")
    request = model_package_request(
        group=settings.config.names.model_package_group,
        run=event["run"],
        model_data=str(event["model_data"]),
        image=settings.inference_image,
        candidate=event["gate"]["candidate"],
    )
    arn = aws.client("sagemaker").create_model_package(**request)["ModelPackageArn"]
    return {"model_package_arn": arn, "model_package_group": request["ModelPackageGroupName"]}


# --- Deploy ---------------------------------------------------------------------------------------------------


def _model_request(name: str, model_data: str, template: Mapping[str, Any] | None, settings: StepSettings,
                   tags: Mapping[str, str]) -> dict[str, Any]:
    """The new Model: the champion's definition (image, environment, role, VPC, isolation) with the new
    artifact; without a champion, the serving stack's image, role and VPC placement from the environment."""
    if template is not None:
        container = {k: v for k, v in template["PrimaryContainer"].items() if k in ("Image", "Environment", "Mode")}
        request: dict[str, Any] = {
            "ExecutionRoleArn": template["ExecutionRoleArn"],
            "EnableNetworkIsolation": bool(template.get("EnableNetworkIsolation", False)),
        }
        if template.get("VpcConfig"):
            request["VpcConfig"] = template["VpcConfig"]
    else:
        if not settings.inference_image or not settings.model_role_arn:
            raise RuntimeError("environment: INFERENCE_IMAGE_URI and MODEL_ROLE_ARN are needed to create the endpoint")
        container = {"Image": settings.inference_image, "Mode": "SingleModel"}
        request = {"ExecutionRoleArn": settings.model_role_arn, "EnableNetworkIsolation": True}
        if settings.model_security_group and settings.model_subnets:
            request["VpcConfig"] = {"SecurityGroupIds": [settings.model_security_group],
                                    "Subnets": list(settings.model_subnets)}
    return {
        "ModelName": name,
        "PrimaryContainer": {**container, "ModelDataUrl": model_data},
        **request,
        "Tags": [{"Key": key, "Value": value} for key, value in sorted(tags.items())],
    }


def _exists(call: Callable[[], Any]) -> bool:
    try:
        call()
        return True
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("ValidationException", "ResourceNotFound"):
            return False
        raise


@transient_errors
def deploy(event: Mapping[str, Any], settings: StepSettings) -> dict[str, Any]:
    """New Model + EndpointConfig (champion kept, new model as challenger), then UpdateEndpoint; CreateEndpoint
    when there is no endpoint yet. Safe to retry: every resource is named after the run."""
    sagemaker = aws.client("sagemaker")
    run = event["run"]
    names = settings.config.names
    endpoint, endpoint_config, champion_name = _champion_model(names.endpoint)
    template = sagemaker.describe_model(ModelName=champion_name) if champion_name else None
    tags = {MODEL_PACKAGE_TAG: str(event["model_package"]), RUN_TAG: str(run["run_id"])}
    challenger = settings.config.serving.challenger
    plan: DeployPlan = plan_deploy(
        endpoint,
        endpoint_config,
        new_model=run["model_name"],
        challenger_weight=settings.config.pipeline.challenger_weight,
        instance_type=challenger.instance_type,
        instance_count=challenger.initial_instance_count,
        kms_key_id=settings.kms_key_arn,
    )
    if not _exists(lambda: sagemaker.describe_model(ModelName=run["model_name"])):
        sagemaker.create_model(**_model_request(run["model_name"], str(event["model_data"]), template, settings, tags))
    config_name = run["endpoint_config"]
    if not _exists(lambda: sagemaker.describe_endpoint_config(EndpointConfigName=config_name)):
        sagemaker.create_endpoint_config(**endpoint_config_request(plan, config_name, {RUN_TAG: run["run_id"]}))
    if plan.action == "create":
        sagemaker.create_endpoint(EndpointName=names.endpoint, EndpointConfigName=config_name)
    else:
        sagemaker.update_endpoint(EndpointName=names.endpoint, EndpointConfigName=config_name)
    _publish_live_models(plan, str(event["model_data"]), template, settings)
    return {"endpoint": names.endpoint, "endpoint_config": config_name, **plan.to_dict()}


def _publish_live_models(plan: DeployPlan, model_data: str, champion: Mapping[str, Any] | None,
                         settings: StepSettings) -> None:
    """Copy each variant's artifact to its live key (ServingConfig.live_model_key), which the serving stack's
    own EndpointConfig reads: a later `cdk deploy` then serves the models the pipeline deployed."""
    s3 = aws.client("s3")
    serving = settings.config.serving
    sources = {plan.variants[-1].name: model_data}
    if champion is not None and len(plan.variants) > 1:
        sources[plan.variants[0].name] = champion["PrimaryContainer"].get("ModelDataUrl", "")
    for variant, source in sources.items():
        if not source.startswith("s3://"):
            continue
        bucket, key = split_s3(source)
        target = serving.live_model_key(variant)
        if (bucket, key) != (settings.artifacts_bucket, target):
            s3.copy_object(Bucket=settings.artifacts_bucket, Key=target, CopySource={"Bucket": bucket, "Key": key})
