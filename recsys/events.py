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
from dataclasses import asdict, dataclass, field
from typing import Any

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
        data = asdict(self)
        data["impression"] = list(self.impression)
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


# Layout of the S3 data lake (bucket: ResourceNames.bucket("lake", account)).
# Firehose lands live events and the importer lands dataset interactions under
# the same EVENTS_PREFIX, so one Spark job reads history and live events alike.
EVENTS_PREFIX = "events"  # events/event_date=YYYY-MM-DD/<file>.jsonl.gz, one Event JSON per line
EVENTS_ERROR_PREFIX = "events-errors"  # Firehose failed records
USERS_PREFIX = "datasets/users"  # datasets/users/import_id=<id>/users.csv.gz (Personalize columns)
ITEMS_PREFIX = "datasets/items"  # datasets/items/import_id=<id>/items.csv.gz
FEATURES_PREFIX = "features"  # features/<table>/snapshot_date=YYYY-MM-DD/*.parquet
