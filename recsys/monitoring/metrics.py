"""The CloudWatch metrics the monitoring jobs emit, and where they go.

`CATALOGUE` is the contract with the dashboards and alarms: every metric a job
publishes is declared here with its unit and its dimension names, and
`Metric` refuses anything else, so a dashboard built from the catalogue only
shows metrics the code really emits.

Publishers are a thin adapter: `CloudWatchPublisher` (PutMetricData in
batches, through `recsys.aws.client`) and `InMemoryPublisher` (tests, local
reports).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

# Units are CloudWatch's StandardUnit strings. Shares are plain ratios in [0, 1] ("None").
COUNT = "Count"
NONE = "None"
MILLISECONDS = "Milliseconds"


@dataclass(frozen=True)
class MetricSpec:
    unit: str
    dimensions: tuple[str, ...]
    description: str


CATALOGUE: dict[str, MetricSpec] = {
    # Drift job (recsys.monitoring.drift)
    "FeatureDriftPSI": MetricSpec(NONE, ("Feature",), "PSI of one feature, served vs training baseline"),
    "FeatureDriftKS": MetricSpec(NONE, ("Feature",), "two-sample KS statistic D of one continuous feature"),
    "PredictionDriftPSI": MetricSpec(NONE, (), "PSI of the predicted scores, served vs baseline"),
    "PredictionDriftKS": MetricSpec(NONE, (), "KS statistic D of the predicted scores"),
    "PredictionPriorShift": MetricSpec(NONE, (), "(mean served prediction - baseline positive rate) / positive rate"),
    "DriftedFeatures": MetricSpec(COUNT, (), "features (and the prediction) in alarm state"),
    "DriftRowsCompared": MetricSpec(COUNT, (), "served rows the drift job compared"),
    # A/B job (recsys.monitoring.abtest)
    "ABCtr": MetricSpec(NONE, ("Variant",), "click-through rate per exposure"),
    "ABCvr": MetricSpec(NONE, ("Variant",), "purchase rate per exposure"),
    "ABEngagement": MetricSpec(NONE, ("Variant",), "qualified plays per exposed user"),
    "ABExposures": MetricSpec(COUNT, ("Variant",), "exposures in the analysis window"),
    "ABUsers": MetricSpec(COUNT, ("Variant",), "exposed users in the analysis window"),
    "ABLatencyP99": MetricSpec(MILLISECONDS, ("Variant",), "p99 latency of the variant's responses"),
    "ABDegradedRate": MetricSpec(NONE, ("Variant",), "share of the variant's responses that were degraded"),
    "ABGuardrailBreaches": MetricSpec(COUNT, ("Variant",), "guardrails the variant breaches"),
    "ABAlwaysValidPValue": MetricSpec(NONE, ("Variant", "Metric"), "mSPRT always-valid p-value vs control"),
    "ABSampleRatioMismatch": MetricSpec(COUNT, (), "1 when the traffic split mismatches the weights, else 0"),
    "ABPromotions": MetricSpec(COUNT, (), "variant weight changes applied to the endpoint"),
    # Showcase health job (recsys.monitoring.showcase_health)
    "ShowcaseUnchangedShare": MetricSpec(NONE, (), "share of users whose showcase equals yesterday's"),
    "ShowcaseDailyNovelty": MetricSpec(NONE, (), "share of visible items not visible yesterday"),
    "ShowcaseWeeklyShelfChange": MetricSpec(NONE, (), "share of shelves whose items changed in 7 days"),
    "ShowcaseUsersCompared": MetricSpec(COUNT, (), "users with a showcase today and yesterday"),
}

# CloudWatch accepts at most 1000 metric data per PutMetricData call (and 1 MB).
MAX_BATCH = 1000


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    dimensions: Mapping[str, str] = field(default_factory=dict)
    timestamp: datetime | None = None

    def __post_init__(self) -> None:
        spec = CATALOGUE.get(self.name)
        if spec is None:
            raise ValueError(f"metric name {self.name!r} is not in the monitoring catalogue")
        if tuple(sorted(self.dimensions)) != tuple(sorted(spec.dimensions)):
            raise ValueError(
                f"metric {self.name}: dimensions {sorted(self.dimensions)} differ from the catalogue's "
                f"{sorted(spec.dimensions)}"
            )

    @property
    def unit(self) -> str:
        return CATALOGUE[self.name].unit


class MetricsPublisher(Protocol):
    def publish(self, metrics: Sequence[Metric]) -> None: ...


def finite(metrics: Iterable[Metric]) -> list[Metric]:
    """CloudWatch rejects NaN and infinities: a statistic that could not be computed is left out."""
    return [metric for metric in metrics if math.isfinite(metric.value)]


class InMemoryPublisher:
    """Keeps what was published; for tests and local reports."""

    def __init__(self) -> None:
        self.metrics: list[Metric] = []

    def publish(self, metrics: Sequence[Metric]) -> None:
        self.metrics.extend(finite(metrics))

    def values(self, name: str, **dimensions: str) -> list[float]:
        return [m.value for m in self.metrics if m.name == name and dict(m.dimensions) == dimensions]

    def value(self, name: str, **dimensions: str) -> float:
        found = self.values(name, **dimensions)
        if len(found) != 1:
            raise KeyError(f"{len(found)} values of {name} {dimensions}, expected 1")
        return found[0]


class CloudWatchPublisher:
    """PutMetricData in batches of at most MAX_BATCH."""

    def __init__(self, namespace: str, client: Any | None = None, batch_size: int = MAX_BATCH) -> None:
        if not 1 <= batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size: must lie in [1, {MAX_BATCH}]")
        if client is None:
            from recsys import aws

            client = aws.client("cloudwatch")
        self.namespace = namespace
        self.client = client
        self.batch_size = batch_size

    def publish(self, metrics: Sequence[Metric]) -> None:
        now = datetime.now(timezone.utc)
        data = [_datum(metric, now) for metric in finite(metrics)]
        for start in range(0, len(data), self.batch_size):
            self.client.put_metric_data(Namespace=self.namespace, MetricData=data[start : start + self.batch_size])


def _datum(metric: Metric, now: datetime) -> dict[str, Any]:
    return {
        "MetricName": metric.name,
        "Dimensions": [{"Name": name, "Value": value} for name, value in sorted(metric.dimensions.items())],
        "Value": float(metric.value),
        "Unit": metric.unit,
        "Timestamp": metric.timestamp or now,
    }
