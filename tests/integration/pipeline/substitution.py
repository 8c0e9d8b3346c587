"""Run the synthesized daily-pipeline definition in moto's Step Functions interpreter.

moto cannot run SageMaker's `.sync` integrations, and it runs Lambda functions only in Docker. So each Task that
calls SageMaker or Lambda is *substituted*, and nothing else changes:

- its `Resource` becomes `arn:aws:states:::sqs:sendMessage.waitForTaskToken` (an integration moto runs), and its
  `Parameters` become `{"QueueUrl": <test queue>, "MessageBody": {"state", "attempt": $$.State.RetryCount,
  "token": $$.Task.Token, "request": <the original Parameters>}}` — so the original Parameters, intrinsic
  functions and paths included, are still evaluated by the interpreter;
- `Retry`, `Catch`, `ResultSelector`, `ResultPath`, `TimeoutSeconds`, `Next`/`End`, every Choice, Pass, Fail and
  the SNS and CloudWatch tasks are kept as synthesized (those two integrations really run against moto).

A `Worker` plays the substituted services: it reads each message and answers with SendTaskSuccess (the output
the real service would return, shaped so the state's ResultSelector applies) or SendTaskFailure with an error
name (what a throttled call or a failed Lambda raises), so the real Retry and Catch rules decide what happens.

One moto quirk is worked around: moto keeps a task's token across its retries, and a retry reads the answer
last sent for that token at once. So when the worker fails attempt n with an error the state's Retry rules
retry, it waits until the execution history shows the failure taken, then answers attempt n+1 on the same token
(the retry interval has not ended yet); the retry's message is then only recorded. AWS gives every attempt a new
token; which answer each attempt gets is the same either way, and the interpreter still decides the flow.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Integrations moto's interpreter runs for real: these Tasks keep their Resource and Parameters.
SUBSTITUTE_RESOURCE = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
REAL_INTEGRATIONS = (":states:::sns:publish", ":states:::aws-sdk:cloudwatch:putMetricData")
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012",
          "AWS::URLSuffix": "amazonaws.com"}


def resolve_definition(template: Mapping[str, Any], resolve_token: Callable[[dict[str, Any]], str]) -> dict[str, Any]:
    """The state machine's ASL with every CloudFormation token replaced by `resolve_token(token)`."""
    (machine,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::StepFunctions::StateMachine"]
    definition = machine["Properties"]["DefinitionString"]
    if isinstance(definition, str):
        return json.loads(definition)
    separator, parts = definition["Fn::Join"]
    return json.loads(separator.join(part if isinstance(part, str) else resolve_token(part) for part in parts))


def default_token(token: dict[str, Any]) -> str:
    """Pseudo parameters by value; other references by a readable placeholder."""
    if "Ref" in token:
        return PSEUDO.get(token["Ref"], f"ref-{token['Ref']}")
    if "Fn::GetAtt" in token:
        return f"arn:aws:placeholder:us-east-1:123456789012:{token['Fn::GetAtt'][0]}"
    if "Fn::Sub" in token:
        text = token["Fn::Sub"]
        for name, value in PSEUDO.items():
            text = text.replace("${" + name + "}", value)
        return text
    if "Fn::ImportValue" in token:
        return f"import-{token['Fn::ImportValue']}"
    raise ValueError(f"unexpected token {token}")


def substitute_tasks(definition: Mapping[str, Any], queue_url: str) -> tuple[dict[str, Any], list[str]]:
    """The definition with SageMaker and Lambda Tasks substituted (see the module docstring), and their names."""
    result = copy.deepcopy(dict(definition))
    substituted = []
    for name, state in result["States"].items():
        if state["Type"] != "Task" or any(marker in state["Resource"] for marker in REAL_INTEGRATIONS):
            continue
        state["Resource"] = SUBSTITUTE_RESOURCE
        state["Parameters"] = {
            "QueueUrl": queue_url,
            "MessageBody": {
                "state": name,
                "attempt.$": "$$.State.RetryCount",
                "token.$": "$$.Task.Token",
                "request": state.get("Parameters", {}),
            },
        }
        substituted.append(name)
    return result, substituted


@dataclass(frozen=True)
class Fail:
    """An answer: the task fails with `error` (e.g. a throttled SageMaker call, a Lambda's exception class)."""

    error: str
    cause: str = "injected by the test"


# A responder gets the evaluated request and returns the output, or a Fail.
Responder = Callable[[dict[str, Any]], Any]


@dataclass
class Worker:
    """Answers the substituted tasks: `responders[state]` per state; `failures[(state, attempt)]` first."""

    sqs: Any
    sfn: Any
    queue_url: str
    definition: Mapping[str, Any]
    responders: Mapping[str, Responder]
    failures: Mapping[tuple[str, int], Fail] = field(default_factory=dict)
    calls: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)

    calls_answered_early: set[tuple[str, int]] = field(default_factory=set)
    failures_sent: int = 0

    def _response(self, state: str, attempt: int, request: dict[str, Any]) -> Any:
        answer: Any = self.failures.get((state, attempt))
        if answer is None:
            try:
                answer = self.responders[state](request)
            except Exception as exc:  # noqa: BLE001 - a Lambda's exception becomes its error name, as in AWS
                answer = Fail(type(exc).__name__, str(exc))
        return answer

    def _send(self, token: str, answer: Any) -> None:
        if isinstance(answer, Fail):
            self.sfn.send_task_failure(taskToken=token, error=answer.error, cause=answer.cause)
        else:
            self.sfn.send_task_success(taskToken=token, output=json.dumps(answer))

    def _retries(self, state: str, error: str) -> int:
        """MaxAttempts of the first Retry rule of `state` matching `error` (ASL's default is 3), else 0."""
        for rule in self.definition["States"][state].get("Retry", []):
            if error in rule["ErrorEquals"] or "States.ALL" in rule["ErrorEquals"]:
                return int(rule.get("MaxAttempts", 3))
        return 0

    def _wait_failure_taken(self, execution_arn: str, failures: int) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            events = self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
            if sum(event["type"] == "TaskFailed" for event in events) >= failures:
                return
            time.sleep(0.02)
        raise TimeoutError("the interpreter did not take the failure")

    def _answer(self, execution_arn: str, body: dict[str, Any]) -> None:
        state, attempt, request, token = body["state"], int(body["attempt"]), body["request"], body["token"]
        self.calls.append((state, attempt, request))
        if (token, attempt) in self.calls_answered_early:
            return
        answer = self._response(state, attempt, request)
        self._send(token, answer)
        while isinstance(answer, Fail) and attempt < self._retries(state, answer.error):
            self.failures_sent += 1
            self._wait_failure_taken(execution_arn, self.failures_sent)
            attempt += 1
            answer = self._response(state, attempt, request)
            self._send(token, answer)
            self.calls_answered_early.add((token, attempt))
        if isinstance(answer, Fail):
            self.failures_sent += 1

    def run(self, execution_arn: str, timeout_s: float = 60.0) -> dict[str, Any]:
        """Serve until the execution ends; returns DescribeExecution."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                WaitTimeSeconds=0).get("Messages", [])
            for message in messages:
                self._answer(execution_arn, json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
            execution = self.sfn.describe_execution(executionArn=execution_arn)
            if execution["status"] != "RUNNING":
                return execution
            if not messages:
                time.sleep(0.05)
        raise TimeoutError(f"{execution_arn} still running after {timeout_s}s; calls: {[c[:2] for c in self.calls]}")

    def states_called(self) -> list[str]:
        return [state for state, _, _ in self.calls]


def entered_states(sfn: Any, execution_arn: str) -> list[str]:
    """The states the execution entered, in order (from its history)."""
    events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
