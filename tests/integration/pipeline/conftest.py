"""The synthesized daily pipeline, ready to run in moto's Step Functions interpreter (see substitution.py)."""

from __future__ import annotations

import gzip
import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # substitution.py

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from substitution import default_token, resolve_definition, substitute_tasks  # noqa: E402

from recsys import aws  # noqa: E402
from recsys.config import LOCAL_ACCOUNT, StageConfig, load_stage  # noqa: E402
from recsys.pipeline.aws_steps import StepSettings  # noqa: E402
from tests.delivery import receive  # noqa: E402

# The stage config the tests synthesize: dev, with 1 s between retries so a retried failure takes seconds.
RETRY_INTERVAL_S = 1
TRAINING_IMAGE = f"{LOCAL_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/recsys-training:test"
INFERENCE_IMAGE = f"{LOCAL_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/recsys-ranker:test"
MODEL_ROLE = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/recsys-dev-ranker-model"


@pytest.fixture(scope="session")
def pipeline_config() -> StageConfig:
    config = load_stage("dev")
    return replace(config, pipeline=replace(config.pipeline, retry_interval_s=RETRY_INTERVAL_S))


@pytest.fixture(scope="session")
def pipeline_template(pipeline_config: StageConfig) -> dict[str, Any]:
    """The pipeline stack's template, synthesized as app.py builds it (cdk-nag runs in tests/infra)."""
    from aws_cdk import App
    from aws_cdk.assertions import Template

    from stacks.platform import FEATURE_FLAGS, build_platform

    saved = {name: os.environ.pop(name, None) for name in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")}
    try:
        platform = build_platform(App(context=FEATURE_FLAGS), pipeline_config)
        return Template.from_stack(platform.pipeline).to_json()
    finally:
        os.environ.update({name: value for name, value in saved.items() if value is not None})


@dataclass
class PipelineUnderTest:
    config: StageConfig
    settings: StepSettings
    state_machine_arn: str
    worker_queue: str
    substituted: list[str]
    definition: dict[str, Any]
    pipeline_topic_queue: str
    alarm_topic_queue: str

    def messages(self, queue_url: str, expected: int) -> list[dict[str, Any]]:
        """SNS notifications received on a watch queue, their Message parsed: `expected` of them within the
        deadline, or (0) none within a second."""
        found = receive(queue_url, expected, settle_s=1.0 if expected == 0 else 0.5)
        return [{**json.loads(m["Body"]), "Message": json.loads(json.loads(m["Body"])["Message"])} for m in found]


def _watch(topic_arn: str, name: str) -> str:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=arn)
    return url


@pytest.fixture
def pipeline(local_resources, pipeline_config: StageConfig, pipeline_template) -> PipelineUnderTest:
    """The substituted definition as a state machine on moto, the lake with a few days of events, the topics
    with watch queues, and the model package group."""
    names = pipeline_config.names
    sqs, sns = aws.client("sqs"), aws.client("sns")
    pipeline_topic = sns.create_topic(Name=names.pipeline_topic)["TopicArn"]

    def token(value: dict[str, Any]) -> str:
        ref = value.get("Ref", "")
        if ref.startswith("PipelineTopic"):
            return pipeline_topic
        if "AlarmTopic" in value.get("Fn::ImportValue", ""):
            return local_resources.alarm_topic_arn
        return default_token(value)

    worker_queue = sqs.create_queue(QueueName="pipeline-substituted-tasks")["QueueUrl"]
    definition, substituted = substitute_tasks(resolve_definition(pipeline_template, token), worker_queue)
    machine = aws.client("stepfunctions").create_state_machine(
        name=names.state_machine,
        definition=json.dumps(definition),
        # The target's own account: LocalStack runs a state machine's SDK tasks as its role, in the role's account.
        roleArn=f"arn:aws:iam::{aws.account_id()}:role/pipeline-test",
    )["stateMachineArn"]

    s3 = aws.client("s3")
    for day in ("2024-02-27", "2024-02-28"):
        s3.put_object(Bucket=local_resources.lake_bucket, Key=f"events/event_date={day}/part-0.jsonl.gz",
                      Body=gzip.compress(b'{"event_id": "e"}\n'))
    s3.put_object(Bucket=local_resources.lake_bucket, Key="datasets/items/import_id=20240101/items.csv.gz",
                  Body=gzip.compress(b"ITEM_ID\ni1\n"))
    aws.client("sagemaker").create_model_package_group(ModelPackageGroupName=names.model_package_group)
    settings = StepSettings(
        config=pipeline_config,
        lake_bucket=local_resources.lake_bucket,
        artifacts_bucket=local_resources.artifacts_bucket,
        kms_key_arn=local_resources.kms_key_arn,
        training_image=TRAINING_IMAGE,
        inference_image=INFERENCE_IMAGE,
        model_role_arn=MODEL_ROLE,
    )
    return PipelineUnderTest(
        config=pipeline_config,
        settings=settings,
        state_machine_arn=machine,
        worker_queue=worker_queue,
        substituted=substituted,
        definition=definition,
        pipeline_topic_queue=_watch(pipeline_topic, "watch-pipeline-topic"),
        alarm_topic_queue=_watch(local_resources.alarm_topic_arn, "watch-oncall-topic"),
    )
