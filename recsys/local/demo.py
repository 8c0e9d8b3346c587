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
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys import aws
from recsys.config import StageConfig, load_stage
from recsys.events import Event
from recsys.local.steps import StepPrinter

REPLAYED_EVENTS = 3000
SHOWN_USERS = 3
# The demo's named filter: Personalize's grammar with a $PARAM (recsys/filters).
DEMO_FILTER = ("no-genre", "EXCLUDE ItemID WHERE Items.GENRES IN ($GENRES)", {"GENRES": '"Drama"'})
LOAD_RATES = (5.0, 10.0, 20.0)
LOAD_SECONDS = 6.0
LOAD_WARM_UP = 20  # requests before the measured rates
BATCH_USERS = 25


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
    api: Any = None  # recsys.recommend.local.LocalRecommendApi
    exposures: ExitStack = field(default_factory=ExitStack)  # the API's impression events -> lake stream
    batch_output: str | None = None
    report_path: Path | None = None

    @property
    def state_dir(self) -> Path:
        from recsys.local.daily import pipeline_state_dir

        return pipeline_state_dir(self.state_file, self.config.stage)

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
    from recsys.lake.listing import latest_cutoff
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


def serve_recommendations(ctx: DemoContext) -> None:
    from recsys.local.http_api import post_json
    from recsys.local.realtime import local_lake_stream
    from recsys.local.serve import recommend_api_on

    if ctx.run.endpoint is None:
        ctx.steps.info("nothing deployed: the recommend API needs a model (see the quality gate above)")
        return
    variants = ctx.run.endpoint.variants
    # Exposures take the tracker's path to the lake: the same local Firehose stand-in as the replay.
    ctx.exposures.enter_context(local_lake_stream(ctx.config, ctx.resources.lake_bucket))
    ctx.api = recommend_api_on(variants, {v.name: v.url for v in variants}, ctx.config, ctx.resources,
                               ctx.platform.valkey.url)
    url = ctx.api.url
    ctx.steps.info(f"recommend API on {url} (variants {', '.join(f'{v.name}={v.weight:g}' for v in variants)})")
    name, expression, values = DEMO_FILTER
    status, answer = post_json(f"{url}/filters", {"name": name, "expression": expression})
    if status not in (201, 409):  # 409: a previous demo on the same Valkey created it
        raise RuntimeError(f"POST /filters answered {status}: {answer}")
    for user in ctx.shown_users():
        status, page = post_json(f"{url}/showcase", {"userId": user, "context": {"platform": "web"}})
        _check(status, page, "/showcase")
        ctx.steps.info(f"user {user}: showcase {page['recommendationId'][:8]}, variant {page['variant']}"
                       + (f", DEGRADED {page['degradedReasons']}" if page["degraded"] else ""))
        for shelf in page["shelves"][:3]:
            shown = ", ".join(_item_line(item) for item in shelf["items"][:4])
            ctx.steps.info(f"  shelf {shelf.get('shelfId') or shelf.get('id')}: {shown}")
        anchor = next(e.item_id for e in reversed(ctx.events) if e.user_id == user and e.item_id)
        status, related = post_json(f"{url}/related", {"itemId": anchor, "numResults": 5})
        _check(status, related, "/related")
        ctx.steps.info(f"  related to {anchor}: " + ", ".join(i["itemId"] for i in related["itemList"]))
        status, filtered = post_json(f"{url}/recommendations", {"userId": user, "numResults": 5,
                                                                "filterName": name, "filterValues": values})
        _check(status, filtered, "/recommendations")
        ctx.steps.info(f"  filter {name} ({expression}, GENRES={values['GENRES']}): "
                       + ", ".join(_item_line(item) for item in filtered["itemList"]))


def _check(status: int, answer: Any, route: str) -> None:
    if status != 200:
        raise RuntimeError(f"POST {route} answered {status}: {answer}")


def _item_line(item: dict[str, Any]) -> str:
    rules = f" [{', '.join(item['rules'])}]" if item.get("rules") else ""
    return f"{item['itemId']} ({item['channel']} {item['score']:.3f}){rules}"


def load_test(ctx: DemoContext) -> None:
    import json
    import os
    import random

    from recsys.local.loadtest import open_loop
    from recsys.local.report import LatencyFigure

    if ctx.api is None:
        ctx.steps.info("skipped: the recommend API is not running")
        return
    users = sorted({e.user_id for e in ctx.events})
    rng = random.Random(7)

    def bodies(count: int) -> list[bytes]:
        return [json.dumps({"userId": rng.choice(users), "numResults": 25, "context": {"platform": "web"}}).encode()
                for _ in range(count)]

    # not counted: the first requests fill the caches (item metadata, creators) and open the connections
    open_loop(ctx.api.url, "/recommendations", bodies(LOAD_WARM_UP), LOAD_RATES[0])
    for rate in LOAD_RATES:
        sent = bodies(int(rate * LOAD_SECONDS))
        result = open_loop(ctx.api.url, "/recommendations", sent, rate)
        conditions = (f"{len(sent)} POST /recommendations over {LOAD_SECONDS:g} s after {LOAD_WARM_UP} warm-up "
                      f"requests, open loop, 25 results, up to "
                      f"{ctx.config.recommend.max_candidates} candidates; API, inference servers, Valkey, moto on "
                      f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}")
        ctx.latency.append(LatencyFigure(f"recommend at {rate:g} req/s", result.p50_ms, result.p99_ms,
                                         result.achieved_rps, "p99 <= 50 ms", conditions))
        ctx.steps.info(f"{rate:>4g} req/s offered: p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                       f"{result.achieved_rps:.1f} req/s done, {result.errors} errors, {result.degraded} degraded")


def batch_recommendations(ctx: DemoContext) -> None:
    import json

    from recsys.recommend.batch import run_batch

    if ctx.api is None:
        ctx.steps.info("skipped: no model deployed")
        return
    users = sorted({e.user_id for e in ctx.events})[:BATCH_USERS]
    prefix = f"s3://{ctx.resources.artifacts_bucket}/{ctx.config.recommend_api.batch_prefix}"
    bucket, key = ctx.resources.artifacts_bucket, f"{ctx.config.recommend_api.batch_prefix}users.jsonl"
    aws.client("s3").put_object(Bucket=bucket, Key=key,
                                Body="".join(json.dumps({"userId": u}) + "\n" for u in users).encode())
    ctx.batch_output = f"{prefix}out/recommendations.jsonl"
    report = run_batch(ctx.api.recommender, f"s3://{bucket}/{key}", ctx.batch_output, num_results=10)
    ctx.steps.info(f"{report.users} users -> {report.written} lines in {ctx.batch_output} "
                   f"({report.degraded} degraded, {report.errors} errors)")


def stop_recommend_api(ctx: DemoContext) -> None:
    """Stop the API and flush its exposure stream, so the report's A/B table sees every impression."""
    if ctx.api is not None:
        ctx.api.stop()
        ctx.api = None
    ctx.exposures.close()


def _event_counts(ctx: DemoContext):
    from recsys.features import FeatureReader
    from recsys.local.daily import lake_event_ids
    from recsys.local.report import EventCounts
    from recsys.store import redis_from_env

    reader = FeatureReader(redis_from_env(), ctx.config.pit_features)
    users = sorted({e.user_id for e in ctx.events})
    in_redis = int(sum(reader.read(user, []).user.get("user_events", 0) for user in users))
    cutoff_date = time.strftime("%Y-%m-%d", time.gmtime(ctx.cutoff))
    replayed = {e.event_id for e in ctx.events}
    # The lake also holds the recommend API's impression events by now: count the replayed ones.
    in_lake = [event_id for event_id in lake_event_ids(ctx.resources.lake_bucket, cutoff_date) if event_id in replayed]
    return EventCounts(
        sent=len(ctx.events), accepted=ctx.replay.accepted, rejected=ctx.replay.rejected, failed=ctx.replay.failed,
        redis_events=in_redis, lake_events=len(in_lake),
        lake_note=f"Lake: events dated {cutoff_date} or later (the replay; the imported history ends before) "
                  f"through the local Firehose; {len(set(in_lake)):,} distinct event ids. The lake bucket holds "
                  f"{_lake_object_count(ctx.resources.lake_bucket)} objects in all.")


def write_report(ctx: DemoContext) -> None:
    from recsys.local.report import LocalReport, ab_from_files, drift_from_files, write_local_report

    stop_recommend_api(ctx)
    run = ctx.run
    steps_done = {step.value: (outcome, run.seconds.get(step)) for step, outcome in run.outcomes.items()}
    report = LocalReport(
        stage=ctx.config.stage, evaluation=run.report, evaluation_paths=run.report_paths,
        gate=run.decision.to_dict() if run.decision else None, steps=steps_done, events=_event_counts(ctx),
        drift=drift_from_files(run.drift_baseline_path, run.run_dir / "served-rows.jsonl",
                               ctx.config.monitoring.drift),
        ab=ab_from_files(f"s3://{ctx.resources.lake_bucket}/events/", f"s3://{ctx.resources.lake_bucket}/events/",
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
    if ctx.batch_output:
        ctx.steps.info(f"batch recommendations: {ctx.batch_output}")
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
    (lambda ctx: f"Start the recommend API: showcase, related items and a filtered list for {SHOWN_USERS} users",
     serve_recommendations),
    (lambda ctx: f"Load test: POST /recommendations at {', '.join(f'{r:g}' for r in LOAD_RATES)} req/s, "
                 f"{LOAD_SECONDS:g} s each", load_test),
    (lambda ctx: f"Batch recommendations for {BATCH_USERS} users (S3 JSON lines in and out)", batch_recommendations),
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
        stop_recommend_api(ctx)
        if ctx.run is not None:
            ctx.run.close()  # the inference servers and Spark: nothing outlives the demo but `make up`'s services
        if ctx.platform is not None and ctx.started and not keep_running:
            ctx.platform.stop()
            state_file.unlink(missing_ok=True)
            print(f"stopped the services this demo started ({ctx.steps.elapsed():.0f}s in all)")
        elif ctx.platform is not None:
            print(f"services left running ({ctx.steps.elapsed():.0f}s in all); stop them with `make down`")
    return ctx
