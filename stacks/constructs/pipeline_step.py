"""The base of every Lambda step of the daily pipeline, and the retry policy every pipeline task shares.

A `PipelineLambdaStep` is a `PythonLambda` running one entry of `lambdas/pipeline/handler.py` (all steps share
one bundle) plus the Step Functions task that invokes it: the state is named after its `recsys.pipeline.steps.Step`,
gets the payload it is given, stores the function's result at `result_path`, and retries throttling and
transient errors with the configured backoff (`with_retries`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from recsys.config import PipelineConfig, StageConfig
from recsys.pipeline.steps import Step
from stacks.constructs.python_lambda import PythonLambda

# Errors of a Lambda invocation that a later attempt can get past, plus TransientError, which the steps raise
# for throttled AWS calls (recsys.pipeline.aws_steps), and EndpointBusy (recsys.pipeline.deploy).
LAMBDA_TRANSIENT_ERRORS = (
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.ClientExecutionTimeoutException",
    "TransientError",
    "EndpointBusy",
)
# SageMaker's optimized integration reports throttling and service-side failures to start a job as this error;
# a job that started and failed (States.TaskFailed) is not retried: it would fail the same way.
SAGEMAKER_TRANSIENT_ERRORS = ("SageMaker.AmazonSageMakerException",)


def retry_props(errors: Sequence[str], config: PipelineConfig) -> dict[str, Any]:
    """One Retry rule in ASL form (for CustomState JSON)."""
    return {
        "ErrorEquals": list(errors),
        "IntervalSeconds": config.retry_interval_s,
        "MaxAttempts": config.retry_attempts,
        "BackoffRate": config.retry_backoff,
    }


def with_retries(state: sfn.TaskStateBase, errors: Sequence[str], config: PipelineConfig) -> sfn.TaskStateBase:
    state.add_retry(
        errors=list(errors),
        interval=Duration.seconds(config.retry_interval_s),
        max_attempts=config.retry_attempts,
        backoff_rate=config.retry_backoff,
    )
    return state


class PipelineLambdaStep(Construct):
    """`step`'s Lambda (`lambdas.pipeline.handler.<entry>`) and its task state."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        step: Step,
        entry: str,
        key: kms.IKey,
        description: str,
        payload: Mapping[str, Any],
        result_path: str,
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, id)
        settings = config.pipeline.step_function
        self.function = PythonLambda(
            self,
            "Function",
            config=config,
            handler="pipeline",
            name=f"pipeline_{entry}",
            entry=entry,
            settings=settings,
            key=key,
            description=description,
            environment=environment,
        )
        self.task = tasks.LambdaInvoke(
            scope,
            step.value,
            lambda_function=self.function.function,
            payload=sfn.TaskInput.from_object(dict(payload)),
            # The state gets the function's return value, not Lambda's invocation envelope.
            payload_response_only=True,
            retry_on_service_exceptions=False,
            result_path=result_path,
            task_timeout=sfn.Timeout.duration(Duration.seconds(settings.timeout_s + 30)),
        )
        with_retries(self.task, LAMBDA_TRANSIENT_ERRORS, config.pipeline)
