"""PipelineStack: the daily state machine's integrations, retries and catches, its schedule, and IAM scoping."""

from __future__ import annotations

import json
from typing import Any

from cdk_synth import Synth

from recsys.pipeline.steps import PIPELINE_STEPS, Step
from stacks.constructs.pipeline_step import LAMBDA_TRANSIENT_ERRORS, SAGEMAKER_TRANSIENT_ERRORS

FAILURE_PATH = ("CountFailure", "AlertOnCall", "PipelineFailed")


def definition(synth: Synth) -> dict[str, Any]:
    """The ASL, tokens rendered as `<Ref:...>` / `<GetAtt:...>` / `<Import:...>` placeholders."""
    properties = synth.one("pipeline", "AWS::StepFunctions::StateMachine")["Properties"]
    _, parts = properties["DefinitionString"]["Fn::Join"]

    def render(token: dict[str, Any]) -> str:
        if "Ref" in token:
            return f"<Ref:{token['Ref']}>"
        if "Fn::GetAtt" in token:
            return f"<GetAtt:{token['Fn::GetAtt'][0]}>"
        if "Fn::ImportValue" in token:
            return f"<Import:{token['Fn::ImportValue']}>"
        return "<Sub>"

    return json.loads("".join(part if isinstance(part, str) else render(part) for part in parts))


def _logical_id(synth: Synth, type_: str, **properties: Any) -> str:
    (logical_id,) = [
        logical_id
        for logical_id, resource in synth.resources("pipeline", type_).items()
        if all(resource["Properties"].get(name) == value for name, value in properties.items())
    ]
    return logical_id


def _statements(synth: Synth, role_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in synth.resources("pipeline", "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else actions


def _state_machine_role(synth: Synth) -> str:
    properties = synth.one("pipeline", "AWS::StepFunctions::StateMachine")["Properties"]
    return properties["RoleArn"]["Fn::GetAtt"][0]


# --- states and transitions -----------------------------------------------------------------------------------


def test_states_are_named_after_the_pipeline_steps_in_order(synth: Synth) -> None:
    asl = definition(synth)
    states = asl["States"]
    assert asl["StartAt"] == Step.VALIDATE_INPUT.value
    assert set(step.value for step in PIPELINE_STEPS) <= set(states)
    linear = [Step.VALIDATE_INPUT, Step.BATCH_FEATURES, Step.INGEST_FEATURES, Step.BUILD_TRAINING_SET, Step.TRAIN,
              Step.EVALUATE, Step.QUALITY_GATE]
    for state, following in zip(linear, linear[1:]):
        assert states[state.value]["Next"] == following.value
    choice = states[states[Step.QUALITY_GATE.value]["Next"]]
    assert choice["Type"] == "Choice"
    assert choice["Choices"] == [{"Variable": "$.gate.passed", "BooleanEquals": True,
                                  "Next": Step.REGISTER_MODEL.value}]
    assert choice["Default"] == Step.NOTIFY.value  # a rejected model is never registered nor deployed
    assert states[Step.REGISTER_MODEL.value]["Next"] == Step.DEPLOY.value
    assert states[Step.DEPLOY.value]["Next"] == Step.NOTIFY.value
    assert states[Step.NOTIFY.value]["End"] is True


def test_sagemaker_steps_use_the_sync_integrations(synth: Synth) -> None:
    states = definition(synth)["States"]
    expected = {
        Step.BATCH_FEATURES: "createProcessingJob.sync",
        Step.INGEST_FEATURES: "createProcessingJob.sync",
        Step.BUILD_TRAINING_SET: "createProcessingJob.sync",
        Step.TRAIN: "createTrainingJob.sync",
        Step.EVALUATE: "createProcessingJob.sync",
    }
    for step, integration in expected.items():
        assert states[step.value]["Resource"] == f"arn:<Ref:AWS::Partition>:states:::sagemaker:{integration}"


def test_spark_steps_run_the_batch_job_with_the_configured_cluster(synth: Synth) -> None:
    states = definition(synth)["States"]
    processing = synth.config.batch_features.processing
    for step, mode in ((Step.BATCH_FEATURES, "'features'"), (Step.BUILD_TRAINING_SET, "'training-set'")):
        parameters = states[step.value]["Parameters"]
        cluster = parameters["ProcessingResources"]["ClusterConfig"]
        assert (cluster["InstanceCount"], cluster["InstanceType"]) == (processing.instance_count,
                                                                       processing.instance_type)
        assert cluster["VolumeKmsKeyId"].startswith("<Import:")
        arguments = parameters["AppSpecification"]["ContainerArguments.$"]
        assert f"'--mode', {mode}" in arguments and "'--cutoff', $.run.cutoff" in arguments
        assert f"'--stage', '{synth.config.stage}'" in arguments
    ingest = states[Step.INGEST_FEATURES.value]["Parameters"]["AppSpecification"]
    assert ingest["ContainerEntrypoint"] == ["smspark-submit", "/opt/program/recsys/pipeline/ingest_job.py"]


def test_training_is_parameterized_by_the_run_plan(synth: Synth) -> None:
    parameters = definition(synth)["States"][Step.TRAIN.value]["Parameters"]
    pipeline = synth.config.pipeline
    assert parameters["AlgorithmSpecification"]["TrainingImage.$"] == "$.run.training_image"
    assert parameters["HyperParameters.$"] == "$.run.hyperparameters"
    assert [c["ChannelName"] for c in parameters["InputDataConfig"]] == ["train", "interactions"]
    assert parameters["ResourceConfig"]["InstanceType"] == pipeline.training_instance_type
    assert parameters["StoppingCondition"]["MaxRuntimeInSeconds"] == pipeline.training_max_runtime_s
    assert parameters["EnableNetworkIsolation"] is True
    assert parameters["OutputDataConfig"]["KmsKeyId"].startswith("<Import:")


def test_every_task_retries_transient_errors_with_the_configured_backoff(synth: Synth) -> None:
    pipeline = synth.config.pipeline
    states = definition(synth)["States"]
    tasks = {name: state for name, state in states.items() if state["Type"] == "Task"}
    assert set(tasks) == {step.value for step in PIPELINE_STEPS} | {"CountFailure", "AlertOnCall"}
    for name, state in tasks.items():
        (retry,) = state["Retry"]
        assert (retry["IntervalSeconds"], retry["MaxAttempts"], retry["BackoffRate"]) == (
            pipeline.retry_interval_s, pipeline.retry_attempts, pipeline.retry_backoff), name
    lambda_steps = [Step.VALIDATE_INPUT, Step.QUALITY_GATE, Step.REGISTER_MODEL, Step.DEPLOY]
    for step in lambda_steps:
        assert states[step.value]["Retry"][0]["ErrorEquals"] == list(LAMBDA_TRANSIENT_ERRORS)
        assert states[step.value]["Resource"].startswith("<GetAtt:")
    for step in (Step.BATCH_FEATURES, Step.INGEST_FEATURES, Step.BUILD_TRAINING_SET, Step.TRAIN, Step.EVALUATE):
        # A job that ran and failed (States.TaskFailed) is not retried: it would fail the same way.
        assert states[step.value]["Retry"][0]["ErrorEquals"] == list(SAGEMAKER_TRANSIENT_ERRORS)


def test_every_step_catches_into_the_failure_path(synth: Synth) -> None:
    states = definition(synth)["States"]
    for step in PIPELINE_STEPS:
        assert states[step.value]["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error",
                                                 "Next": FAILURE_PATH[0]}], step
    count, alert, failed = (states[name] for name in FAILURE_PATH)
    assert count["Resource"] == "arn:<Ref:AWS::Partition>:states:::aws-sdk:cloudwatch:putMetricData"
    assert count["Parameters"] == {"Namespace": synth.config.names.metrics_namespace,
                                   "MetricData": [{"MetricName": "PipelineFailures", "Value": 1, "Unit": "Count"}]}
    assert count["ResultPath"] != "$" and count["Next"] == "AlertOnCall"
    assert alert["Resource"] == "arn:<Ref:AWS::Partition>:states:::sns:publish"
    assert alert["Parameters"]["TopicArn"].startswith("<Import:") and "AlarmTopic" in alert["Parameters"]["TopicArn"]
    assert alert["Next"] == "PipelineFailed" and failed["Type"] == "Fail"


def test_state_machine_logs_traces_and_encrypts(synth: Synth) -> None:
    properties = synth.one("pipeline", "AWS::StepFunctions::StateMachine")["Properties"]
    assert properties["StateMachineName"] == synth.config.names.state_machine
    assert properties["TracingConfiguration"] == {"Enabled": True}
    assert properties["LoggingConfiguration"]["Level"] == "ALL"
    assert properties["EncryptionConfiguration"]["Type"] == "CUSTOMER_MANAGED_KMS_KEY"
    assert synth.resolve_import(properties["EncryptionConfiguration"]["KmsKeyId"]) == synth.key_arn()
    name = f"/aws/vendedlogs/states/{synth.config.names.state_machine}"
    log_group_id = _logical_id(synth, "AWS::Logs::LogGroup", LogGroupName=name)
    (destination,) = properties["LoggingConfiguration"]["Destinations"]
    assert destination["CloudWatchLogsLogGroup"]["LogGroupArn"] == {"Fn::GetAtt": [log_group_id, "Arn"]}
    log_group = synth.resources("pipeline", "AWS::Logs::LogGroup")[log_group_id]["Properties"]
    assert synth.resolve_import(log_group["KmsKeyId"]) == synth.key_arn()


def test_model_package_group_and_topic(synth: Synth) -> None:
    names = synth.config.names
    group = synth.one("pipeline", "AWS::SageMaker::ModelPackageGroup")["Properties"]
    assert group["ModelPackageGroupName"] == names.model_package_group
    topic = synth.one("pipeline", "AWS::SNS::Topic")["Properties"]
    assert topic["TopicName"] == names.pipeline_topic
    assert synth.resolve_import(topic["KmsMasterKeyId"]) == synth.key_arn()


# --- schedule -------------------------------------------------------------------------------------------------


def test_schedule_starts_the_state_machine_daily_with_the_default_input(synth: Synth) -> None:
    pipeline = synth.config.pipeline
    schedule = synth.one("pipeline", "AWS::Scheduler::Schedule")["Properties"]
    assert schedule["ScheduleExpression"] == pipeline.schedule == "cron(0 22 * * ? *)"
    assert schedule["ScheduleExpressionTimezone"] == pipeline.timezone
    assert schedule["State"] == "ENABLED"
    assert schedule["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = schedule["Target"]
    assert target["Arn"] == {"Ref": _logical_id(synth, "AWS::StepFunctions::StateMachine",
                                                StateMachineName=synth.config.names.state_machine)}
    assert json.loads(target["Input"]) == {"source": "schedule"}
    role_id = target["RoleArn"]["Fn::GetAtt"][0]
    (start,) = [s for s in _statements(synth, role_id) if "states:StartExecution" in _actions(s)]
    assert start["Resource"] == target["Arn"]


# --- IAM ------------------------------------------------------------------------------------------------------


def test_state_machine_passes_only_the_job_role_to_sagemaker(synth: Synth) -> None:
    statements = _statements(synth, _state_machine_role(synth))
    (pass_role,) = [s for s in statements if "iam:PassRole" in _actions(s)]
    job_role = _logical_id(synth, "AWS::IAM::Role", AssumeRolePolicyDocument={
        "Statement": [{"Action": "sts:AssumeRole", "Effect": "Allow",
                       "Principal": {"Service": "sagemaker.amazonaws.com"}}],
        "Version": "2012-10-17"})
    assert pass_role["Resource"] == {"Fn::GetAtt": [job_role, "Arn"]}
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    (jobs,) = [s for s in statements if "sagemaker:CreateTrainingJob" in _actions(s)]
    prefix = synth.config.prefix
    assert [r["Fn::Join"][1][-1] for r in jobs["Resource"]] == [f":processing-job/{prefix}-*",
                                                                f":training-job/{prefix}-*"]
    (metrics,) = [s for s in statements if "cloudwatch:PutMetricData" in _actions(s)]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": synth.config.names.metrics_namespace}}


def test_no_pipeline_policy_grants_a_service_wide_action(synth: Synth) -> None:
    for policy in synth.resources("pipeline", "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            for action in _actions(statement):
                assert not action.endswith(":*"), (action, statement)


def test_deploy_can_pass_only_the_serving_model_role(synth: Synth) -> None:
    entry = "deploy"
    function_id = _logical_id(synth, "AWS::Lambda::Function",
                              FunctionName=synth.config.names.function(f"pipeline_{entry}"))
    function = synth.resources("pipeline", "AWS::Lambda::Function")[function_id]
    assert function["Properties"]["Handler"] == f"lambdas.pipeline.handler.{entry}"
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = _statements(synth, role_id)
    (pass_role,) = [s for s in statements if "iam:PassRole" in _actions(s)]
    imported = synth.resolve_import(pass_role["Resource"])
    role = synth.templates["serving"]["Resources"][imported["Fn::GetAtt"][0]]
    assert role["Type"] == "AWS::IAM::Role"
    (update,) = [s for s in statements if "sagemaker:UpdateEndpoint" in _actions(s)]
    endpoint = next(r for r in update["Resource"] if r["Fn::Join"][1][-1].startswith(":endpoint/"))
    assert endpoint["Fn::Join"][1][-1] == f":endpoint/{synth.config.names.endpoint}"


def test_lambda_steps_share_one_bundle(synth: Synth) -> None:
    functions = [f for f in synth.resources("pipeline", "AWS::Lambda::Function").values()
                 if f["Properties"]["Handler"].startswith("lambdas.pipeline.handler.")]
    assert sorted(f["Properties"]["Handler"].rsplit(".", 1)[1] for f in functions) == [
        "deploy", "quality_gate", "register_model", "validate_input"]
    assert len({f["Properties"]["Code"]["S3Key"] for f in functions}) == 1
    assert all(f["Properties"]["TracingConfig"] == {"Mode": "Active"} for f in functions)
