"""The feature writer's queue logic: an SQS batch in, features applied, the messages to retry out.

A Lambda fed by SQS with `ReportBatchItemFailures` deletes every message of the batch except those it names in
`batchItemFailures`; those come back after the visibility timeout, and after `maxReceiveCount` receives SQS moves
them to the DLQ. So:

- a message that is not an Event (a poison message) is named, and the rest of the batch is still applied;
- a store outage names every message of the batch (they are retried; the writer is idempotent per event id);
- any other error of the writer retries the batch one event at a time, so one bad event holds back no other;
- a redelivered event is applied once: the writer reports it as a duplicate and it is not retried.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from recsys.events import Event
from recsys.tracker.validation import decode_event_message

log = logging.getLogger(__name__)


class WriteOutcomeLike(Protocol):
    event_id: str
    status: str  # "applied" | "duplicate"


class EventWriter(Protocol):
    def apply(self, events: Sequence[Event]) -> Sequence[WriteOutcomeLike]: ...


@dataclass(frozen=True)
class PoisonMessage:
    message_id: str
    reason: str
    receive_count: int


@dataclass
class BatchReport:
    records: int = 0
    applied: int = 0
    duplicates: int = 0
    failed_message_ids: list[str] = field(default_factory=list)
    poison: list[PoisonMessage] = field(default_factory=list)
    store_errors: list[str] = field(default_factory=list)
    reflection_ms: list[float] = field(default_factory=list)  # event time -> written, per applied event
    arrival_to_written_ms: list[float] = field(default_factory=list)  # tracker arrival -> written

    @property
    def processed(self) -> int:
        """Events done with: applied now, or found already applied (duplicates)."""
        return self.applied + self.duplicates

    @property
    def failed(self) -> int:
        return len(self.failed_message_ids)

    def response(self) -> dict[str, list[dict[str, str]]]:
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in self.failed_message_ids]}


@dataclass(frozen=True)
class _Message:
    message_id: str
    event: Event


class QueueConsumer:
    def __init__(
        self,
        writer: EventWriter,
        store_errors: tuple[type[Exception], ...],
        validate: Callable[[Event], None] = lambda event: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`validate` raises ValueError for an event the writer cannot apply (recsys.features.validate_event)."""
        self.writer = writer
        self.store_errors = store_errors
        self.validate = validate
        self.clock = clock

    def consume(self, records: Sequence[Mapping[str, Any]]) -> BatchReport:
        report = BatchReport(records=len(records))
        messages = []
        for record in records:
            try:
                event = decode_event_message(record.get("body") or "")
                self.validate(event)
            except ValueError as exc:  # InvalidMessage included
                self._poison(report, record, str(exc))
                continue
            messages.append(_Message(record["messageId"], event))
        if messages:
            try:
                self._apply(messages, report)
            except self.store_errors as exc:
                self._store_failed(report, messages, exc)
            except Exception as exc:  # noqa: BLE001 - isolate the event that breaks the writer
                log.warning("the writer failed on a batch of %d (%r); retrying one event at a time", len(messages), exc)
                for message in messages:
                    self._apply_alone(message, report, records)
        return report

    def _apply(self, messages: Sequence[_Message], report: BatchReport) -> None:
        outcomes = self.writer.apply([message.event for message in messages])
        written_at = self.clock()
        if [outcome.event_id for outcome in outcomes] != [message.event.event_id for message in messages]:
            raise RuntimeError("the writer's outcomes do not match its events one to one")
        for message, outcome in zip(messages, outcomes):
            if outcome.status == "duplicate":
                report.duplicates += 1
                continue
            report.applied += 1
            event = message.event
            report.reflection_ms.append((written_at - event.timestamp) * 1000)
            if event.received_at is not None:
                report.arrival_to_written_ms.append((written_at - event.received_at) * 1000)

    def _apply_alone(self, message: _Message, report: BatchReport, records: Sequence[Mapping[str, Any]]) -> None:
        try:
            self._apply([message], report)
        except self.store_errors as exc:
            self._store_failed(report, [message], exc)
        except Exception as exc:  # noqa: BLE001 - this event breaks the writer: retry it, then the DLQ
            record = next(record for record in records if record["messageId"] == message.message_id)
            self._poison(report, record, f"the writer failed: {type(exc).__name__}: {exc}")

    def _poison(self, report: BatchReport, record: Mapping[str, Any], reason: str) -> None:
        receive_count = int((record.get("attributes") or {}).get("ApproximateReceiveCount", 1))
        poison = PoisonMessage(record["messageId"], reason, receive_count)
        log.warning("poison message %s (receive %d): %s", poison.message_id, receive_count, reason)
        report.poison.append(poison)
        report.failed_message_ids.append(poison.message_id)

    @staticmethod
    def _store_failed(report: BatchReport, messages: Sequence[_Message], exc: Exception) -> None:
        log.error("the store failed; %d messages will be retried: %s: %s", len(messages), type(exc).__name__, exc)
        report.store_errors.append(f"{type(exc).__name__}: {exc}")
        report.failed_message_ids.extend(message.message_id for message in messages)
