"""Building the tracker API and the queue consumer from the Lambda environment (the adapters' one place).

- EVENTS_TOPIC_ARN: the SNS events topic (required by the tracker);
- FIREHOSE_STREAM_NAME: the lake's delivery stream; empty or unset sends nothing (the batch path adds it);
- RECSYS_REDIS_URL or MEMORYDB_*: the store, through `recsys.store.redis_from_env`;
- RECSYS_STAGE: the config stage.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import redis

from recsys.config import StageConfig
from recsys.tracker.api import tracker_api
from recsys.tracker.consumer import QueueConsumer
from recsys.tracker.http import JsonApi
from recsys.tracker.service import Catalog, CatalogUpdater, EventTracker, TrackOutcome
from recsys.tracker.sinks import SnsEventPublisher, archive_for

# Errors that mean "the store is unreachable or failing over", not "this input is bad": the work is retried.
STORE_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError,
)


def tracker_api_from_env(
    config: StageConfig,
    on_track: Callable[[TrackOutcome], None] = lambda outcome: None,
    on_upsert: Callable[[str, int], None] = lambda kind, count: None,
) -> JsonApi:
    from recsys.features import ItemCatalog, validate_event
    from recsys.store import redis_from_env

    topic_arn = os.environ.get("EVENTS_TOPIC_ARN")
    if not topic_arn:
        raise RuntimeError("EVENTS_TOPIC_ARN is not set: the event tracker needs the events topic")
    sinks = [SnsEventPublisher(topic_arn), archive_for(os.environ.get("FIREHOSE_STREAM_NAME"))]
    tracker = EventTracker(config.event_tracker, sinks, writable=validate_event)

    @functools.cache
    def catalog() -> Catalog:  # connected on the first /items or /users call: /events never needs the store
        return ItemCatalog(redis_from_env())

    updater = CatalogUpdater(config.event_tracker, catalog, unavailable=STORE_ERRORS)
    return tracker_api(tracker, updater, config.event_tracker, on_track, on_upsert)


def consumer_from_env(config: StageConfig) -> QueueConsumer:
    from recsys.features import FeatureWriter, validate_event
    from recsys.store import redis_from_env

    writer = FeatureWriter(redis_from_env(), config.pit_features)
    return QueueConsumer(writer, store_errors=STORE_ERRORS, validate=validate_event)
