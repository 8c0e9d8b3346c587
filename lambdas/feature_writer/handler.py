"""Feature writer Lambda: SQS batches (raw SNS delivery, body = Event JSON) -> point-in-time features in MemoryDB.

Answers `{"batchItemFailures": [...]}` (the event source mapping has ReportBatchItemFailures). Thin: the logic is
in `recsys.tracker.consumer`, the features in `recsys.features`.
"""

from __future__ import annotations

import functools
from typing import Any

from aws_lambda_powertools import Logger, Tracer

from recsys.config import load_stage
from recsys.tracker.consumer import QueueConsumer
from recsys.tracker.telemetry import metrics_for, record_batch, service_name
from recsys.tracker.wiring import consumer_from_env

SERVICE = service_name("feature_writer")
logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = metrics_for("feature_writer")


@functools.cache
def consumer() -> QueueConsumer:
    """Built once per execution environment; `consumer.cache_clear()` forgets it (a cold start)."""
    return consumer_from_env(load_stage())


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = consumer().consume(event.get("Records") or [])
    record_batch(metrics, report)
    counts = {"records": report.records, "applied": report.applied, "duplicates": report.duplicates}
    logger.info("batch done", extra={**counts, "failed": report.failed, "poison": len(report.poison)})
    return report.response()
