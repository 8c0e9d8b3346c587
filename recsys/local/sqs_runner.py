"""A local SQS event source for a Lambda handler: what an event source mapping does in AWS, against moto.

The runner long-polls the queue, gathers a batch the way Lambda does (up to `batch_size` messages, waiting at most
`batching_window_s` after the first one; ReceiveMessage gives at most 10 per call), calls the real handler with
the exact event AWS delivers (`Records` with messageId, receiptHandle, body, attributes, messageAttributes,
md5OfBody, eventSource "aws:sqs", eventSourceARN, awsRegion), and deletes only the messages the handler did not
name in `batchItemFailures`. As in AWS:

- a handler that raises, or names an identifier that is not in the batch, fails the whole batch;
- failed messages stay in the queue, come back after the visibility timeout, and moto moves them to the DLQ
  after `maxReceiveCount` receives (its own redrive, from the queue's RedrivePolicy).

One deliberate difference, off by default: `retry_delay_s` sets the visibility timeout of failed messages
(ChangeMessageVisibility) so that tests and demos see retries in seconds, not after the queue's visibility
timeout (6x the function timeout). Lambda does not do this.

Use it in a thread (`start()` / `stop()`), or drive it step by step: `poll_once()` for one batch,
`run_until_empty()` until a receive finds nothing visible.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recsys import aws
from recsys.config import StageConfig
from recsys.local.lambda_context import LocalLambdaContext

log = logging.getLogger(__name__)

LambdaHandler = Callable[[dict[str, Any], Any], Any]
RECEIVE_MAX = 10  # ReceiveMessage returns at most 10 messages per call
SHORT_POLL_PAUSE_S = 0.02


@dataclass
class BatchRun:
    """One invocation: what was received, what the handler failed, what was deleted."""

    message_ids: list[str]
    failed_message_ids: list[str]
    deleted: int
    handler_error: str | None = None
    duration_s: float = 0.0


@dataclass
class RunSummary:
    batches: list[BatchRun] = field(default_factory=list)

    @property
    def received(self) -> int:
        return sum(len(batch.message_ids) for batch in self.batches)

    @property
    def deleted(self) -> int:
        return sum(batch.deleted for batch in self.batches)

    @property
    def failed(self) -> int:
        return sum(len(batch.failed_message_ids) for batch in self.batches)


def _lambda_message_attributes(attributes: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """SQS API message attributes in the Lambda event's spelling (camelCase, binary as base64)."""
    converted = {}
    for name, value in attributes.items():
        entry: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
        if "StringValue" in value:
            entry["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            entry["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        converted[name] = entry
    return converted


def lambda_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """The SQS event record Lambda builds from one ReceiveMessage message."""
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": _lambda_message_attributes(message.get("MessageAttributes") or {}),
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_identifiers(response: Any, message_ids: list[str]) -> list[str]:
    """The messages to keep, from a handler's answer, by Lambda's rules for ReportBatchItemFailures."""
    if not isinstance(response, dict) or not response.get("batchItemFailures"):
        return []
    failures = response["batchItemFailures"]
    identifiers = [item.get("itemIdentifier") if isinstance(item, dict) else None for item in failures]
    if not all(identifier in message_ids for identifier in identifiers):
        log.warning("batchItemFailures names unknown or empty identifiers: the whole batch fails")
        return list(message_ids)
    return [message_id for message_id in message_ids if message_id in set(identifiers)]


class SqsEventSourceRunner:
    def __init__(
        self,
        handler: LambdaHandler,
        queue_url: str,
        *,
        batch_size: int = 10,
        batching_window_s: float = 0.0,
        function_name: str = "local-function",
        function_timeout_s: float = 30.0,
        retry_delay_s: int | None = None,
        poll_wait_s: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.handler = handler
        self.queue_url = queue_url
        self.batch_size = batch_size
        self.batching_window_s = batching_window_s
        self.function_name = function_name
        self.function_timeout_s = function_timeout_s
        self.retry_delay_s = retry_delay_s
        self.poll_wait_s = poll_wait_s
        self.sqs = aws.client("sqs", read_timeout=poll_wait_s + 10)
        self.queue_arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.region = self.queue_arn.split(":")[3]
        self.summary = RunSummary()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(
        cls, handler: LambdaHandler, queue_url: str, config: StageConfig, **overrides: Any
    ) -> "SqsEventSourceRunner":
        """A runner with the feature writer's batch size, batching window and timeout from the stage config."""
        settings: dict[str, Any] = {
            "batch_size": config.feature_writer.batch_size,
            "batching_window_s": config.feature_writer.batching_window_s,
            "function_name": config.names.function("feature_writer"),
            "function_timeout_s": config.feature_writer.function.timeout_s,
        }
        return cls(handler, queue_url, **{**settings, **overrides})

    def _receive(self, count: int, wait_s: int) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(RECEIVE_MAX, count),
            WaitTimeSeconds=wait_s,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return response.get("Messages", [])

    def _gather(self, wait_s: int) -> list[dict[str, Any]]:
        batch = self._receive(self.batch_size, wait_s)
        if not batch or self.batching_window_s <= 0:
            return batch
        deadline = time.monotonic() + self.batching_window_s
        while len(batch) < self.batch_size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            more = self._receive(self.batch_size - len(batch), int(remaining))
            batch.extend(more)
            if not more and int(remaining) == 0:
                time.sleep(min(SHORT_POLL_PAUSE_S, remaining))
        return batch

    def poll_once(self, wait_s: int | None = None) -> BatchRun | None:
        """Gather one batch and invoke the handler with it; None when no message was visible within `wait_s`."""
        messages = self._gather(self.poll_wait_s if wait_s is None else wait_s)
        if not messages:
            return None
        started = time.monotonic()
        records = [lambda_record(message, self.queue_arn, self.region) for message in messages]
        message_ids = [record["messageId"] for record in records]
        handler_error = None
        try:
            context = LocalLambdaContext(self.function_name, self.function_timeout_s)
            response = self.handler({"Records": records}, context)
            failed = failed_identifiers(response, message_ids)
        except Exception as exc:  # noqa: BLE001 - as in Lambda, a failed invocation fails the whole batch
            log.exception("the handler %s failed: the whole batch is retried", self.function_name)
            handler_error = f"{type(exc).__name__}: {exc}"
            failed = list(message_ids)
        failed_set = set(failed)
        receipts = {message["MessageId"]: message["ReceiptHandle"] for message in messages}
        self._batched("delete_message_batch", [mid for mid in message_ids if mid not in failed_set], receipts)
        if self.retry_delay_s is not None and failed:
            self._batched("change_message_visibility_batch", failed, receipts, VisibilityTimeout=self.retry_delay_s)
        run = BatchRun(message_ids, failed, len(message_ids) - len(failed), handler_error, time.monotonic() - started)
        self.summary.batches.append(run)
        return run

    def _batched(self, operation: str, message_ids: list[str], receipts: dict[str, str], **extra: Any) -> None:
        call = getattr(self.sqs, operation)
        for start in range(0, len(message_ids), RECEIVE_MAX):
            entries = [
                {"Id": str(position), "ReceiptHandle": receipts[message_id], **extra}
                for position, message_id in enumerate(message_ids[start : start + RECEIVE_MAX])
            ]
            response = call(QueueUrl=self.queue_url, Entries=entries)
            if response.get("Failed"):
                log.warning("%s failed for %s", operation, response["Failed"])

    def run_until_empty(self, max_batches: int = 10_000) -> RunSummary:
        """Invoke batch after batch until a receive finds no visible message; what these invocations did."""
        summary = RunSummary()
        while len(summary.batches) < max_batches:
            run = self.poll_once(wait_s=0)
            if run is None:
                return summary
            summary.batches.append(run)
        raise RuntimeError(f"the queue was not empty after {max_batches} batches")

    def start(self) -> "SqsEventSourceRunner":
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name=f"sqs-{self.function_name}", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - keep polling, as the event source mapping does
                log.exception("polling %s failed", self.queue_url)
                self._stop.wait(1.0)

    def stop(self) -> None:
        """Finish the batch in progress, then stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> "SqsEventSourceRunner":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
