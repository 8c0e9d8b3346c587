"""Where accepted events go: adapters over SNS (the real-time path) and Firehose (the batch path's lake).

Every sink has one method, `deliver(events) -> {event_id: reason}`, which returns the events it could NOT take.
It never raises for a service error: the tracker reports those events as failed so that the client retries them
with the same event ids (the feature writer and the batch jobs dedupe by event id).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from recsys import aws
from recsys.events import Event

SNS_BATCH_SIZE = 10  # PublishBatch accepts at most 10 entries
FIREHOSE_BATCH_SIZE = 500  # PutRecordBatch accepts at most 500 records (and 4 MiB; 500 x 10 KB events fit)


class EventSink(Protocol):
    name: str

    def deliver(self, events: Sequence[Event]) -> dict[str, str]:
        """Send `events`; return {event_id: reason} for those not taken."""


def _chunks(events: Sequence[Event], size: int) -> list[Sequence[Event]]:
    return [events[start : start + size] for start in range(0, len(events), size)]


def _service_error(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip()
    return f"{type(exc).__name__}: {exc}"


def message_attributes(event: Event) -> dict[str, dict[str, str]]:
    """SNS message attributes that subscribers can filter on (no personal data: no user id)."""
    attributes = {"event_type": {"DataType": "String", "StringValue": event.event_type}}
    attributes["has_item"] = {"DataType": "String", "StringValue": "true" if event.item_id else "false"}
    return attributes


class SnsEventPublisher:
    """Publishes each event as its canonical JSON to the events topic, 10 per PublishBatch call."""

    name = "sns"

    def __init__(self, topic_arn: str, client: Any = None) -> None:
        self.topic_arn = topic_arn
        self.client = client or aws.client("sns")

    def deliver(self, events: Sequence[Event]) -> dict[str, str]:
        failed: dict[str, str] = {}
        for chunk in _chunks(events, SNS_BATCH_SIZE):
            entries = [
                {"Id": str(position), "Message": event.to_json(), "MessageAttributes": message_attributes(event)}
                for position, event in enumerate(chunk)
            ]
            try:
                response = self.client.publish_batch(TopicArn=self.topic_arn, PublishBatchRequestEntries=entries)
            except (ClientError, BotoCoreError) as exc:
                failed.update({event.event_id: f"sns: {_service_error(exc)}" for event in chunk})
                continue
            for entry in response.get("Failed", []):
                event = chunk[int(entry["Id"])]
                failed[event.event_id] = f"sns: {entry.get('Code', 'Error')}: {entry.get('Message', '')}".strip()
        return failed


class FirehoseSender:
    """Sends each event as one line of newline-delimited JSON to the lake's delivery stream."""

    name = "firehose"

    def __init__(self, stream_name: str, client: Any = None) -> None:
        self.stream_name = stream_name
        self.client = client or aws.client("firehose")

    def deliver(self, events: Sequence[Event]) -> dict[str, str]:
        failed: dict[str, str] = {}
        for chunk in _chunks(events, FIREHOSE_BATCH_SIZE):
            records = [{"Data": (event.to_json() + "\n").encode()} for event in chunk]
            try:
                response = self.client.put_record_batch(DeliveryStreamName=self.stream_name, Records=records)
            except (ClientError, BotoCoreError) as exc:
                failed.update({event.event_id: f"firehose: {_service_error(exc)}" for event in chunk})
                continue
            if response.get("FailedPutCount", 0):
                for event, result in zip(chunk, response["RequestResponses"]):
                    if result.get("ErrorCode"):
                        failed[event.event_id] = f"firehose: {result['ErrorCode']}: {result.get('ErrorMessage', '')}"
        return failed


class NullSender:
    """Takes every event and sends it nowhere: used while no Firehose stream is deployed."""

    name = "none"

    def deliver(self, events: Sequence[Event]) -> dict[str, str]:
        return {}


# Local mode only: in-process stand-ins of delivery streams (recsys.lake.local_firehose), by stream name. moto's
# Firehose runs neither the transform Lambda nor dynamic partitioning, so the local platform registers its own.
_local_streams: dict[str, Any] = {}


def use_local_stream(stream_name: str, client: Any) -> None:
    """Send what goes to `stream_name` to `client` (put_record_batch as boto3's) until `forget_local_stream`."""
    _local_streams[stream_name] = client


def forget_local_stream(stream_name: str) -> None:
    _local_streams.pop(stream_name, None)


def archive_for(stream_name: str | None) -> EventSink:
    """The lake sink for FIREHOSE_STREAM_NAME: a FirehoseSender, or a NullSender when it is empty or unset."""
    return FirehoseSender(stream_name, client=_local_streams.get(stream_name)) if stream_name else NullSender()
