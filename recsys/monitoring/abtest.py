"""A/B analysis of endpoint production variants, safe to look at every few minutes.

Inputs
- Exposures, logged by the recommend API, one per response: recommendation_id,
  variant, user_id, timestamp, and optionally latency_ms, degraded, items.
- Outcomes: the canonical events of the lake (`recsys.events.Event`). A click is
  a click, a purchase a conversion, and a listen/watch of at least the qualified
  duration a qualified play. An outcome is credited to the exposure with its
  recommendation_id; without one, to the same user's latest exposure (holding
  the item, when exposures list their items) within the attribution window.

Per variant (the user is the unit of randomisation and of independence):
- CTR = clicked exposures / exposures and CVR = converted exposures / exposures,
  ratio metrics with delta-method variances over users (one user's exposures
  are correlated), and Wilson intervals on the effective sample size;
- engagement = qualified plays per exposed user, a per-user mean with a normal interval;
- guardrails: p99 latency and degraded-response rate against absolute limits.

Across variants
- every challenger against the control, on every metric: the mixture SPRT
  (mSPRT, Johari et al., "Always Valid Inference", 2017/2022) gives an
  always-valid p-value and confidence sequence, so the job may look every five
  minutes and stop at any look without inflating the false-positive rate
  (a fixed-horizon test checked that often would). With several challengers the
  level is split between them (Bonferroni);
- sample-ratio mismatch: chi-square goodness of fit of the users (or exposures)
  per variant against the configured weights.

See docs/monitoring.md for the choices and their reasons.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

import numpy as np

from recsys.config import ABTestConfig
from recsys.events import CLICK, IMPRESSION, PLAY_EVENT_TYPES, PURCHASE, Event, InvalidEvent, parse_event_record
from recsys.monitoring import html, storage
from recsys.monitoring.metrics import Metric, MetricsPublisher
from recsys.monitoring.stats import (
    Estimate,
    always_valid_p_value,
    confidence_sequence,
    effective_wilson,
    mean_of_users,
    mixture_sd,
    normal_interval,
    ratio_of_user_sums,
    srm_test,
)

# Outcome types.
OUTCOME_CLICK, OUTCOME_PLAY, OUTCOME_PURCHASE = "click", "play", "purchase"
OUTCOME_TYPES = (OUTCOME_CLICK, OUTCOME_PLAY, OUTCOME_PURCHASE)
METRICS = ("ctr", "cvr", "engagement")
CONFIDENCE = 0.95
_MAX_ERRORS = 20


def _text(data: Mapping[str, Any], name: str, *, optional: bool = False) -> str | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}: required non-empty string")
    return value


def _number(data: Mapping[str, Any], name: str, *, optional: bool = False) -> float | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise ValueError(f"{name}: required finite number")
    return float(value)


@dataclass(frozen=True)
class Exposure:
    """One recommendation response served to a user by one variant."""

    recommendation_id: str
    variant: str
    user_id: str
    timestamp: float
    latency_ms: float | None = None
    degraded: bool = False
    items: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Any) -> "Exposure":
        """Decode a logged exposure; ValueError names the bad field."""
        if not isinstance(data, Mapping):
            raise ValueError("exposure: must be a JSON object")
        latency = _number(data, "latency_ms", optional=True)
        if latency is not None and latency < 0:
            raise ValueError("latency_ms: must be >= 0")
        degraded = data.get("degraded", False)
        if not isinstance(degraded, bool):
            raise ValueError("degraded: must be true or false")
        items = data.get("items") or []
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError("items: must be a list of item id strings")
        return cls(
            recommendation_id=_text(data, "recommendation_id"),
            variant=_text(data, "variant"),
            user_id=_text(data, "user_id"),
            timestamp=_number(data, "timestamp"),
            latency_ms=latency,
            degraded=degraded,
            items=tuple(items),
        )

    @classmethod
    def from_impression(cls, event: Event) -> "Exposure":
        """The exposure an impression event stands for: the recommend API logs each list it shows as one, with the
        serving variant, latency and degraded flag as properties (recsys.recommend.exposure)."""
        properties = event.properties
        if not properties.get("variant"):
            raise ValueError("properties.variant: an impression event needs the variant that served it")
        latency = properties.get("latency_ms")
        try:
            latency_ms = float(latency) if latency is not None else None
        except ValueError:
            raise ValueError(f"properties.latency_ms: {latency!r} is not a number") from None
        return cls(recommendation_id=event.recommendation_id or event.event_id, variant=properties["variant"],
                   user_id=event.user_id, timestamp=event.timestamp, latency_ms=latency_ms,
                   degraded=properties.get("degraded") == "true", items=tuple(event.impression))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"items": list(self.items)}


@dataclass(frozen=True)
class Outcome:
    """A click, qualified play or purchase, tied to a recommendation or to a user and item."""

    type: str
    timestamp: float
    recommendation_id: str | None = None
    user_id: str | None = None
    item_id: str | None = None
    event_id: str | None = None

    def __post_init__(self) -> None:
        if self.type not in OUTCOME_TYPES:
            raise ValueError(f"type: {self.type!r} is not one of {', '.join(OUTCOME_TYPES)}")
        if self.recommendation_id is None and self.user_id is None:
            raise ValueError("recommendation_id: required when there is no user_id")


def outcome_from_event(event: Event, qualified_play_s: float) -> Outcome | None:
    """The outcome a lake event stands for, or None (views, short plays, other types)."""
    if event.event_type == CLICK:
        kind = OUTCOME_CLICK
    elif event.event_type == PURCHASE:
        kind = OUTCOME_PURCHASE
    elif event.event_type in PLAY_EVENT_TYPES and (event.event_value or 0.0) >= qualified_play_s:
        kind = OUTCOME_PLAY
    else:
        return None
    return Outcome(kind, event.timestamp, event.recommendation_id, event.user_id, event.item_id, event.event_id)


@dataclass
class _ExposureTable:
    """Exposures as columns, with the outcomes credited to each."""

    exposures: list[Exposure]
    clicked: np.ndarray
    converted: np.ndarray
    plays: np.ndarray

    @classmethod
    def attribute(
        cls, exposures: Iterable[Exposure], outcomes: Iterable[Outcome], window_s: float
    ) -> tuple["_ExposureTable", int]:
        """Credit outcomes to exposures; also returns how many outcomes found no exposure."""
        unique: dict[str, Exposure] = {}
        for exposure in exposures:
            unique.setdefault(exposure.recommendation_id, exposure)  # a re-logged exposure counts once
        rows = list(unique.values())
        index = {e.recommendation_id: i for i, e in enumerate(rows)}
        by_user: dict[str, list[tuple[float, int]]] = {}
        for i, e in enumerate(rows):
            by_user.setdefault(e.user_id, []).append((e.timestamp, i))
        for history in by_user.values():
            history.sort()
        clicked, converted = np.zeros(len(rows), bool), np.zeros(len(rows), bool)
        plays = np.zeros(len(rows))
        unattributed = 0
        seen_events: set[str] = set()
        for outcome in outcomes:
            if outcome.event_id is not None:
                if outcome.event_id in seen_events:
                    continue  # the lake may hold a redelivered event twice
                seen_events.add(outcome.event_id)
            i = index.get(outcome.recommendation_id) if outcome.recommendation_id else None
            if i is None and outcome.recommendation_id is None:
                i = _latest_exposure(by_user.get(outcome.user_id or "", []), rows, outcome, window_s)
            if i is None:
                unattributed += 1
            elif outcome.type == OUTCOME_CLICK:
                clicked[i] = True
            elif outcome.type == OUTCOME_PURCHASE:
                converted[i] = True
            else:
                plays[i] += 1
        return cls(rows, clicked, converted, plays), unattributed


def _latest_exposure(
    history: list[tuple[float, int]], rows: list[Exposure], outcome: Outcome, window_s: float
) -> int | None:
    """The user's latest exposure at or before the outcome, within the window, that showed the item (if listed)."""
    position = bisect.bisect_right(history, (outcome.timestamp, len(rows)))
    for k in range(position - 1, -1, -1):
        timestamp, i = history[k]
        if outcome.timestamp - timestamp > window_s:
            return None
        items = rows[i].items
        if not items or outcome.item_id is None or outcome.item_id in items:
            return i
    return None


@dataclass(frozen=True)
class VariantStats:
    variant: str
    weight: float
    users: int
    exposures: int
    clicks: int
    conversions: int
    plays: float
    ctr: float
    ctr_low: float
    ctr_high: float
    cvr: float
    cvr_low: float
    cvr_high: float
    engagement: float
    engagement_low: float
    engagement_high: float
    latency_p99_ms: float | None
    degraded_rate: float
    guardrail_breaches: list[str]


@dataclass(frozen=True)
class Comparison:
    """One challenger against the control on one metric."""

    variant: str
    metric: str
    control_value: float
    variant_value: float
    difference: float
    relative_lift: float | None
    ci_low: float
    ci_high: float
    always_valid_p: float
    significant: bool


@dataclass(frozen=True)
class SrmCheck:
    unit: str
    statistic: float
    p_value: float
    observed: dict[str, int]
    expected_shares: dict[str, float]
    mismatch: bool


@dataclass(frozen=True)
class ABReport:
    generated_at: str
    window_start: float | None
    window_end: float
    control: str
    primary_metric: str
    alpha: float
    weights: dict[str, float]
    variants: list[VariantStats]
    comparisons: list[Comparison]
    srm: SrmCheck
    users_in_several_variants: int
    outcomes_unattributed: int
    rejected_records: int
    errors: list[str] = field(default_factory=list)
    # The promotion decision taken on this look, when the job decides (recsys.monitoring.promotion.run_ab_cycle).
    decision: dict[str, Any] | None = None

    def variant(self, name: str) -> VariantStats:
        for stats in self.variants:
            if stats.variant == name:
                return stats
        raise KeyError(name)

    def comparison(self, variant: str, metric: str) -> Comparison:
        for c in self.comparisons:
            if c.variant == variant and c.metric == metric:
                return c
        raise KeyError((variant, metric))

    def metrics(self) -> list[Metric]:
        out = [Metric("ABSampleRatioMismatch", 1.0 if self.srm.mismatch else 0.0)]
        for v in self.variants:
            dims = {"Variant": v.variant}
            out += [Metric("ABCtr", v.ctr, dims), Metric("ABCvr", v.cvr, dims),
                    Metric("ABEngagement", v.engagement, dims), Metric("ABExposures", v.exposures, dims),
                    Metric("ABUsers", v.users, dims), Metric("ABDegradedRate", v.degraded_rate, dims),
                    Metric("ABGuardrailBreaches", len(v.guardrail_breaches), dims)]
            if v.latency_p99_ms is not None:
                out.append(Metric("ABLatencyP99", v.latency_p99_ms, dims))
        out += [Metric("ABAlwaysValidPValue", c.always_valid_p, {"Variant": c.variant, "Metric": c.metric})
                for c in self.comparisons]
        return out

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ABReport":
        fields = dict(data)
        fields["variants"] = [VariantStats(**_nan_for_none(v)) for v in data["variants"]]
        fields["comparisons"] = [Comparison(**_nan_for_none(c)) for c in data["comparisons"]]
        fields["srm"] = SrmCheck(**_nan_for_none(data["srm"]))
        return cls(**fields)

    def summary(self) -> dict[str, Any]:
        """The figures a promotion record keeps."""
        return {
            "generated_at": self.generated_at,
            "window_start": self.window_start,
            "primary_metric": self.primary_metric,
            "users": {v.variant: v.users for v in self.variants},
            self.primary_metric: {v.variant: _finite_or_none(getattr(v, self.primary_metric)) for v in self.variants},
            "always_valid_p": {
                c.variant: c.always_valid_p for c in self.comparisons if c.metric == self.primary_metric
            },
            "srm_p_value": self.srm.p_value,
        }

    def to_html(self) -> str:
        variant_rows = [[v.variant, v.weight, v.users, v.exposures, v.ctr, f"[{v.ctr_low:.4f}, {v.ctr_high:.4f}]",
                         v.cvr, f"[{v.cvr_low:.4f}, {v.cvr_high:.4f}]", v.engagement,
                         f"[{v.engagement_low:.3f}, {v.engagement_high:.3f}]", v.latency_p99_ms, v.degraded_rate,
                         "; ".join(v.guardrail_breaches) or "ok"] for v in self.variants]
        comparison_rows = [[c.variant, c.metric, c.control_value, c.variant_value, c.difference, c.relative_lift,
                            f"[{c.ci_low:.4g}, {c.ci_high:.4g}]", c.always_valid_p, c.significant]
                           for c in self.comparisons]
        srm = self.srm
        sections = [
            html.paragraph(f"Generated {self.generated_at}; control {self.control}; primary metric "
                           f"{self.primary_metric}; alpha {self.alpha}."),
            html.heading("Variants (95% intervals; user-clustered)"),
            html.table(["variant", "weight", "users", "exposures", "CTR", "CTR CI", "CVR", "CVR CI", "plays/user",
                        "plays/user CI", "p99 ms", "degraded", "guardrails"], variant_rows),
            html.heading("Against the control (always-valid mSPRT)"),
            html.table(["variant", "metric", "champion", "variant", "difference", "lift", "confidence sequence",
                        "always-valid p", "significant"], comparison_rows),
            html.heading("Sample-ratio mismatch"),
            html.table(["unit", "chi-square", "p", "observed", "expected shares", "mismatch"],
                       [[srm.unit, srm.statistic, srm.p_value, json.dumps(srm.observed),
                         json.dumps({k: round(v, 4) for k, v in srm.expected_shares.items()}), srm.mismatch]]),
            html.paragraph(f"Users seen in several variants: {self.users_in_several_variants}; outcomes without "
                           f"an exposure: {self.outcomes_unattributed}; rejected records: {self.rejected_records}."),
        ]
        if self.decision is not None:
            applied = bool(self.decision.get("applied"))
            text = f"{'Promoted' if applied else 'No change'}: {self.decision.get('reason')}"
            if applied:
                text += f"; new weights {json.dumps(self.decision.get('new_weights'))}"
            sections += [html.heading("Promotion"), html.paragraph(text)]
        if self.errors:
            sections += [html.heading("Rejected records (first)"), html.table(["error"], [[e] for e in self.errors])]
        return html.page("A/B report", sections)


def _finite_or_none(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return _finite_or_none(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _nan_for_none(data: Mapping[str, Any]) -> dict[str, Any]:
    """Undo _json_safe for the float fields a report stores (None stays None where it means 'absent')."""
    keep_none = {"latency_p99_ms", "relative_lift"}
    return {k: (float("nan") if v is None and k not in keep_none else v) for k, v in data.items()}


def _variant_stats(
    name: str, weight: float, table: _ExposureTable, rows: np.ndarray, config: ABTestConfig
) -> tuple[VariantStats, dict[str, Estimate]]:
    users = np.array([table.exposures[i].user_id for i in rows])
    codes, per_user = np.unique(users, return_inverse=True) if rows.size else (np.array([]), np.array([], int))
    exposures_u = np.bincount(per_user, minlength=codes.size).astype(float)
    clicks_u = np.bincount(per_user, weights=table.clicked[rows], minlength=codes.size)
    conversions_u = np.bincount(per_user, weights=table.converted[rows], minlength=codes.size)
    plays_u = np.bincount(per_user, weights=table.plays[rows], minlength=codes.size)
    estimates = {
        "ctr": ratio_of_user_sums(clicks_u, exposures_u),
        "cvr": ratio_of_user_sums(conversions_u, exposures_u),
        "engagement": mean_of_users(plays_u),
    }
    latencies = np.array([table.exposures[i].latency_ms for i in rows if table.exposures[i].latency_ms is not None])
    degraded = np.array([table.exposures[i].degraded for i in rows], dtype=bool)
    latency_p99 = float(np.percentile(latencies, 99)) if latencies.size else None
    degraded_rate = float(degraded.mean()) if degraded.size else 0.0
    breaches = []
    if latency_p99 is not None and latency_p99 > config.guardrail_p99_latency_ms:
        breaches.append(f"p99 latency {latency_p99:.0f} ms > {config.guardrail_p99_latency_ms:.0f} ms")
    if degraded_rate > config.guardrail_degraded_rate:
        breaches.append(f"degraded rate {degraded_rate:.2%} > {config.guardrail_degraded_rate:.2%}")
    ctr_ci = effective_wilson(estimates["ctr"], rows.size, CONFIDENCE)
    cvr_ci = effective_wilson(estimates["cvr"], rows.size, CONFIDENCE)
    engagement_ci = normal_interval(estimates["engagement"], CONFIDENCE)
    stats = VariantStats(
        variant=name, weight=weight, users=int(codes.size), exposures=int(rows.size),
        clicks=int(clicks_u.sum()), conversions=int(conversions_u.sum()), plays=float(plays_u.sum()),
        ctr=estimates["ctr"].value, ctr_low=ctr_ci[0], ctr_high=ctr_ci[1],
        cvr=estimates["cvr"].value, cvr_low=cvr_ci[0], cvr_high=cvr_ci[1],
        engagement=estimates["engagement"].value, engagement_low=engagement_ci[0], engagement_high=engagement_ci[1],
        latency_p99_ms=latency_p99, degraded_rate=degraded_rate, guardrail_breaches=breaches,
    )
    return stats, estimates


def _compare(variant: str, metric: str, control: Estimate, challenger: Estimate, config: ABTestConfig,
             level: float, enough_users: bool, previous_p: float | None) -> Comparison:
    difference = challenger.value - control.value
    variance = control.variance + challenger.variance
    tau = mixture_sd(control.value, challenger.value, config.msprt_mixture_relative_sd)
    p_value = float(always_valid_p_value(difference, variance, tau)) if np.isfinite(difference) else 1.0
    if previous_p is not None:
        p_value = min(p_value, previous_p)  # the always-valid p-value is the running minimum over looks
    low, high = confidence_sequence(difference, variance, tau, level) if np.isfinite(difference) else (-np.inf, np.inf)
    lift = difference / control.value if control.value and np.isfinite(control.value) else None
    return Comparison(variant, metric, control.value, challenger.value, difference, lift, low, high, p_value,
                      significant=bool(enough_users and p_value < level))


def analyze(
    exposures: Iterable[Exposure],
    outcomes: Iterable[Outcome],
    weights: Mapping[str, float],
    config: ABTestConfig,
    *,
    window_start: float | None = None,
    now: datetime | None = None,
    previous: ABReport | None = None,
) -> ABReport:
    """The A/B report of exposures and outcomes under the configured traffic `weights`.

    `previous` is the last report of the same allocation period (same window_start):
    its always-valid p-values carry over as running minima.
    """
    now = now or datetime.now(timezone.utc)
    table, unattributed = _ExposureTable.attribute(exposures, outcomes, config.attribution_window_s)
    variant_of = np.array([e.variant for e in table.exposures])
    names = sorted(set(weights) | set(variant_of.tolist()))
    all_weights = {name: float(weights.get(name, 0.0)) for name in names}
    variants, estimates = [], {}
    for name in names:
        stats, estimate = _variant_stats(name, all_weights[name], table, np.flatnonzero(variant_of == name), config)
        variants.append(stats)
        estimates[name] = estimate
    by_name = {v.variant: v for v in variants}

    carried = {}
    if previous is not None and previous.window_start == window_start:
        carried = {(c.variant, c.metric): c.always_valid_p for c in previous.comparisons}
    challengers = [n for n in names if n != config.control_variant]
    level = config.alpha / max(len(challengers), 1)
    comparisons = []
    if config.control_variant in by_name:
        control = by_name[config.control_variant]
        for name in challengers:
            enough = min(control.users, by_name[name].users) >= config.min_users_per_variant
            for metric in METRICS:
                comparisons.append(_compare(name, metric, estimates[config.control_variant][metric],
                                            estimates[name][metric], config, level, enough,
                                            carried.get((name, metric))))

    if config.srm_unit == "user":
        observed = {v.variant: v.users for v in variants}
    else:
        observed = {v.variant: v.exposures for v in variants}
    srm = srm_test(observed, all_weights)
    user_variants: dict[str, set[str]] = {}
    for e in table.exposures:
        user_variants.setdefault(e.user_id, set()).add(e.variant)
    return ABReport(
        generated_at=now.isoformat(),
        window_start=window_start,
        window_end=now.timestamp(),
        control=config.control_variant,
        primary_metric=config.primary_metric,
        alpha=config.alpha,
        weights=all_weights,
        variants=variants,
        comparisons=comparisons,
        srm=SrmCheck(config.srm_unit, srm.statistic, srm.p_value, srm.observed, srm.expected_shares,
                     mismatch=srm.p_value < config.srm_p_threshold),
        users_in_several_variants=sum(1 for v in user_variants.values() if len(v) > 1),
        outcomes_unattributed=unattributed,
        rejected_records=0,
    )


@dataclass
class _Rejects:
    count: int = 0
    errors: list[str] = field(default_factory=list)

    def add(self, error: str) -> None:
        self.count += 1
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append(error)


def read_exposures(source: str, since: float | None, rejects: _Rejects) -> Iterator[Exposure]:
    """Exposure records, or the lake's canonical events, of which the impressions are exposures (others skipped)."""
    for line in storage.iter_lines(source, since=since):
        try:
            data = json.loads(line.text)
            if isinstance(data, Mapping) and "event_type" in data:
                event = parse_event_record(data)
                if event.event_type != IMPRESSION:
                    continue
                exposure = Exposure.from_impression(event)
            else:
                exposure = Exposure.from_dict(data)
        except (InvalidEvent, ValueError) as exc:
            rejects.add(f"{line.where}: {exc}")
            continue
        if since is None or exposure.timestamp >= since:
            yield exposure


def read_outcomes(source: str, since: float | None, qualified_play_s: float, rejects: _Rejects) -> Iterator[Outcome]:
    """Outcomes from canonical event JSON lines (the lake); other event types are skipped."""
    for line in storage.iter_lines(source, since=since):
        try:
            event = parse_event_record(json.loads(line.text))
        except (InvalidEvent, ValueError) as exc:
            rejects.add(f"{line.where}: {exc}")
            continue
        outcome = outcome_from_event(event, qualified_play_s)
        if outcome is not None and (since is None or outcome.timestamp >= since):
            yield outcome


AB_REPORT_KIND = "ab"


def load_previous_report(report_uri: str) -> ABReport | None:
    """The last look's report, or None. An unreadable one only costs the p-values' carry-over."""
    uri = storage.join(report_uri, f"{AB_REPORT_KIND}-latest.json")
    if not storage.exists(uri):
        return None
    try:
        return ABReport.from_dict(storage.read_json(uri))
    except (KeyError, TypeError, ValueError):
        return None


def analyze_sources(
    exposures_source: str,
    outcomes_source: str,
    weights: Mapping[str, float],
    config: ABTestConfig,
    *,
    qualified_play_s: float,
    window_start: float | None = None,
    now: datetime | None = None,
    previous: ABReport | None = None,
) -> ABReport:
    """`analyze` over exposure JSON lines and lake event JSON lines since `window_start`; bad records are counted."""
    rejects = _Rejects()
    report = analyze(
        read_exposures(exposures_source, window_start, rejects),
        read_outcomes(outcomes_source, window_start, qualified_play_s, rejects),
        weights, config, window_start=window_start, now=now, previous=previous,
    )
    return replace(report, rejected_records=rejects.count, errors=rejects.errors)


def write_ab_report(report_uri: str, report: ABReport) -> list[str]:
    stamp = datetime.fromisoformat(report.generated_at).strftime("%Y%m%dT%H%M%SZ")
    return storage.write_report(report_uri, AB_REPORT_KIND, stamp, report.to_dict(), report.to_html())


def run_ab_job(
    exposures_source: str,
    outcomes_source: str,
    weights: Mapping[str, float],
    config: ABTestConfig,
    publisher: MetricsPublisher,
    *,
    qualified_play_s: float,
    window_start: float | None = None,
    report_uri: str | None = None,
    now: datetime | None = None,
) -> ABReport:
    """One look: read exposures and outcomes since `window_start`, analyse, publish, write the report.

    `window_start` is the start of the current allocation period (the experiment's
    start or the last weight change, see recsys.monitoring.promotion.run_ab_cycle):
    results from before a change are not comparable with the new split.
    """
    previous = load_previous_report(report_uri) if report_uri else None
    report = analyze_sources(exposures_source, outcomes_source, weights, config, qualified_play_s=qualified_play_s,
                             window_start=window_start, now=now, previous=previous)
    publisher.publish(report.metrics())
    if report_uri:
        write_ab_report(report_uri, report)
    return report


def weights_of(variants: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Current weights from a DescribeEndpoint ProductionVariants list."""
    return {v["VariantName"]: float(v.get("CurrentWeight", v.get("DesiredWeight", 0.0))) for v in variants}
