"""The local run's HTML report for on-call: one self-contained folder, readable offline, no AWS needed.

    report = LocalReport(stage="dev", evaluation=run.report, evaluation_paths=run.report_paths,
                         gate=run.decision.to_dict(), steps={...}, events=EventCounts(...),
                         drift=drift_from_files(baseline, served, thresholds), ab=ab_from_files(...),
                         latency=[LatencyFigure(...)])                        # latency: optional, added by later steps
    index = write_local_report(report, Path(".local/report"))

Sections: the pipeline run (steps, timings, gate decision), the offline evaluation (tables and the evaluation's
plots, copied next to index.html), events (sent / accepted / rejected, what Redis and the lake hold), drift (the
monitoring drift job on the served rows against the training baseline), A/B (the monitoring A/B job on logged
exposures), latency. A section whose input is missing says what is missing and which step produces it.
"""

from __future__ import annotations

import html as html_lib
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from recsys.config import ABTestConfig, DriftMonitorConfig
from recsys.evaluation.report import TABLE_METRICS, ordered_systems
from recsys.monitoring import html
from recsys.monitoring.abtest import ABReport, analyze_sources
from recsys.monitoring.drift import DriftReport, run_drift_job
from recsys.monitoring.metrics import InMemoryPublisher

EVALUATION_PLOTS = ("ndcg", "recall", "reliability")


@dataclass(frozen=True)
class EventCounts:
    """What the replay sent and where the events ended up (None: not measurable here, with the reason)."""

    sent: int
    accepted: int
    rejected: int
    failed: int
    redis_events: int | None = None
    lake_events: int | None = None
    lake_note: str = ""


@dataclass(frozen=True)
class LatencyFigure:
    name: str
    p50_ms: float
    p99_ms: float
    throughput_rps: float | None = None
    target: str = ""
    conditions: str = ""


@dataclass
class LocalReport:
    stage: str
    evaluation: Mapping[str, Any] | None = None
    evaluation_paths: Mapping[str, Path] = field(default_factory=dict)
    gate: Mapping[str, Any] | None = None
    steps: Mapping[str, tuple[str, float | None]] = field(default_factory=dict)  # step -> (outcome, seconds)
    events: EventCounts | None = None
    drift: DriftReport | str | None = None  # a report, or why there is none
    ab: ABReport | str | None = None
    latency: Sequence[LatencyFigure] = ()
    extra: Mapping[str, str] = field(default_factory=dict)  # section title -> HTML fragment, for later steps


def drift_from_files(baseline: Path, served_rows: Path, thresholds: DriftMonitorConfig) -> DriftReport | str:
    """The monitoring drift job on local files, or what is missing for it."""
    if not baseline.exists():
        return f"no drift baseline at {baseline} (the daily pipeline's Train step writes it)"
    if not served_rows.exists():
        return f"no served rows at {served_rows} (scoring on the inference server logs them)"
    return run_drift_job(str(baseline), str(served_rows), thresholds, InMemoryPublisher())


def ab_from_files(exposures: Path | str, outcomes: str, weights: Mapping[str, float], config: ABTestConfig,
                  qualified_play_s: float) -> ABReport | str:
    """The monitoring A/B analysis of exposures (exposure JSON lines, or the lake's impression events: a folder or
    an s3:// prefix) against the lake's events, or what is missing for it."""
    local = Path(exposures) if not str(exposures).startswith("s3://") else None
    if local is not None and (not local.exists() or not any(local.rglob("*") if local.is_dir() else [local])):
        return f"no exposures at {exposures}: the recommend API logs one per response"
    if not weights:
        return "no variants deployed: nothing was served"
    report = analyze_sources(str(exposures), str(outcomes), weights, config, qualified_play_s=qualified_play_s)
    if not any(variant.exposures for variant in report.variants):
        return f"no exposures at {exposures}: the recommend API logs one per response"
    return report


def _steps_section(report: LocalReport) -> str:
    if not report.steps:
        return html.paragraph("The daily pipeline did not run.")
    rows = [[step, seconds, outcome] for step, (outcome, seconds) in report.steps.items()]
    parts = [html.table(["step", "seconds", "outcome"], rows)]
    if report.gate is not None:
        verdict = "PASSED" if report.gate["passed"] else "REJECTED"
        parts.append(f"<p><b>Quality gate: {verdict}</b> — {html_lib.escape('; '.join(report.gate['reasons']))}</p>")
        figures = [["candidate", *(report.gate["candidate"][k] for k in ("ndcg", "popularity_ndcg", "auc"))]]
        if report.gate.get("champion"):
            figures.append(["champion", *(report.gate["champion"][k] for k in ("ndcg", "popularity_ndcg", "auc"))])
        parts.append(html.table(["model", "NDCG", "popularity NDCG", "pCTR AUC"], figures))
    return "".join(parts)


def _evaluation_section(report: LocalReport, out_dir: Path) -> str:
    evaluation = report.evaluation
    if evaluation is None:
        return html.paragraph("No evaluation: the daily pipeline's Evaluate step writes it.")
    parts = [html.paragraph(
        f"{evaluation['conditions']['interactions']:,} interactions, {evaluation['conditions']['test_users']:,} test "
        f"users, time split at {evaluation['conditions']['cutoff_utc']}; relevance: "
        f"{evaluation['conditions']['relevance']}. Definitions: docs/evaluation.md.")]
    for k in evaluation["conditions"]["ks"]:
        rows = [[system, *(evaluation["ranking"][system][f"@{k}"][m] for m in TABLE_METRICS)]
                for system in ordered_systems(evaluation)]
        parts += [f"<h3>K = {k}</h3>", html.table(["system", *TABLE_METRICS], rows)]
    heads = ("rows", "positive_rate", "auc", "pr_auc", "log_loss", "brier", "ece")
    parts += ["<h3>Probabilities</h3>", html.table(["head", *heads], [
        [name, *(metrics.get(h) for h in heads)] for name, metrics in evaluation["classification"].items()])]
    for plot in EVALUATION_PLOTS:
        source = report.evaluation_paths.get(plot)
        if source is not None and Path(source).exists():
            shutil.copy(source, out_dir / Path(source).name)
            parts.append(f'<img src="{Path(source).name}" alt="{plot}">')
    if "html" in report.evaluation_paths:
        parts.append(html.paragraph(f"Full evaluation report: {report.evaluation_paths['html']}"))
    return "".join(parts)


def _events_section(events: EventCounts | None) -> str:
    if events is None:
        return html.paragraph("No events were replayed.")
    rows = [["sent to POST /events", events.sent], ["accepted", events.accepted], ["rejected", events.rejected],
            ["failed", events.failed],
            ["counted in Redis (PIT user_events)", events.redis_events if events.redis_events is not None else "–"],
            ["in the lake", events.lake_events if events.lake_events is not None else "–"]]
    lost = [] if events.redis_events is None else [events.accepted - events.redis_events]
    parts = [html.table(["", "events"], rows)]
    if lost and lost[0] != 0:
        parts.append(html.paragraph(f"ALERT: {lost[0]} accepted events are not counted in Redis."))
    if events.lake_note:
        parts.append(html.paragraph(events.lake_note))
    return "".join(parts)


def _drift_section(drift: DriftReport | str | None, out_dir: Path) -> str:
    if drift is None or isinstance(drift, str):
        return html.paragraph(drift or "Drift was not checked.")
    (out_dir / "drift.html").write_text(drift.to_html())
    counts: dict[str, int] = {}
    for feature in drift.features:
        counts[feature.status] = counts.get(feature.status, 0) + 1
    worst = sorted(drift.features, key=lambda f: -f.psi)[:10]
    rows = [[f.feature, f.status, f.psi, f.ks_p_value, f.baseline_mean, f.served_mean, "; ".join(f.reasons)]
            for f in worst]
    return (html.paragraph(f"{drift.rows:,} served rows against the training baseline; features by status: "
                           + ", ".join(f"{s} {n}" for s, n in sorted(counts.items())) + ". Full table: drift.html.")
            + html.table(["feature", "status", "PSI", "KS p", "mean base", "mean served", "why"], rows,
                         status_column=1))


def _ab_section(ab: ABReport | str | None, out_dir: Path) -> str:
    if ab is None or isinstance(ab, str):
        return html.paragraph(ab or "No A/B analysis.")
    (out_dir / "ab.html").write_text(ab.to_html())
    rows = [[v.variant, v.weight, v.users, v.exposures, v.ctr, v.cvr, v.engagement, v.latency_p99_ms]
            for v in ab.variants]
    return (html.table(["variant", "weight", "users", "exposures", "CTR", "CVR", "plays/user", "p99 ms"], rows)
            + html.paragraph(f"Sample-ratio mismatch: {'yes' if ab.srm.mismatch else 'no'} "
                             f"(p = {ab.srm.p_value:.3g}). Full analysis: ab.html."))


def _latency_section(latency: Sequence[LatencyFigure]) -> str:
    if not latency:
        return html.paragraph("No latency figures in this run (the load-test step adds them).")
    return html.table(["what", "p50 ms", "p99 ms", "throughput /s", "target", "conditions"],
                      [[f.name, f.p50_ms, f.p99_ms, f.throughput_rps, f.target, f.conditions] for f in latency])


def write_local_report(report: LocalReport, out_dir: Path) -> Path:
    """Write index.html (and the plots and drift/A/B pages it links) to `out_dir`; returns index.html's path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")
    sections = [
        html.paragraph(f"Stage {report.stage}, generated {generated}, local stand-ins (moto, Valkey, local Spark)."),
        html.heading("Daily pipeline"), _steps_section(report),
        html.heading("Offline evaluation"), _evaluation_section(report, out_dir),
        html.heading("Events"), _events_section(report.events),
        html.heading("Drift"), _drift_section(report.drift, out_dir),
        html.heading("A/B"), _ab_section(report.ab, out_dir),
        html.heading("Latency"), _latency_section(report.latency),
    ]
    for title, fragment in report.extra.items():
        sections += [html.heading(title), fragment]
    index = out_dir / "index.html"
    index.write_text(html.page(f"recsys local platform report ({report.stage})", sections))
    return index
