"""Validation of the event tracker's input and of the queue's messages: pure functions, no I/O.

Every problem is reported as a `FieldError` that names the field with a path into the request body
(`user_id`, `events[2].sent_at`, `events[0].properties.color`), so that a client can fix it without guessing.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from recsys.config import EventTrackerConfig
from recsys.events import Event, InvalidEvent, parse_event_record
from recsys.inputs import field_label, finite_number, json_depth_problem, parse_time, text_problem, type_name

ENVELOPE_FIELDS = ("user_id", "session_id", "events")
EVENT_FIELDS = (
    "event_id",
    "event_type",
    "event_value",
    "item_id",
    "sent_at",
    "properties",
    "impression",
    "recommendation_id",
)
METADATA_KINDS = ("items", "users")


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class RequestRejected(Exception):
    """The whole request is refused with a 4xx `status`; `errors` say why."""

    def __init__(self, status: int, errors: Sequence[FieldError]) -> None:
        super().__init__("; ".join(str(error) for error in errors))
        self.status = status
        self.errors = tuple(errors)


class InvalidMessage(ValueError):
    """A queue message that is not a canonical Event record (a poison message)."""


@dataclass(frozen=True)
class EventVerdict:
    """One event of a POST /events call: its Event when valid, else the errors."""

    index: int
    event_id: str | None
    event: Event | None = None
    errors: tuple[FieldError, ...] = ()


@dataclass(frozen=True)
class TrackRequest:
    user_id: str
    session_id: str
    verdicts: tuple[EventVerdict, ...]


class _Errors:
    """Collects the errors of one object, each under `prefix`."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.items: list[FieldError] = []

    def path(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def add(self, name: str, message: str) -> None:
        self.items.append(FieldError(self.path(name), message))


def _check_id(errors: _Errors, data: Mapping[str, Any], name: str, max_chars: int, *, required: bool) -> str | None:
    if name not in data or data[name] is None:
        if required:
            errors.add(name, "is required")
        return None
    problem = text_problem(data[name], max_chars)
    if problem:
        errors.add(name, problem)
        return None
    return data[name]


def _unknown_fields(errors: _Errors, data: Mapping[str, Any], known: Sequence[str]) -> None:
    for name in data:
        if name not in known:
            errors.add(field_label(name), f"unknown field; expected one of {', '.join(known)}")


def parse_sent_at(value: Any, config: EventTrackerConfig, now: float) -> tuple[float | None, str | None]:
    """(unix seconds, None) for a valid sent_at, else (None, the problem): the platform's time rule, from
    `min_sent_at_s`, and at most `max_clock_skew_s` ahead of the server clock."""
    seconds, problem = parse_time(value, earliest=config.min_sent_at_s)
    if problem:
        return None, problem
    if seconds > now + config.max_clock_skew_s:
        return None, f"{value} is more than {config.max_clock_skew_s} s ahead of the server clock"
    return seconds, None


def _check_properties(errors: _Errors, value: Any, config: EventTrackerConfig) -> dict[str, str]:
    if not isinstance(value, dict):
        errors.add("properties", f"must be an object of string values, got {type_name(value)}")
        return {}
    if len(value) > config.max_properties:
        errors.add("properties", f"has {len(value)} entries; the limit is {config.max_properties}")
        return {}
    for key, item in value.items():
        problem = text_problem(key, config.max_id_chars)
        if problem:
            errors.add(f"properties.{field_label(key)}", f"key {problem}")
        else:
            problem = text_problem(item, config.max_property_value_chars, free_text=True)
            if problem:
                errors.add(f"properties.{field_label(key)}", problem)
    return dict(value)


def _check_impression(errors: _Errors, value: Any, config: EventTrackerConfig) -> tuple[str, ...]:
    if not isinstance(value, list):
        errors.add("impression", f"must be an array of item ids, got {type_name(value)}")
        return ()
    if len(value) > config.max_impressions:
        errors.add("impression", f"has {len(value)} item ids; the limit is {config.max_impressions}")
        return ()
    for position, item_id in enumerate(value):
        problem = text_problem(item_id, config.max_id_chars)
        if problem:
            errors.add(f"impression[{position}]", problem)
    return tuple(value)


def _compact_size(value: Any) -> int:
    # surrogatepass: a lone surrogate is counted here and reported by its field check, not raised
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"))


def check_event(
    index: int,
    raw: Any,
    *,
    user_id: str,
    session_id: str,
    config: EventTrackerConfig,
    now: float,
    new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> EventVerdict:
    """Validate events[index] of a call and map it to the canonical Event (timestamp = sent_at, received_at = now)."""
    errors = _Errors(f"events[{index}]")
    if not isinstance(raw, dict):
        error = FieldError(errors.prefix, f"must be an object, got {type_name(raw)}")
        return EventVerdict(index, None, errors=(error,))
    size = _compact_size(raw)
    if size > config.max_event_bytes:
        message = f"is {size} bytes as compact JSON; the limit is {config.max_event_bytes}"
        return EventVerdict(index, None, errors=(FieldError(errors.prefix, message),))
    _unknown_fields(errors, raw, EVENT_FIELDS)
    given_id = _check_id(errors, raw, "event_id", config.max_id_chars, required=False)
    event_type = _check_id(errors, raw, "event_type", config.max_id_chars, required=True)
    item_id = _check_id(errors, raw, "item_id", config.max_id_chars, required=False)
    recommendation_id = _check_id(errors, raw, "recommendation_id", config.max_id_chars, required=False)

    event_value = None
    if raw.get("event_value") is not None:
        event_value = finite_number(raw["event_value"])
        if event_value is None:
            errors.add("event_value", f"must be a finite number, got {type_name(raw['event_value'])}")

    sent_at = None
    if raw.get("sent_at") is None:
        errors.add("sent_at", "is required")
    else:
        sent_at, problem = parse_sent_at(raw["sent_at"], config, now)
        if problem:
            errors.add("sent_at", problem)

    properties = _check_properties(errors, raw["properties"], config) if raw.get("properties") is not None else {}
    impression = _check_impression(errors, raw["impression"], config) if raw.get("impression") is not None else ()

    if errors.items:
        return EventVerdict(index, given_id, errors=tuple(errors.items))
    event = Event(
        event_id=given_id or new_id(),
        user_id=user_id,
        event_type=event_type,
        timestamp=sent_at,
        item_id=item_id,
        event_value=event_value,
        session_id=session_id,
        recommendation_id=recommendation_id,
        impression=impression,
        properties=properties,
        received_at=now,
    )
    return EventVerdict(index, event.event_id, event=event)


def parse_track_request(payload: Any, config: EventTrackerConfig, now: float) -> TrackRequest:
    """Validate a POST /events body. Envelope problems raise RequestRejected; event problems are per event."""
    if not isinstance(payload, dict):
        raise RequestRejected(400, [FieldError("body", f"must be a JSON object, got {type_name(payload)}")])
    events = payload.get("events")
    if isinstance(events, list) and len(events) > config.max_events_per_call:
        message = f"{len(events)} events exceed the limit of {config.max_events_per_call} per call"
        raise RequestRejected(413, [FieldError("events", message)])
    errors = _Errors()
    _unknown_fields(errors, payload, ENVELOPE_FIELDS)
    user_id = _check_id(errors, payload, "user_id", config.max_id_chars, required=True)
    session_id = _check_id(errors, payload, "session_id", config.max_id_chars, required=True)
    if events is None:
        errors.add("events", "is required")
    elif not isinstance(events, list):
        errors.add("events", f"must be an array of events, got {type_name(events)}")
    elif not events:
        errors.add("events", "must contain at least one event")
    if errors.items:
        raise RequestRejected(400, errors.items)

    verdicts = []
    first_index: dict[str, int] = {}
    for index, raw in enumerate(events):
        verdict = check_event(index, raw, user_id=user_id, session_id=session_id, config=config, now=now)
        if verdict.event is not None and verdict.event_id in first_index:
            error = FieldError(f"events[{index}].event_id", f"repeats events[{first_index[verdict.event_id]}].event_id")
            verdict = EventVerdict(index, verdict.event_id, errors=(error,))
        elif verdict.event is not None:
            first_index[verdict.event_id] = index
        verdicts.append(verdict)
    return TrackRequest(user_id, session_id, tuple(verdicts))


def parse_metadata_request(payload: Any, kind: str, config: EventTrackerConfig) -> list[dict[str, Any]]:
    """The records of a POST /items or /users body: {"items": [{...}, ...]} keyed by Personalize column names."""
    if kind not in METADATA_KINDS:
        raise ValueError(f"unknown metadata kind {kind!r}: expected one of {', '.join(METADATA_KINDS)}")
    if not isinstance(payload, dict):
        raise RequestRejected(400, [FieldError("body", f"must be a JSON object, got {type_name(payload)}")])
    errors = _Errors()
    _unknown_fields(errors, payload, (kind,))
    records = payload.get(kind)
    if records is None:
        errors.add(kind, "is required")
    elif not isinstance(records, list):
        errors.add(kind, f"must be an array of objects, got {type_name(records)}")
    elif not records:
        errors.add(kind, "must contain at least one record")
    elif len(records) > config.max_metadata_records_per_call:
        limit = config.max_metadata_records_per_call
        raise RequestRejected(413, [FieldError(kind, f"{len(records)} records exceed the limit of {limit} per call")])
    else:
        for index, record in enumerate(records):
            if not isinstance(record, dict):
                errors.add(f"{kind}[{index}]", f"must be an object, got {type_name(record)}")
    if errors.items:
        raise RequestRejected(400, errors.items)
    return records


def decode_event_message(body: str) -> Event:
    """The Event carried by a queue message (raw SNS delivery: the body is the Event JSON), or InvalidMessage.

    The record is held to the same rules as the tracker's input (`recsys.events.parse_event_record`), so only a
    message that no client of the tracker could have sent is poison.
    """
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidMessage(f"body is not JSON: {exc}") from None
    problem = json_depth_problem(data)
    if problem:
        raise InvalidMessage(f"body {problem}")
    try:
        return parse_event_record(data)
    except InvalidEvent as exc:
        raise InvalidMessage(str(exc)) from None
