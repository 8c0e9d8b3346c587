"""The event tracker's logic: validate, deliver to the sinks, answer per event; upsert item and user metadata."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from recsys.config import EventTrackerConfig
from recsys.events import Event
from recsys.tracker.sinks import EventSink
from recsys.tracker.validation import (
    EventVerdict,
    FieldError,
    RequestRejected,
    parse_metadata_request,
    parse_track_request,
)

log = logging.getLogger(__name__)
Status = Literal["accepted", "rejected", "failed"]


class ServiceUnavailable(Exception):
    """A back end (SNS, the store) is down: the client should retry the same request later (HTTP 503)."""


@dataclass(frozen=True)
class EventResult:
    index: int
    event_id: str | None
    status: Status
    errors: tuple[FieldError, ...] = ()
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"index": self.index, "event_id": self.event_id, "status": self.status}
        if self.errors:
            data["errors"] = [error.to_dict() for error in self.errors]
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass(frozen=True)
class TrackOutcome:
    results: tuple[EventResult, ...]

    def count(self, status: Status) -> int:
        return sum(result.status == status for result in self.results)

    @property
    def http_status(self) -> int:
        """200 when any event was accepted; else 503 when any failed to deliver (retry); else 400."""
        if self.count("accepted"):
            return 200
        return 503 if self.count("failed") else 400

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "accepted": self.count("accepted"),
            "rejected": self.count("rejected"),
            "failed": self.count("failed"),
            "results": [result.to_dict() for result in self.results],
        }
        if self.http_status == 503:
            data["message"] = "no event could be delivered; retry the same request later"
        elif self.http_status == 400:
            errors = [str(error) for result in self.results for error in result.errors]
            data["message"] = "no event was accepted: " + "; ".join(errors)
        return data


def _writer_rejection(verdict: EventVerdict, writable: Callable[[Event], None]) -> EventVerdict:
    """`verdict`, rejected when the feature writer would refuse its event (so that no accepted event is poison)."""
    if verdict.event is None:
        return verdict
    try:
        writable(verdict.event)
    except ValueError as exc:
        # The writer's messages read "event '<id>': <field> <problem>".
        detail = str(exc).removeprefix(f"event {verdict.event_id!r}: ")
        field, _, problem = detail.partition(" ")
        path = f"events[{verdict.index}]"
        error = FieldError(f"{path}.{field}", problem) if problem else FieldError(path, detail)
        return EventVerdict(verdict.index, verdict.event_id, errors=(error,))
    return verdict


class EventTracker:
    """POST /events: an event is accepted only once every sink (SNS, and Firehose when deployed) took it.

    `writable` is the feature writer's own check of an event (recsys.features.validate_event): an event it would
    refuse is rejected here, with a 4xx, rather than accepted and dead-lettered later.
    """

    def __init__(
        self,
        config: EventTrackerConfig,
        sinks: Sequence[EventSink],
        writable: Callable[[Event], None] = lambda event: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.sinks = tuple(sinks)
        self.writable = writable
        self.clock = clock

    def track(self, payload: Any) -> TrackOutcome:
        request = parse_track_request(payload, self.config, self.clock())
        verdicts = [_writer_rejection(verdict, self.writable) for verdict in request.verdicts]
        events = [verdict.event for verdict in verdicts if verdict.event is not None]
        failures: dict[str, str] = {}
        if events:
            for sink in self.sinks:
                for event_id, reason in sink.deliver(events).items():
                    failures.setdefault(event_id, reason)
        results = []
        for verdict in verdicts:
            if verdict.event is None:
                results.append(EventResult(verdict.index, verdict.event_id, "rejected", errors=verdict.errors))
            elif verdict.event_id in failures:
                reason = failures[verdict.event_id]
                results.append(EventResult(verdict.index, verdict.event_id, "failed", reason=reason))
            else:
                results.append(EventResult(verdict.index, verdict.event_id, "accepted"))
        return TrackOutcome(tuple(results))


class Catalog(Protocol):
    def upsert_items(self, records: list[dict[str, Any]]) -> Any: ...

    def upsert_users(self, records: list[dict[str, Any]]) -> Any: ...


def _catalog_error(kind: str, exc: Exception) -> FieldError:
    """The catalog's messages read "items[3].PRICE: <problem>"."""
    field, separator, problem = str(exc).partition(": ")
    return FieldError(field, problem) if separator and field.startswith(kind) else FieldError(kind, str(exc))


class CatalogUpdater:
    """POST /items and POST /users: all records of a call are upserted, or none (the first bad field is named)."""

    def __init__(
        self,
        config: EventTrackerConfig,
        catalog: Callable[[], Catalog],
        unavailable: tuple[type[Exception], ...] = (),
    ) -> None:
        self.config = config
        self.catalog = catalog
        self.unavailable = unavailable

    def upsert(self, kind: str, payload: Any) -> dict[str, Any]:
        records = parse_metadata_request(payload, kind, self.config)
        try:
            catalog = self.catalog()
            upsert = catalog.upsert_items if kind == "items" else catalog.upsert_users
            upsert(records)
        except (ValueError, OverflowError) as exc:  # OverflowError: a huge integer where a number is expected
            raise RequestRejected(400, [_catalog_error(kind, exc)]) from None
        except self.unavailable as exc:
            log.warning("catalog upsert: the feature store is unavailable: %r", exc)
            raise ServiceUnavailable("the feature store is unavailable; retry later") from exc
        return {"upserted": len(records)}
