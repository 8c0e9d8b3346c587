"""The event tracker's routes: POST /events, POST /items, POST /users."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recsys.config import EventTrackerConfig
from recsys.tracker.http import JsonApi
from recsys.tracker.service import CatalogUpdater, EventTracker, TrackOutcome


def tracker_api(
    tracker: EventTracker,
    catalog: CatalogUpdater,
    config: EventTrackerConfig,
    on_track: Callable[[TrackOutcome], None] = lambda outcome: None,
    on_upsert: Callable[[str, int], None] = lambda kind, count: None,
) -> JsonApi:
    def track(payload: Any) -> tuple[int, Any]:
        outcome = tracker.track(payload)
        on_track(outcome)
        return outcome.http_status, outcome.to_dict()

    def upsert(kind: str) -> Callable[[Any], tuple[int, Any]]:
        def route(payload: Any) -> tuple[int, Any]:
            answer = catalog.upsert(kind, payload)
            on_upsert(kind, answer["upserted"])
            return 200, answer

        return route

    routes = {("POST", "/events"): track, ("POST", "/items"): upsert("items"), ("POST", "/users"): upsert("users")}
    return JsonApi(routes, config.max_body_bytes)
