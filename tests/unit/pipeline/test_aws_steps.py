"""The Lambda steps (recsys.pipeline.aws_steps) against the moto server: S3, SageMaker models and endpoints."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from recsys import aws
from recsys.config import CHALLENGER_VARIANT, CHAMPION_VARIANT, LOCAL_ACCOUNT
from recsys.pipeline import aws_steps
from recsys.pipeline.aws_steps import StepSettings, TransientError, transient_errors
from recsys.pipeline.registry import MODEL_PACKAGE_TAG
from recsys.pipeline.run import PipelineInputError

IMAGE = f"{LOCAL_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/recsys-ranker:1"
ROLE = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/ranker-model"


@pytest.fixture
def settings(local_resources, stage_config) -> StepSettings:
    aws.client("sagemaker").create_model_package_group(ModelPackageGroupName=stage_config.names.model_package_group)
    return StepSettings(config=stage_config, lake_bucket=local_resources.lake_bucket,
                        artifacts_bucket=local_resources.artifacts_bucket, kms_key_arn=local_resources.kms_key_arn,
                        training_image=IMAGE.replace("ranker", "training"), inference_image=IMAGE,
                        model_role_arn=ROLE)


def _put(bucket: str, key: str, body: bytes = b"x") -> None:
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body)


def _get(uri: str) -> bytes:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def _plan(settings: StepSettings, execution: str = "exec-1") -> dict[str, Any]:
    _put(settings.lake_bucket, "events/event_date=2024-02-28/part.jsonl.gz", gzip.compress(b"{}\n"))
    return aws_steps.validate_input({"input": {"cutoff": "2024-03-01"}, "execution": execution,
                                     "started_at": "2024-03-01T22:00:00Z"}, settings)


def report(ndcg: float, popularity: float = 0.05, auc: float = 0.8) -> bytes:
    return json.dumps({"ranking": {"pipeline": {"@10": {"ndcg": ndcg}}, "popularity": {"@10": {"ndcg": popularity}}},
                       "classification": {"pctr": {"auc": auc}}}).encode()


def test_validate_input_writes_the_manifest_of_the_window(settings: StepSettings) -> None:
    _put(settings.lake_bucket, "events/event_date=2023-01-01/old.jsonl.gz")
    _put(settings.lake_bucket, "datasets/items/import_id=1/items.csv.gz")
    run = _plan(settings)
    manifest = json.loads(_get(run["interactions_manifest"]))
    assert manifest == [{"prefix": f"s3://{settings.lake_bucket}/"}, "events/event_date=2024-02-28/part.jsonl.gz",
                        "datasets/items/import_id=1/items.csv.gz"]
    assert run["input_objects"] == 2


def test_validate_input_refuses_a_non_object_input(settings: StepSettings) -> None:
    with pytest.raises(PipelineInputError, match="input: expected a JSON object, got list"):
        aws_steps.validate_input({"input": [1], "execution": "e", "started_at": "2024-03-01T00:00:00Z"}, settings)


def _gate(settings: StepSettings, run: dict[str, Any], ndcg: float) -> dict[str, Any]:
    bucket, _, key = run["evaluation_report"].removeprefix("s3://").partition("/")
    _put(bucket, key, report(ndcg))
    return aws_steps.quality_gate({"run": run}, settings)


def _train(settings: StepSettings, run: dict[str, Any]) -> str:
    uri = f"{run['model_output']}{run['jobs']['train']}/output/model.tar.gz"
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    _put(bucket, key, f"bundle of {run['run_id']}".encode())
    return uri


def _release(settings: StepSettings, execution: str, ndcg: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """One run through the Lambda steps after training: gate, register, and the plan's first half."""
    run = _plan(settings, execution)
    gate = _gate(settings, run, ndcg)
    model_data = _train(settings, run)
    registration = aws_steps.register_model({"run": run, "gate": gate, "model_data": model_data}, settings)
    return run, {"gate": gate, "registration": registration, "model_data": model_data}


def test_first_release_registers_the_package_and_creates_the_endpoint(settings: StepSettings) -> None:
    names = settings.config.names
    run, done = _release(settings, "exec-1", ndcg=0.12)
    assert done["gate"]["passed"] is True and done["gate"]["champion"] is None
    sagemaker = aws.client("sagemaker")
    package = sagemaker.describe_model_package(ModelPackageName=done["registration"]["model_package_arn"])
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["CustomerMetadataProperties"]["ndcg"] == "0.12"
    assert package["InferenceSpecification"]["Containers"][0] == {"Image": IMAGE, "ModelDataUrl": done["model_data"]}

    deployment = aws_steps.deploy({"run": run, "model_package": done["registration"]["model_package_arn"],
                                   "model_data": done["model_data"]}, settings)
    assert deployment["action"] == "create"
    endpoint = sagemaker.describe_endpoint(EndpointName=names.endpoint)
    assert endpoint["EndpointConfigName"] == run["endpoint_config"]
    model = sagemaker.describe_model(ModelName=run["model_name"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == done["model_data"]
    assert (model["ExecutionRoleArn"], model["PrimaryContainer"]["Image"]) == (ROLE, IMAGE)
    tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=model["ModelArn"])["Tags"]}
    assert tags[MODEL_PACKAGE_TAG] == done["registration"]["model_package_arn"]
    # The variant's live key, which the serving stack's own EndpointConfig reads.
    live = f"s3://{settings.artifacts_bucket}/{settings.config.serving.live_model_key(CHAMPION_VARIANT)}"
    assert _get(live) == f"bundle of {run['run_id']}".encode()
    # The next gate compares with this champion's registered figures.
    assert aws_steps.champion_metrics(names.endpoint).ndcg == pytest.approx(0.12)


class RecordingUpdate:
    """moto has no UpdateEndpoint: every other call goes to moto, UpdateEndpoint is recorded."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.updates: list[dict[str, Any]] = []

    def update_endpoint(self, **request: Any) -> dict[str, Any]:
        self.updates.append(request)
        return {"EndpointArn": "arn"}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_next_release_keeps_the_champion_and_adds_the_challenger(settings: StepSettings, monkeypatch) -> None:
    first, done = _release(settings, "exec-1", ndcg=0.12)
    aws_steps.deploy({"run": first, "model_package": done["registration"]["model_package_arn"],
                      "model_data": done["model_data"]}, settings)
    second, done2 = _release(settings, "exec-2", ndcg=0.121)
    assert done2["gate"]["champion"]["ndcg"] == pytest.approx(0.12)

    recording = RecordingUpdate(aws.client("sagemaker"))
    real_client = aws.client
    monkeypatch.setattr(aws_steps.aws, "client",
                        lambda service, **kw: recording if service == "sagemaker" else real_client(service, **kw))
    deployment = aws_steps.deploy({"run": second, "model_package": done2["registration"]["model_package_arn"],
                                   "model_data": done2["model_data"]}, settings)
    assert recording.updates == [{"EndpointName": settings.config.names.endpoint,
                                  "EndpointConfigName": second["endpoint_config"]}]
    weight = settings.config.pipeline.challenger_weight
    variants = recording.describe_endpoint_config(EndpointConfigName=second["endpoint_config"])["ProductionVariants"]
    assert [(v["VariantName"], v["ModelName"], v["InitialVariantWeight"]) for v in variants] == [
        (CHAMPION_VARIANT, first["model_name"], pytest.approx(1 - weight)),
        (CHALLENGER_VARIANT, second["model_name"], pytest.approx(weight)),
    ]
    # The challenger is built from the champion's definition with the new artifact.
    model = recording.describe_model(ModelName=second["model_name"])
    assert model["PrimaryContainer"]["ModelDataUrl"] == done2["model_data"]
    assert deployment["action"] == "update"
    live = f"s3://{settings.artifacts_bucket}/{settings.config.serving.live_model_key(CHALLENGER_VARIANT)}"
    assert _get(live) == f"bundle of {second['run_id']}".encode()


def test_a_drop_below_the_champion_fails_the_gate(settings: StepSettings) -> None:
    first, done = _release(settings, "exec-1", ndcg=0.12)
    aws_steps.deploy({"run": first, "model_package": done["registration"]["model_package_arn"],
                      "model_data": done["model_data"]}, settings)
    gate = _gate(settings, _plan(settings, "exec-2"), ndcg=0.10)
    assert gate["passed"] is False
    assert any("below the champion" in reason for reason in gate["reasons"])


def test_throttling_becomes_a_transient_error_and_other_errors_pass_through() -> None:
    def failing(code: str):
        @transient_errors
        def call():
            raise ClientError({"Error": {"Code": code, "Message": "m"}}, "Op")
        return call

    with pytest.raises(TransientError):
        failing("ThrottlingException")()
    with pytest.raises(ClientError):
        failing("ValidationException")()


def test_settings_name_the_missing_environment() -> None:
    with pytest.raises(RuntimeError, match="LAKE_BUCKET, ARTIFACTS_BUCKET not set"):
        StepSettings.from_environment({})
    settings = StepSettings.from_environment({"LAKE_BUCKET": "l", "ARTIFACTS_BUCKET": "a", "MODEL_SUBNETS": "s1,s2"})
    assert settings.model_subnets == ("s1", "s2")
