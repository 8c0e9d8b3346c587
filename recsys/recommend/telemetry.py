"""CloudWatch metrics (EMF, through Powertools) of the recommend API and the batch recommendations job.

Namespace: POWERTOOLS_METRICS_NAMESPACE (the stacks set `StageConfig.names.metrics_namespace`), the same by
default locally; dimension `service` (the function name). Per response:

- RecommendRequests (1), RecommendLatency (ms), RecommendDegraded (1 when degraded, else 0);
- EndpointFallbacks (the fallback ranking answered), CircuitOpen (the breaker refused the call);
- BoostsAutoDisabled (boosts the CTR rule switched off), BoostCapExceeded (boosts dropped by a cap: editors
  re-check), ExposuresLogged (impression events handed to the tracker path).
"""

from __future__ import annotations

import os
from typing import Protocol

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from recsys.config import load_stage


class ResponseStats(Protocol):
    latency_ms: float
    degraded: bool
    fallback: bool
    circuit_open: bool
    boosts_disabled: int
    boosts_capped: int
    exposures: int


def service_name(function: str = "recommend") -> str:
    return os.environ.get("POWERTOOLS_SERVICE_NAME") or load_stage().names.function(function)


def metrics_for_recommend(function: str = "recommend") -> EphemeralMetrics:
    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or load_stage().names.metrics_namespace
    return EphemeralMetrics(namespace=namespace, service=service_name(function))


def record_response(metrics: EphemeralMetrics, stats: ResponseStats) -> None:
    metrics.add_metric(name="RecommendRequests", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="RecommendLatency", unit=MetricUnit.Milliseconds, value=stats.latency_ms)
    metrics.add_metric(name="RecommendDegraded", unit=MetricUnit.Count, value=int(stats.degraded))
    metrics.add_metric(name="EndpointFallbacks", unit=MetricUnit.Count, value=int(stats.fallback))
    metrics.add_metric(name="CircuitOpen", unit=MetricUnit.Count, value=int(stats.circuit_open))
    metrics.add_metric(name="BoostsAutoDisabled", unit=MetricUnit.Count, value=stats.boosts_disabled)
    metrics.add_metric(name="BoostCapExceeded", unit=MetricUnit.Count, value=stats.boosts_capped)
    metrics.add_metric(name="ExposuresLogged", unit=MetricUnit.Count, value=stats.exposures)
