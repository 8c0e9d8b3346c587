"""The event tracker (POST /events, /items, /users) and the feature writer's queue consumer. See README.md."""

from recsys.tracker.consumer import BatchReport, QueueConsumer
from recsys.tracker.http import HttpRequest, HttpResponse, JsonApi
from recsys.tracker.service import CatalogUpdater, EventTracker, ServiceUnavailable, TrackOutcome
from recsys.tracker.sinks import FirehoseSender, NullSender, SnsEventPublisher
from recsys.tracker.validation import FieldError, RequestRejected, decode_event_message, parse_track_request

__all__ = [
    "BatchReport",
    "CatalogUpdater",
    "EventTracker",
    "FieldError",
    "FirehoseSender",
    "HttpRequest",
    "HttpResponse",
    "JsonApi",
    "NullSender",
    "QueueConsumer",
    "RequestRejected",
    "ServiceUnavailable",
    "SnsEventPublisher",
    "TrackOutcome",
    "decode_event_message",
    "parse_track_request",
]
