"""CloudWatch metrics (EMF, through Powertools) of the event tracker and the feature writer.

Namespace: POWERTOOLS_METRICS_NAMESPACE, which the stacks set to `StageConfig.names.metrics_namespace`
(`recsys-dev`); the same by default locally. One dimension, `service`: POWERTOOLS_SERVICE_NAME, the function name
(`recsys-dev-feature-writer`, `recsys-dev-event-tracker`).

feature-writer, per batch:
- ReflectionTime (ms): event time (sent_at) -> feature written, one value per applied event;
- ReflectionTimeFromArrival (ms): tracker arrival -> feature written (free of client clock skew and backfills);
- EventsProcessed (applied + duplicates), EventsDuplicate, EventsFailed (messages handed back for retry),
  EventsPoison (of which not decodable), StoreErrors.
event-tracker, per call: EventsAccepted, EventsRejected, EventsFailed; ItemsUpserted or UsersUpserted.
"""

from __future__ import annotations

import os

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from recsys.config import load_stage
from recsys.tracker.consumer import BatchReport
from recsys.tracker.service import TrackOutcome


def service_name(function: str) -> str:
    """The Powertools service of `function` ("feature_writer"): POWERTOOLS_SERVICE_NAME, else the stage's name."""
    return os.environ.get("POWERTOOLS_SERVICE_NAME") or load_stage().names.function(function)


def metrics_for(function: str) -> EphemeralMetrics:
    """Metrics of one function. Ephemeral: Powertools' `Metrics` share one metric set per process, which would mix
    the two functions' metrics when the local platform runs both handlers in one process."""
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or load_stage().names.metrics_namespace
    return EphemeralMetrics(namespace=namespace, service=service_name(function))


def record_batch(metrics: EphemeralMetrics, report: BatchReport) -> None:
    metrics.add_metric(name="EventsProcessed", unit=MetricUnit.Count, value=report.processed)
    metrics.add_metric(name="EventsDuplicate", unit=MetricUnit.Count, value=report.duplicates)
    metrics.add_metric(name="EventsFailed", unit=MetricUnit.Count, value=report.failed)
    metrics.add_metric(name="EventsPoison", unit=MetricUnit.Count, value=len(report.poison))
    metrics.add_metric(name="StoreErrors", unit=MetricUnit.Count, value=len(report.store_errors))
    for value in report.reflection_ms:
        metrics.add_metric(name="ReflectionTime", unit=MetricUnit.Milliseconds, value=value)
    for value in report.arrival_to_written_ms:
        metrics.add_metric(name="ReflectionTimeFromArrival", unit=MetricUnit.Milliseconds, value=value)


def record_upsert(metrics: EphemeralMetrics, kind: str, count: int) -> None:
    metrics.add_metric(name=f"{kind.capitalize()}Upserted", unit=MetricUnit.Count, value=count)


def record_track(metrics: EphemeralMetrics, outcome: TrackOutcome) -> None:
    for status, name in (("accepted", "EventsAccepted"), ("rejected", "EventsRejected"), ("failed", "EventsFailed")):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=outcome.count(status))
