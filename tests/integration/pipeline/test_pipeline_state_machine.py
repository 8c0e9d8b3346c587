"""Control flow of the synthesized daily pipeline, executed by moto's Step Functions interpreter.

SageMaker and Lambda tasks are substituted as substitution.py documents; the Lambda steps' answers come from
the real step code (recsys.pipeline.aws_steps) running against moto, the SageMaker jobs' from recorded outputs.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from substitution import Fail, Worker, entered_states

from recsys import aws
from recsys.config import CHAMPION_VARIANT
from recsys.pipeline import aws_steps
from recsys.pipeline.steps import PIPELINE_STEPS, Step

pytestmark = pytest.mark.timeout(180)

SAGEMAKER_STEPS = [Step.BATCH_FEATURES, Step.INGEST_FEATURES, Step.BUILD_TRAINING_SET, Step.TRAIN, Step.EVALUATE]
LAMBDA_STEPS = [Step.VALIDATE_INPUT, Step.QUALITY_GATE, Step.REGISTER_MODEL, Step.DEPLOY]
PASSING = {"ndcg": 0.12, "popularity": 0.05, "auc": 0.8}
FAILING = {"ndcg": 0.05, "popularity": 0.05, "auc": 0.8}  # no lift over popularity
CUTOFF = "2024-03-01"


def report(ndcg: float, popularity: float, auc: float) -> dict[str, Any]:
    return {"ranking": {"pipeline": {"@10": {"ndcg": ndcg}}, "popularity": {"@10": {"ndcg": popularity}}},
            "classification": {"pctr": {"auc": auc}}}


def _put(uri: str, body: bytes) -> None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    aws.client("s3").put_object(Bucket=bucket, Key=key, Body=body)


def responders(pipeline, metrics: dict[str, float]) -> dict[str, Any]:
    def processing(request: dict[str, Any]) -> dict[str, Any]:
        return {"ProcessingJobName": request["ProcessingJobName"], "ProcessingJobStatus": "Completed"}

    def evaluate(request: dict[str, Any]) -> dict[str, Any]:
        (output,) = request["ProcessingOutputConfig"]["Outputs"]
        _put(output["S3Output"]["S3Uri"] + "report.json", json.dumps(report(**metrics)).encode())
        return processing(request)

    def train(request: dict[str, Any]) -> dict[str, Any]:
        name = request["TrainingJobName"]
        artifact = f"{request['OutputDataConfig']['S3OutputPath']}{name}/output/model.tar.gz"
        _put(artifact, b"model bundle")
        return {"TrainingJobName": name, "TrainingJobStatus": "Completed",
                "ModelArtifacts": {"S3ModelArtifacts": artifact}}

    def step(function):
        return lambda request: function(request, pipeline.settings)

    return {
        Step.VALIDATE_INPUT: step(aws_steps.validate_input),
        Step.BATCH_FEATURES: processing,
        Step.INGEST_FEATURES: processing,
        Step.BUILD_TRAINING_SET: processing,
        Step.TRAIN: train,
        Step.EVALUATE: evaluate,
        Step.QUALITY_GATE: step(aws_steps.quality_gate),
        Step.REGISTER_MODEL: step(aws_steps.register_model),
        Step.DEPLOY: step(aws_steps.deploy),
    }


def run(pipeline, execution_input: dict[str, Any], *, metrics=PASSING,
        failures: dict[tuple[str, int], Fail] | None = None) -> tuple[dict[str, Any], Worker]:
    sfn = aws.client("stepfunctions")
    worker = Worker(aws.client("sqs"), sfn, pipeline.worker_queue, pipeline.definition, responders(pipeline, metrics),
                    failures or {})
    arn = sfn.start_execution(stateMachineArn=pipeline.state_machine_arn,
                              input=json.dumps(execution_input))["executionArn"]
    return worker.run(arn), worker


def test_only_sagemaker_and_lambda_tasks_are_substituted(pipeline) -> None:
    assert sorted(pipeline.substituted) == sorted(step.value for step in SAGEMAKER_STEPS + LAMBDA_STEPS)


def test_a_run_goes_through_every_step_and_deploys_the_new_model(pipeline) -> None:
    execution, worker = run(pipeline, {"cutoff": CUTOFF, "hyperparameters": {"default_ranker": "rf"}})
    assert execution["status"] == "SUCCEEDED", execution
    sfn = aws.client("stepfunctions")
    entered = entered_states(sfn, execution["executionArn"])
    steps = [step.value for step in PIPELINE_STEPS]
    assert [state for state in entered if state in steps] == steps
    assert entered.index("ModelPassedGate") == entered.index(Step.QUALITY_GATE.value) + 1

    output = json.loads(execution["output"])
    plan = output["run"]
    requests = {state: request for state, _, request in worker.calls}
    # The parameters the jobs would really get, evaluated by the interpreter from the run plan.
    features = requests[Step.BATCH_FEATURES.value]
    assert features["ProcessingJobName"] == plan["jobs"]["features"]
    args = features["AppSpecification"]["ContainerArguments"]
    assert args[args.index("--cutoff") + 1] == "2024-03-01T00:00:00Z"
    assert args[args.index("--mode") + 1] == "features"
    assert args[args.index("--window-days") + 1] == "60"
    training = requests[Step.TRAIN.value]
    assert training["HyperParameters"] == {"cutoff": "2024-02-23T00:00:00Z", "default_ranker": "rf"}
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"] for c in training["InputDataConfig"]}
    assert channels["train"]["S3Uri"] == plan["training_set"]
    assert plan["training_set"].endswith("/training/cutoff=20240223T000000Z/")
    assert channels["interactions"] == {"S3DataType": "ManifestFile", "S3Uri": plan["interactions_manifest"],
                                        "S3DataDistributionType": "FullyReplicated"}
    assert training["AlgorithmSpecification"]["TrainingImage"].endswith("recsys-training:test")

    # What the Lambda steps did against moto.
    sagemaker = aws.client("sagemaker")
    endpoint = sagemaker.describe_endpoint(EndpointName=pipeline.config.names.endpoint)
    assert endpoint["EndpointConfigName"] == plan["endpoint_config"]
    variants = sagemaker.describe_endpoint_config(EndpointConfigName=plan["endpoint_config"])["ProductionVariants"]
    assert [(v["VariantName"], v["ModelName"]) for v in variants] == [(CHAMPION_VARIANT, plan["model_name"])]
    (package,) = sagemaker.list_model_packages(ModelPackageGroupName=pipeline.config.names.model_package_group)[
        "ModelPackageSummaryList"]
    assert output["registration"]["model_package_arn"] == package["ModelPackageArn"]
    assert output["deployment"]["action"] == "create"

    (notification,) = pipeline.messages(pipeline.pipeline_topic_queue, 1)
    assert notification["Message"]["deployed"] is True and notification["Message"]["run"] == plan["run_id"]
    assert pipeline.messages(pipeline.alarm_topic_queue, 0) == []


@pytest.mark.parametrize(
    ("state", "error"),
    [(Step.TRAIN.value, "SageMaker.AmazonSageMakerException"), (Step.DEPLOY.value, "EndpointBusy")],
)
def test_a_transient_failure_is_retried_and_the_run_succeeds(pipeline, state: str, error: str) -> None:
    execution, worker = run(pipeline, {"cutoff": CUTOFF}, failures={(state, 0): Fail(error, "Rate exceeded")})
    assert execution["status"] == "SUCCEEDED", execution
    attempts = [attempt for called, attempt, _ in worker.calls if called == state]
    assert attempts == [0, 1]
    assert pipeline.messages(pipeline.alarm_topic_queue, 0) == []


def test_a_model_below_the_gate_is_not_registered_nor_deployed(pipeline) -> None:
    execution, worker = run(pipeline, {"cutoff": CUTOFF}, metrics=FAILING)
    assert execution["status"] == "SUCCEEDED", execution
    entered = entered_states(aws.client("stepfunctions"), execution["executionArn"])
    assert entered[-3:] == [Step.QUALITY_GATE.value, "ModelPassedGate", Step.NOTIFY.value]
    assert Step.REGISTER_MODEL.value not in worker.states_called()
    assert Step.DEPLOY.value not in worker.states_called()
    assert aws.client("sagemaker").list_endpoints()["Endpoints"] == []
    (notification,) = pipeline.messages(pipeline.pipeline_topic_queue, 1)
    assert notification["Message"]["deployed"] is False
    assert any("lift over popularity" in reason for reason in notification["Message"]["reasons"])


@pytest.mark.parametrize(
    ("execution_input", "failures", "failed_state", "attempts", "error"),
    [
        # The scheduled input on an empty window: ValidateInput's PipelineInputError is not retried.
        ({"source": "schedule"}, {}, Step.VALIDATE_INPUT.value, 1, "PipelineInputError"),
        # An error outside the retried ones (a failed job is States.TaskFailed in AWS, a name moto's SendTaskFailure
        # refuses to inject): not retried.
        ({"cutoff": CUTOFF},
         {(Step.BUILD_TRAINING_SET.value, 0): Fail("SageMaker.ResourceLimitExceededException", "no instances")},
         Step.BUILD_TRAINING_SET.value, 1, "SageMaker.ResourceLimitExceededException"),
        # Throttled on every attempt: retried, then given up.
        ({"cutoff": CUTOFF}, {(Step.TRAIN.value, n): Fail("SageMaker.AmazonSageMakerException") for n in range(4)},
         Step.TRAIN.value, 4, "SageMaker.AmazonSageMakerException"),
    ],
)
def test_a_failure_notifies_on_call_and_counts_pipeline_failures(
    pipeline, execution_input, failures, failed_state: str, attempts: int, error: str
) -> None:
    execution, worker = run(pipeline, execution_input, failures=failures)
    assert execution["status"] == "FAILED"
    assert [called for called, _, _ in worker.calls].count(failed_state) == attempts
    assert worker.states_called()[-1] == failed_state
    entered = entered_states(aws.client("stepfunctions"), execution["executionArn"])
    # The failure path; moto records no "entered" event for the final Fail state, but the history ends with it.
    assert entered[entered.index(failed_state) + 1:][:2] == ["CountFailure", "AlertOnCall"]
    assert execution.get("error") in (None, "PipelineFailed"), execution.get("cause")
    (alert,) = pipeline.messages(pipeline.alarm_topic_queue, 1)
    assert alert["Message"]["error"] == error
    assert alert["Message"]["execution"] == execution["executionArn"]
    assert pipeline.messages(pipeline.pipeline_topic_queue, 0) == []
    metrics = aws.client("cloudwatch").list_metrics(Namespace=pipeline.config.names.metrics_namespace,
                                                    MetricName="PipelineFailures")["Metrics"]
    assert len(metrics) == 1
