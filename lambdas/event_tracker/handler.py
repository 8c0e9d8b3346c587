"""Event tracker Lambda (API Gateway REST proxy): POST /events, POST /items, POST /users.

Thin: the routes and their logic are in `recsys.tracker` (see recsys/tracker/README.md).
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging import correlation_paths

from recsys.config import load_stage
from recsys.tracker.http import JsonApi
from recsys.tracker.telemetry import metrics_for, record_track, record_upsert, service_name
from recsys.tracker.wiring import tracker_api_from_env

SERVICE = service_name("event_tracker")
logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = metrics_for("event_tracker")


@functools.cache
def api() -> JsonApi:
    """Built once per execution environment; `api.cache_clear()` forgets it (a cold start)."""
    return tracker_api_from_env(
        load_stage(),
        on_track=lambda outcome: record_track(metrics, outcome),
        on_upsert=lambda kind, count: record_upsert(metrics, kind, count),
    )


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return api().handle_apigateway(event)
