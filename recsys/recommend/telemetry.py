"""CloudWatch metrics (EMF, through Powertools) of the recommend API and the batch recommendations job.

Namespace: POWERTOOLS_METRICS_NAMESPACE (the stacks set `StageConfig.names.metrics_namespace`), the same by
default locally; dimension `service` (the function name; `recsys.tracker.telemetry.metrics_for` makes the metric
set). Per response:

- RecommendRequests (1), RecommendLatency (ms), RecommendDegraded (1 when degraded, else 0);
- EndpointFallbacks (the fallback ranking answered), CircuitOpen (the breaker refused the call);
- BoostsAutoDisabled (boosts the CTR rule switched off), BoostCapExceeded (boosts dropped by a cap: editors
  re-check), ExposuresLogged (impression events handed to the tracker path).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

if TYPE_CHECKING:
    from recsys.recommend.service import ResponseStats


def record_response(metrics: EphemeralMetrics, stats: ResponseStats) -> None:
    metrics.add_metric(name="RecommendRequests", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="RecommendLatency", unit=MetricUnit.Milliseconds, value=stats.latency_ms)
    metrics.add_metric(name="RecommendDegraded", unit=MetricUnit.Count, value=int(stats.degraded))
    metrics.add_metric(name="EndpointFallbacks", unit=MetricUnit.Count, value=int(stats.fallback))
    metrics.add_metric(name="CircuitOpen", unit=MetricUnit.Count, value=int(stats.circuit_open))
    metrics.add_metric(name="BoostsAutoDisabled", unit=MetricUnit.Count, value=stats.boosts_disabled)
    metrics.add_metric(name="BoostCapExceeded", unit=MetricUnit.Count, value=stats.boosts_capped)
    metrics.add_metric(name="ExposuresLogged", unit=MetricUnit.Count, value=stats.exposures)
