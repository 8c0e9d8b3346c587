"""Shifting endpoint traffic toward an A/B winner, only when the statistics and the config allow it.

`decide_promotion(report, config)` applies the decision rule to an A/B report:
promotion is enabled, no sample-ratio mismatch, no guardrail breached, every
variant has the minimum users, and the primary metric differs significantly
(always-valid p below the per-challenger level). The winner is the challenger
with the largest significant gain over the control, or the control when
challengers are only significantly worse (a roll-back). New weights move
`step` of the traffic not yet on the winner onto it; the total is unchanged.

`apply_promotion` sends the new weights with SageMaker's
UpdateEndpointWeightsAndCapacities, after checking the endpoint still has the
weights the decision was made on, and records the decision as a JSON line.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from recsys.config import MonitoringConfig, PromotionConfig
from recsys.monitoring import storage
from recsys.monitoring.abtest import ABReport, analyze_sources, load_previous_report, weights_of, write_ab_report
from recsys.monitoring.metrics import Metric, MetricsPublisher

# Weights below this share of the total are moved to the winner, so that repeated steps end.
MIN_WEIGHT_SHARE = 0.01
PROMOTION_PREFIX = "promotion-"


@dataclass(frozen=True)
class Decision:
    act: bool
    reason: str
    winner: str | None = None
    old_weights: dict[str, float] = field(default_factory=dict)
    new_weights: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)


def stepped_weights(weights: Mapping[str, float], winner: str, step: float) -> dict[str, float]:
    """Move `step` of every other variant's weight to the winner; tiny leftovers go too. The total is kept."""
    if winner not in weights:
        raise ValueError(f"winner {winner!r} has no weight")
    total = sum(weights.values())
    new = {name: (w if name == winner else w * (1 - step)) for name, w in weights.items()}
    for name in new:
        if name != winner and new[name] < MIN_WEIGHT_SHARE * total:
            new[name] = 0.0
    new[winner] = total - sum(w for name, w in new.items() if name != winner)
    return new


def decide_promotion(report: ABReport, config: PromotionConfig) -> Decision:
    weights = dict(report.weights)
    summary = report.summary()

    def hold(reason: str) -> Decision:
        return Decision(False, reason, None, weights, weights, summary)

    if not config.enabled:
        return hold("promotion is disabled in the config (monitoring.promotion.enabled)")
    if report.srm.mismatch:
        return hold(f"sample-ratio mismatch (p={report.srm.p_value:.2g}): the split is broken, results are not trusted")
    breaches = [f"{v.variant}: {b}" for v in report.variants for b in v.guardrail_breaches]
    if breaches:
        return hold("guardrail breached: " + "; ".join(breaches))
    if not report.comparisons:
        return hold(f"no challenger to compare with the control {report.control!r}")
    few = [f"{v.variant} ({v.users})" for v in report.variants if v.users < config.min_users_per_variant]
    if few:
        return hold(f"below {config.min_users_per_variant} users per variant: " + ", ".join(few))
    primary = [c for c in report.comparisons if c.metric == report.primary_metric]
    significant = [c for c in primary if c.significant]
    if not significant:
        best = min(c.always_valid_p for c in primary)
        return hold(f"no significant difference in {report.primary_metric} (smallest always-valid p={best:.3g})")
    better = [c for c in significant if c.difference > 0]
    if better:
        best = max(better, key=lambda c: c.difference)
        winner, why = best.variant, f"{best.variant} beats {report.control} on {report.primary_metric}"
        evidence = best
    else:
        winner = report.control
        evidence = min(significant, key=lambda c: c.difference)
        why = f"{report.control} beats {evidence.variant} on {report.primary_metric}"
    new_weights = stepped_weights(weights, winner, config.step)
    if all(abs(new_weights[n] - weights[n]) < 1e-12 for n in weights):
        return Decision(False, f"{why}, and all traffic is already on {winner}", winner, weights, weights, summary)
    lift = f"{evidence.relative_lift:+.2%}" if evidence.relative_lift is not None else f"{evidence.difference:+.4g}"
    reason = f"{why}: difference {lift}, always-valid p={evidence.always_valid_p:.3g}"
    return Decision(True, reason, winner, weights, new_weights, summary)


class StaleDecision(RuntimeError):
    """The endpoint's weights changed since the report the decision is based on."""


def apply_promotion(
    decision: Decision,
    endpoint_name: str,
    variant_names: Mapping[str, str],
    sagemaker_client: Any,
    *,
    log_uri: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Send the decision's weights to the endpoint and record it; returns the record.

    `variant_names` maps each A/B variant to its endpoint production variant name.
    """
    if not decision.act:
        raise ValueError(f"decision does not promote: {decision.reason}")
    missing = sorted(set(decision.new_weights) - set(variant_names))
    if missing:
        raise ValueError(f"variant_names: no production variant for {missing}")
    current = weights_of(sagemaker_client.describe_endpoint(EndpointName=endpoint_name)["ProductionVariants"])
    expected = {variant_names[name]: weight for name, weight in decision.old_weights.items()}
    if any(abs(current.get(name, -1.0) - weight) > 1e-6 for name, weight in expected.items()):
        raise StaleDecision(f"endpoint {endpoint_name} has weights {current}, the decision assumed {expected}")
    desired = [{"VariantName": variant_names[name], "DesiredWeight": float(weight)}
               for name, weight in sorted(decision.new_weights.items())]
    sagemaker_client.update_endpoint_weights_and_capacities(
        EndpointName=endpoint_name, DesiredWeightsAndCapacities=desired
    )
    now = now or datetime.now(timezone.utc)
    record = {"time": now.timestamp(), "time_iso": now.isoformat(), "endpoint": endpoint_name,
              "production_variants": dict(variant_names)} | asdict(decision)
    name = f"{PROMOTION_PREFIX}{now.strftime('%Y%m%dT%H%M%S%fZ')}-{uuid.uuid4().hex[:8]}.jsonl"
    storage.write_bytes(storage.join(log_uri, name), (json.dumps(record, sort_keys=True) + "\n").encode(),
                        "application/x-ndjson")
    return record


def load_promotions(log_uri: str) -> list[dict[str, Any]]:
    """Every recorded promotion under `log_uri`, oldest first."""
    if not storage.is_s3(log_uri) and not storage.exists(log_uri):
        return []
    records = []
    for uri in storage.list_files(log_uri):
        if uri.rsplit("/", 1)[-1].startswith(PROMOTION_PREFIX):
            records += [json.loads(line) for line in storage.read_bytes(uri).decode().splitlines() if line.strip()]
    return sorted(records, key=lambda r: r["time"])


def latest_promotion(log_uri: str) -> dict[str, Any] | None:
    """The last weight change: the A/B analysis window starts at its time."""
    records = load_promotions(log_uri)
    return records[-1] if records else None


def run_ab_cycle(
    exposures_source: str,
    outcomes_source: str,
    config: MonitoringConfig,
    publisher: MetricsPublisher,
    *,
    endpoint_name: str,
    variant_names: Mapping[str, str],
    sagemaker_client: Any,
    log_uri: str,
    report_uri: str,
    qualified_play_s: float,
    experiment_start: float | None = None,
    now: datetime | None = None,
) -> tuple[ABReport, Decision]:
    """The scheduled A/B job with promotion: look, decide, and (if allowed) shift the endpoint's weights.

    The weights under test are the endpoint's current ones; the analysis window
    starts at the later of `experiment_start` and the last recorded promotion,
    since exposures under an earlier split are not comparable with this one.
    """
    now = now or datetime.now(timezone.utc)
    current = weights_of(sagemaker_client.describe_endpoint(EndpointName=endpoint_name)["ProductionVariants"])
    missing = sorted(name for name in variant_names.values() if name not in current)
    if missing:
        raise ValueError(f"variant_names: endpoint {endpoint_name} has no production variants {missing}")
    weights = {variant: current[production] for variant, production in variant_names.items()}
    last = latest_promotion(log_uri)
    starts = [t for t in (experiment_start, last["time"] if last else None) if t is not None]
    window_start = max(starts) if starts else None
    report = analyze_sources(exposures_source, outcomes_source, weights, config.ab, qualified_play_s=qualified_play_s,
                             window_start=window_start, now=now, previous=load_previous_report(report_uri))
    decision = decide_promotion(report, config.promotion)
    if decision.act:
        apply_promotion(decision, endpoint_name, variant_names, sagemaker_client, log_uri=log_uri, now=now)
    report = replace(report, decision=asdict(decision) | {"applied": decision.act})
    publisher.publish([*report.metrics(), Metric("ABPromotions", 1.0 if decision.act else 0.0)])
    write_ab_report(report_uri, report)
    return report, decision
