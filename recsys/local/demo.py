"""`make demo`: the platform on its local stand-ins, end to end, with step lines and timings.

The demo is a list of steps (DEMO_STEPS), each a function of the shared DemoContext; a new step (the recommend
API, a load test) is one function and one entry in the list. Whatever the steps start is stopped at the end
(the inference servers always; moto and Valkey unless they were already running, from `make up`, or
--keep-running was given).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys import aws
from recsys.config import StageConfig, load_stage
from recsys.events import Event
from recsys.local.steps import StepPrinter

REPLAYED_EVENTS = 3000
SHOWN_USERS = 3


@dataclass
class DemoContext:
    config: StageConfig
    state_file: Path
    dataset: Path
    keep_running: bool
    steps: StepPrinter
    csv_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="recsys-dataset-")))
    platform: Any = None
    started: bool = False
    resources: Any = None
    cutoff: float | None = None  # the daily pipeline's: midnight after the imported history
    events: list[Event] = field(default_factory=list)
    replay: Any = None  # recsys.local.realtime.ReplayReport
    run: Any = None  # recsys.local.daily.DailyRun
    scored: list[Any] = field(default_factory=list)
    latency: list[Any] = field(default_factory=list)  # recsys.local.report.LatencyFigure, from load-test steps
    report_path: Path | None = None

    @property
    def state_dir(self) -> Path:
        return self.state_file.parent / "pipeline" / self.config.stage

    def shown_users(self) -> list[str]:
        return [user for user, _ in Counter(e.user_id for e in self.events).most_common(SHOWN_USERS)]


def _lake_object_count(bucket: str) -> int:
    paginator = aws.client("s3").get_paginator("list_objects_v2")
    return sum(page.get("KeyCount", 0) for page in paginator.paginate(Bucket=bucket))


def start_services(ctx: DemoContext) -> None:
    from recsys.local.platform import attach_or_start

    ctx.platform, ctx.started = attach_or_start(ctx.state_file)
    ctx.steps.info(f"moto {ctx.platform.moto.url}, valkey {ctx.platform.valkey.url}"
                   + ("" if ctx.started else " (reused)"))


def create_platform_resources(ctx: DemoContext) -> None:
    from recsys.local.resources import create_resources

    ctx.resources = create_resources(ctx.config)
    ctx.steps.info(f"topics {ctx.config.names.events_topic}, {ctx.config.names.alarm_topic}; "
                   f"queue {ctx.config.names.feature_queue} (+DLQ)")
    ctx.steps.info("buckets " + ", ".join(ctx.resources.buckets.values()))


def import_history(ctx: DemoContext) -> None:
    from recsys.batch.local_run import latest_cutoff
    from recsys.datasets.importer import import_dataset
    from recsys.datasets.movietweetings import convert_movietweetings

    convert_movietweetings(ctx.dataset, ctx.csv_dir)
    report = import_dataset(ctx.csv_dir, f"s3://{ctx.resources.lake_bucket}")
    ctx.cutoff = latest_cutoff(ctx.resources.lake_bucket)  # before the replay adds today's events
    ctx.steps.info(report.summary())


def replay_events(ctx: DemoContext) -> None:
    from recsys.local.realtime import replay_events as replay, serve_realtime_path
    from recsys.local.replay import latest_interactions, upsert_items

    ctx.events = latest_interactions(ctx.csv_dir, REPLAYED_EVENTS)
    with serve_realtime_path(ctx.resources, ctx.config, quiet=True) as path:
        items = upsert_items(path.api.url, ctx.csv_dir, {e.item_id for e in ctx.events if e.item_id})
        ctx.steps.info(f"event tracker on {path.api.url}; {items} items upserted through POST /items")
        ctx.replay = replay(path.api.url, ctx.events, shift_to=time.time())
        path.wait_until_drained()
    ctx.steps.info(ctx.replay.summary() + "; SNS -> SQS -> feature writer -> Valkey drained")
    _show_pit_features(ctx)


def _show_pit_features(ctx: DemoContext) -> None:
    from recsys.features import FeatureReader
    from recsys.store import redis_from_env

    reader = FeatureReader(redis_from_env(), ctx.config.pit_features)
    users = ctx.shown_users()
    items = [item for item, _ in Counter(e.item_id for e in ctx.events).most_common(3)]
    for user in users:
        snapshot = reader.read(user, items)
        counts = {k: v for k, v in snapshot.user.items() if isinstance(v, (int, float)) and v}
        ctx.steps.info(f"PIT user {user}: " + ", ".join(f"{k}={v:g}" for k, v in sorted(counts.items())[:6]))
    snapshot = reader.read(users[0], items)
    for item in items:
        values = {k: v for k, v in snapshot.items[item].items() if v}
        ctx.steps.info(f"PIT item {item}: " + ", ".join(f"{k}={v:g}" for k, v in sorted(values.items())[:6]))


def daily_pipeline(ctx: DemoContext) -> None:
    from recsys.evaluation.pipeline import EvalConfig
    from recsys.local.daily import DailyRun, DailySettings, run_daily_pipeline
    from recsys.pipeline.steps import PIPELINE_STEPS

    # MovieTweetings: one EASE regularization (the best of the full grid, docs/evaluation.md) keeps the run short.
    settings = DailySettings(EvalConfig(ease_l2_grid=(30000.0,), negatives_per_user=50),
                             {"candidates": {"ease": {"l2": 30000.0}}})
    ctx.run = DailyRun(ctx.config, ctx.resources, ctx.platform.valkey.url, ctx.state_dir, cutoff=ctx.cutoff,
                       settings=settings)
    run_daily_pipeline(ctx.run, ctx.steps.nested(len(PIPELINE_STEPS)))
    _show_batch_features(ctx)


def _show_batch_features(ctx: DemoContext) -> None:
    from recsys.local.daily import feature_store

    store, groups = feature_store(ctx.run)
    users = ctx.shown_users()
    items = [item for item, _ in Counter(e.item_id for e in ctx.events).most_common(2)]
    for entity, ids in (("user", users[:2]), ("item", items)):
        records = store.batch_get(groups[entity].name, ids)
        for record_id in ids:
            record = records.get(record_id)
            if record is None:
                ctx.steps.info(f"batch {entity} {record_id}: not in the feature store (no history before the cutoff)")
                continue
            shown = [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()
                     if k not in (f"{entity}_id", "event_time") and v not in (None, 0, 0.0, "")][:6]
            ctx.steps.info(f"batch {entity} {record_id}: " + ", ".join(shown))


def score_candidates(ctx: DemoContext) -> None:
    from recsys.local.daily import CandidateScorer

    if ctx.run.endpoint is None:
        ctx.steps.info("nothing deployed: the quality gate rejected the model (see above)")
        return
    for variant in ctx.run.endpoint.variants:
        scorer = CandidateScorer(ctx.run, variant, ctx.run.run_dir / "served-rows.jsonl")
        for user in ctx.shown_users():
            scored = scorer.score(user)
            ctx.scored.append(scored)
            top = ", ".join(f"{item} ({channel}) score {score:.3f} pCTR {pctr:.3f}"
                            for item, channel, score, pctr, _ in scored.top(5))
            tied = sum(score == max(scored.score) for score in scored.score)
            ctx.steps.info(f"{variant.name} {scored.model_version}, user {user}: {len(scored.item_ids)} candidates, "
                           f"{tied} tied at the top score; top 5: {top}")


def _event_counts(ctx: DemoContext):
    from recsys.features import FeatureReader
    from recsys.local.daily import lake_event_ids
    from recsys.local.report import EventCounts
    from recsys.store import redis_from_env

    reader = FeatureReader(redis_from_env(), ctx.config.pit_features)
    users = sorted({e.user_id for e in ctx.events})
    in_redis = int(sum(reader.read(user, []).user.get("user_events", 0) for user in users))
    cutoff_date = time.strftime("%Y-%m-%d", time.gmtime(ctx.cutoff))
    in_lake = lake_event_ids(ctx.resources.lake_bucket, cutoff_date)
    return EventCounts(
        sent=len(ctx.events), accepted=ctx.replay.accepted, rejected=ctx.replay.rejected, failed=ctx.replay.failed,
        redis_events=in_redis, lake_events=len(in_lake),
        lake_note=f"Lake: events dated {cutoff_date} or later (the replay; the imported history ends before) "
                  f"through the local Firehose; {len(set(in_lake)):,} distinct event ids. The lake bucket holds "
                  f"{_lake_object_count(ctx.resources.lake_bucket)} objects in all.")


def write_report(ctx: DemoContext) -> None:
    from recsys.local.report import LocalReport, ab_from_files, drift_from_files, write_local_report

    run = ctx.run
    steps_done = {step.value: (outcome, run.seconds.get(step)) for step, outcome in run.outcomes.items()}
    report = LocalReport(
        stage=ctx.config.stage, evaluation=run.report, evaluation_paths=run.report_paths,
        gate=run.decision.to_dict() if run.decision else None, steps=steps_done, events=_event_counts(ctx),
        drift=drift_from_files(run.drift_baseline_path, run.run_dir / "served-rows.jsonl",
                               ctx.config.monitoring.drift),
        ab=ab_from_files(run.run_dir / "exposures", f"s3://{ctx.resources.lake_bucket}/events/",
                         {v.name: v.weight for v in run.endpoint.variants} if run.endpoint else {},
                         ctx.config.monitoring.ab, ctx.config.pit_features.qualified_session_minutes * 60),
        latency=ctx.latency,
    )
    ctx.report_path = write_local_report(report, ctx.state_file.parent / "report")
    ctx.steps.info(f"report: {ctx.report_path}")


def summary(ctx: DemoContext) -> None:
    from recsys.local.platform import describe

    ctx.steps.info(f"lake objects: {_lake_object_count(ctx.resources.lake_bucket)} in s3://{ctx.resources.lake_bucket}")
    ctx.steps.info(f"pipeline state (models, deployment.json, last run): {ctx.state_dir}")
    if ctx.run is not None and ctx.run.endpoint is not None:
        for variant in ctx.run.endpoint.variants:
            ctx.steps.info(f"{variant.name}: RECSYS_MODEL_DIR={variant.model_dir} containers/inference/serve "
                           "serves it again after the demo")
    ctx.steps.info(describe(ctx.state_file))
    ctx.steps.info(f"report: {ctx.report_path}")


DemoStep = tuple[Callable[[DemoContext], str], Callable[[DemoContext], None]]
DEMO_STEPS: list[DemoStep] = [
    (lambda ctx: "Start the local services: moto as AWS, Valkey as MemoryDB", start_services),
    (lambda ctx: f"Create the {ctx.config.stage} resources from the stage config", create_platform_resources),
    (lambda ctx: f"Import the development dataset ({ctx.dataset.name})", import_history),
    (lambda ctx: f"Replay the latest {REPLAYED_EVENTS:,} interactions through POST /events, shifted to now",
     replay_events),
    (lambda ctx: "Run the daily pipeline (the state machine's steps, in order)", daily_pipeline),
    (lambda ctx: f"Score the candidates of {SHOWN_USERS} users on the local inference server", score_candidates),
    (lambda ctx: "Write the HTML report", write_report),
    (lambda ctx: "Summary", summary),
]


def run_demo(state_file: Path, *, stage: str | None, dataset: Path, keep_running: bool) -> DemoContext:
    ctx = DemoContext(load_stage(stage), state_file, dataset, keep_running, StepPrinter(total=len(DEMO_STEPS)))
    try:
        for title, action in DEMO_STEPS:
            with ctx.steps.step(title(ctx)):
                action(ctx)
    finally:
        shutil.rmtree(ctx.csv_dir, ignore_errors=True)
        if ctx.run is not None:
            ctx.run.close()  # the inference servers and Spark: nothing outlives the demo but `make up`'s services
        if ctx.platform is not None and ctx.started and not keep_running:
            ctx.platform.stop()
            state_file.unlink(missing_ok=True)
            print(f"stopped the services this demo started ({ctx.steps.elapsed():.0f}s in all)")
        elif ctx.platform is not None:
            print(f"services left running ({ctx.steps.elapsed():.0f}s in all); stop them with `make down`")
    return ctx
