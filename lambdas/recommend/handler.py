"""Recommend API Lambda (API Gateway REST proxy): POST /recommendations, /showcase, /ranking, /related,
/popular, /trending.

Thin: the routes and the request flow are in `recsys.recommend` (see recsys/recommend/README.md).
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.logging import correlation_paths

from recsys.config import load_stage
from recsys.recommend.api import RecommendApi
from recsys.recommend.wiring import recommend_api_from_env
from recsys.tracker.telemetry import metrics_for, service_name

SERVICE = service_name("recommend")
logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = metrics_for("recommend")


@functools.cache
def api() -> RecommendApi:
    """Built once per execution environment; `api.cache_clear()` forgets it (a cold start)."""
    return recommend_api_from_env(load_stage(), metrics)


@metrics.log_metrics
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return api().handle_apigateway(event)
