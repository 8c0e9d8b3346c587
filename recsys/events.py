"""The canonical interaction event, shared by every path.

The event tracker API accepts it, SNS/SQS carry it to the feature writer,
Firehose lands it in the lake, the dataset importer converts Personalize
interaction rows into it, and the Spark job reads it. One shape, one encoder.

Times are unix seconds (float). `timestamp` is event time (when it happened on
the client); `received_at` is arrival time at the tracker. Windows and
point-in-time features are always keyed by event time.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from typing import Any

from recsys.inputs import MAX_PROPERTY_CHARS, MAX_TIME_S, MIN_TIME_S, finite_number, id_problem, parse_time, text_problem

# Event types the platform understands. Others are accepted as-is by the
# importer (Personalize allows any EVENT_TYPE) but carry no special meaning.
VIEW = "view"
CLICK = "click"
LIKE = "like"
LISTEN = "listen"
WATCH = "watch"
PURCHASE = "purchase"
RATING = "rating"
IMPRESSION = "impression"
KNOWN_EVENT_TYPES = (VIEW, CLICK, LIKE, LISTEN, WATCH, PURCHASE, RATING, IMPRESSION)
# Events whose EVENT_VALUE is a play duration in seconds (Amp: listen; KION: watch).
PLAY_EVENT_TYPES = (LISTEN, WATCH)


@dataclass(frozen=True)
class Event:
    event_id: str
    user_id: str
    event_type: str
    timestamp: float
    item_id: str | None = None
    event_value: float | None = None
    session_id: str | None = None
    recommendation_id: str | None = None
    impression: tuple[str, ...] = ()
    properties: dict[str, str] = field(default_factory=dict)
    received_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        # Fields copied one by one: dataclasses.asdict deep-copies and costs several times more per event.
        data = {name: getattr(self, name) for name in _EVENT_FIELDS}
        data["impression"] = list(self.impression)
        data["properties"] = dict(self.properties)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Event":
        """Decode an already-validated record (see the tracker for validation of client input)."""
        return cls(
            event_id=str(data["event_id"]),
            user_id=str(data["user_id"]),
            event_type=str(data["event_type"]),
            timestamp=float(data["timestamp"]),
            item_id=None if data.get("item_id") is None else str(data["item_id"]),
            event_value=None if data.get("event_value") is None else float(data["event_value"]),
            session_id=data.get("session_id"),
            recommendation_id=data.get("recommendation_id"),
            impression=tuple(data.get("impression") or ()),
            properties=dict(data.get("properties") or {}),
            received_at=None if data.get("received_at") is None else float(data["received_at"]),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> "Event":
        return cls.from_dict(json.loads(text))


_EVENT_FIELDS = tuple(f.name for f in fields(Event))


# Event time bounds, in unix seconds: the platform's time range (recsys.inputs).
MIN_TIMESTAMP = MIN_TIME_S
MAX_TIMESTAMP = MAX_TIME_S


class InvalidEvent(ValueError):
    """A record is not a valid canonical event; the message names the field."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


def _text(data: dict[str, Any], name: str, *, optional: bool = False) -> str | None:
    value = data.get(name)
    if value is None and optional:
        return None
    problem = id_problem(value)
    if problem:
        raise InvalidEvent(name, "is required" if value is None else problem)
    return value


def _number(data: dict[str, Any], name: str, *, optional: bool) -> float | None:
    value = data.get(name)
    if value is None and optional:
        return None
    number = finite_number(value)
    if number is None:
        raise InvalidEvent(name, "must be a finite number")
    return number


def parse_event_record(data: Any) -> Event:
    """Validate a canonical event record (as carried on SNS/SQS/Firehose) and decode it.

    The rules are the platform's input rules (`recsys.inputs`), as the tracker applies them to client input, so
    every event the tracker accepts passes here. Raises InvalidEvent naming the first bad field.
    """
    if not isinstance(data, dict):
        raise InvalidEvent("record", "must be a JSON object")
    event_id = _text(data, "event_id")
    user_id = _text(data, "user_id")
    event_type = _text(data, "event_type")
    item_id = _text(data, "item_id", optional=True)
    raw_time = data.get("timestamp")
    if isinstance(raw_time, str):
        raise InvalidEvent("timestamp", "must be unix seconds (a number)")
    timestamp, problem = parse_time(raw_time)
    if problem:
        raise InvalidEvent("timestamp", problem)
    event_value = _number(data, "event_value", optional=True)
    received_at = _number(data, "received_at", optional=True)
    impression = data.get("impression") or []
    if not isinstance(impression, list) or any(id_problem(i) for i in impression):
        raise InvalidEvent("impression", "must be a list of item ids")
    properties = data.get("properties") or {}
    if not isinstance(properties, dict) or any(
        id_problem(k) or text_problem(v, MAX_PROPERTY_CHARS, free_text=True) for k, v in properties.items()
    ):
        raise InvalidEvent("properties", "must be an object of id keys and text values")
    return Event(
        event_id=event_id,
        user_id=user_id,
        event_type=event_type,
        timestamp=timestamp,
        item_id=item_id,
        event_value=event_value,
        session_id=_text(data, "session_id", optional=True),
        recommendation_id=_text(data, "recommendation_id", optional=True),
        impression=tuple(impression),
        properties=dict(properties),
        received_at=received_at,
    )


def event_date(timestamp: float) -> str:
    """The lake partition (UTC date) of an event time."""
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))


# Layout of the S3 data lake (bucket: ResourceNames.bucket("lake", account)).
# Firehose lands live events and the importer lands dataset interactions under
# the same EVENTS_PREFIX, so one Spark job reads history and live events alike.
EVENTS_PREFIX = "events"  # events/event_date=YYYY-MM-DD/<file>.jsonl.gz, one Event JSON per line
EVENTS_ERROR_PREFIX = "events-errors"  # Firehose failed records
USERS_PREFIX = "datasets/users"  # datasets/users/import_id=<id>/users.csv.gz (Personalize columns)
ITEMS_PREFIX = "datasets/items"  # datasets/items/import_id=<id>/items.csv.gz
FEATURES_PREFIX = "features"  # features/<table>/snapshot_date=YYYY-MM-DD/*.parquet
