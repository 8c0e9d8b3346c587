"""The local platform end to end on a small synthetic dataset: what `make demo` does, asserted at every stage.

One module fixture runs the stages in order (E2E_STAGES: import, replay, daily pipeline, scoring, the recommend
API); each test checks one stage's outcome.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from recsys import aws
from recsys.config import CHAMPION_VARIANT, StageConfig
from recsys.events import Event
from recsys.local.services import LocalPlatform
from tests.delivery import receive

REPLAYED = 400


@dataclass
class E2E:
    config: StageConfig
    platform: LocalPlatform
    root: Path
    spark: Any
    resources: Any = None
    oncall_queue: str = ""
    import_report: Any = None
    cutoff: float = 0.0
    events: list[Event] = field(default_factory=list)
    replay: Any = None
    run: Any = None
    scored: list[Any] = field(default_factory=list)
    pages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # route -> answers, in request order
    seconds: dict[str, float] = field(default_factory=dict)


def create_resources_and_import(e2e: E2E) -> None:
    from recsys.batch.local_run import latest_cutoff
    from recsys.datasets.importer import import_dataset
    from recsys.datasets.synthetic import generate
    from recsys.local.resources import create_resources

    e2e.resources = create_resources(e2e.config)
    sqs = aws.client("sqs")
    e2e.oncall_queue = sqs.create_queue(QueueName="e2e-oncall")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=e2e.oncall_queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=e2e.resources.alarm_topic_arn, Protocol="sqs", Endpoint=arn)
    generate(e2e.root / "csv", n_users=200, n_items=100, n_events=8_000, days=21, seed=5)
    e2e.import_report = import_dataset(e2e.root / "csv", f"s3://{e2e.resources.lake_bucket}")
    e2e.cutoff = latest_cutoff(e2e.resources.lake_bucket)


def replay_events(e2e: E2E) -> None:
    from recsys.local.realtime import replay_events as replay, serve_realtime_path
    from recsys.local.replay import latest_interactions, upsert_items

    e2e.events = latest_interactions(e2e.root / "csv", REPLAYED)
    with serve_realtime_path(e2e.resources, e2e.config, quiet=True) as path:
        upsert_items(path.api.url, e2e.root / "csv", {e.item_id for e in e2e.events if e.item_id})
        e2e.replay = replay(path.api.url, e2e.events, shift_to=time.time())
        path.wait_until_drained()


def daily_pipeline(e2e: E2E) -> None:
    from recsys.evaluation.pipeline import EvalConfig
    from recsys.local.daily import DailyRun, DailySettings, run_daily_pipeline

    settings = DailySettings(EvalConfig(ease_l2_grid=(30.0, 300.0), negatives_per_user=50),
                             {"candidates": {"ease": {"l2": 100.0}}})
    e2e.run = DailyRun(e2e.config, e2e.resources, e2e.platform.valkey.url, e2e.root / "state", cutoff=e2e.cutoff,
                       settings=settings, spark=e2e.spark)
    run_daily_pipeline(e2e.run)


def score_on_the_inference_server(e2e: E2E) -> None:
    from recsys.local.daily import CandidateScorer

    scorer = CandidateScorer(e2e.run, e2e.run.endpoint.variant(CHAMPION_VARIANT), e2e.root / "served-rows.jsonl")
    users = [user for user, _ in Counter(e.user_id for e in e2e.events).most_common(3)]
    e2e.scored = [scorer.score(user) for user in users]


GENRE_FILTER = ("no-genre", "EXCLUDE ItemID WHERE Items.GENRES IN ($G)")


def recommend_api(e2e: E2E) -> None:
    """The recommend API on the deployed champion; exposures go through the local Firehose into the lake."""
    from recsys.lake.local_firehose import LocalFirehose
    from recsys.local.http_api import post_json
    from recsys.recommend.local import serve_recommend_api
    from recsys.tracker.sinks import forget_local_stream, use_local_stream

    champion = e2e.run.endpoint.variant(CHAMPION_VARIANT)
    stream = LocalFirehose.for_stage(e2e.config, e2e.resources.lake_bucket)
    use_local_stream(stream.stream_name, stream)
    users = [user for user, _ in Counter(e.user_id for e in e2e.events).most_common(3)]
    calls = [("filters", {"name": GENRE_FILTER[0], "expression": GENRE_FILTER[1]})]
    for user in users:
        calls += [("showcase", {"userId": user, "context": {"platform": "web"}}),
                  ("showcase", {"userId": user, "context": {"platform": "web"}}),  # same user, same day
                  ("recommendations", {"userId": user, "numResults": 10, "filterName": GENRE_FILTER[0],
                                       "filterValues": {"G": '"drama"'}}),
                  ("related", {"itemId": e2e.events[-1].item_id, "userId": user, "numResults": 5})]
    settings = replace(e2e.config.recommend, variant_weights=((CHAMPION_VARIANT, 1.0),))
    try:
        with serve_recommend_api(champion.model_dir, scoring_url={CHAMPION_VARIANT: champion.url},
                                 redis_url=e2e.platform.valkey.url, stage=e2e.config.stage,
                                 firehose_stream=stream.stream_name, config=settings) as api:
            for route, body in calls:
                status, answer = post_json(f"{api.url}/{route}", body)
                e2e.pages.setdefault(route, []).append({"status": status, "request": body, "answer": answer})
    finally:
        stream.close()
        forget_local_stream(stream.stream_name)


E2E_STAGES: list[Callable[[E2E], None]] = [
    create_resources_and_import,
    replay_events,
    daily_pipeline,
    score_on_the_inference_server,
    recommend_api,
]


@pytest.fixture(scope="module")
def e2e(local_platform, spark, stage_config, tmp_path_factory):
    import redis

    local_platform.reset_aws()
    redis.Redis.from_url(local_platform.valkey.url).flushall()
    state = E2E(stage_config, local_platform, tmp_path_factory.mktemp("e2e"), spark)
    try:
        for stage in E2E_STAGES:
            began = time.monotonic()
            stage(state)
            state.seconds[stage.__name__] = round(time.monotonic() - began, 1)
        print("e2e stage seconds:", state.seconds)
        yield state
    finally:
        if state.run is not None:
            state.run.close()


def test_the_dataset_lands_in_the_lake(e2e):
    assert e2e.import_report.summary().startswith("imported 8,000 interactions")
    keys = aws.client("s3").list_objects_v2(Bucket=e2e.resources.lake_bucket, Prefix="events/")["KeyCount"]
    assert keys > 0


def test_every_replayed_event_is_accepted_and_counted_once_in_redis(e2e):
    from recsys.features import FeatureReader
    from recsys.store import redis_from_env

    assert (e2e.replay.accepted, e2e.replay.rejected, e2e.replay.failed) == (REPLAYED, 0, 0)
    reader = FeatureReader(redis_from_env(), e2e.config.pit_features)
    counted = [e for e in e2e.events if e.event_type != "impression"]
    users = sorted({e.user_id for e in counted})
    assert sum(reader.read(user, []).user["user_events"] for user in users) == len(counted)
    items = sorted({e.item_id for e in counted})
    snapshot = reader.read(users[0], items)
    assert sum(snapshot.items[item]["item_events"] for item in items) == len(counted)


def test_every_replayed_event_reaches_the_lake_once(e2e):
    from recsys.local.daily import lake_event_ids

    # The imported history ends before the cutoff date; the replay (shifted to now) is all that is dated later.
    # The recommend API's impression events land there too; each replayed event must be stored exactly once.
    replayed = sorted(e.event_id for e in e2e.events)
    stored = lake_event_ids(e2e.resources.lake_bucket, time.strftime("%Y-%m-%d", time.gmtime(e2e.cutoff)))
    assert sorted(i for i in stored if i in set(replayed)) == replayed


def test_the_pipeline_ran_every_step_in_order(e2e):
    from recsys.pipeline.steps import PIPELINE_STEPS

    assert list(e2e.run.outcomes) == list(PIPELINE_STEPS)
    assert not any(text.startswith("skipped") for text in e2e.run.outcomes.values())


def test_batch_features_are_in_both_feature_stores(e2e):
    from recsys.local.daily import feature_store

    store, groups = feature_store(e2e.run)
    assert e2e.run.ingested == {groups["user"].name: e2e.run.batch.rows["features/user"],
                                groups["item"].name: e2e.run.batch.rows["features/item"]}
    users = sorted({e.user_id for e in e2e.events})[:20]
    records = store.batch_get(groups["user"].name, users)
    assert records and all(r["event_time"] == pytest.approx(e2e.cutoff, abs=86_400) for r in records.values())
    assert any(r.get("user_distinct_items", 0) > 0 for r in records.values())
    offline = aws.client("s3").list_objects_v2(Bucket=e2e.resources.lake_bucket, Prefix="feature-store/")
    assert {g.name for g in groups.values()} <= {k["Key"].split("offline-store/")[1].split("/")[0].rsplit("-", 1)[0]
                                                 for k in offline["Contents"]}


def test_the_training_set_is_point_in_time(e2e):
    import pandas as pd

    frame = pd.read_parquet(e2e.run.training.outputs["training"])
    assert len(frame) == e2e.run.training.rows["training"] > 0
    assert frame["label_click"].sum() > 0
    assert e2e.run.training_cutoff == e2e.cutoff - e2e.config.batch_features.label_horizon_days * 86_400


def test_the_model_beats_popularity_and_passes_the_gate(e2e):
    report = json.loads(e2e.run.report_paths["json"].read_text())
    at10 = report["ranking"]
    assert at10["pipeline"]["@10"]["ndcg"] > 1.1 * at10["popularity"]["@10"]["ndcg"]
    assert e2e.run.decision.passed, e2e.run.decision.reasons
    assert e2e.run.decision.champion is None  # a fresh state folder: nothing deployed before
    gate = json.loads((e2e.run.run_dir / "gate.json").read_text())
    assert gate["candidate"]["ndcg"] == at10["pipeline"]["@10"]["ndcg"]


def test_the_model_is_registered_and_deployed_as_champion(e2e):
    packages = aws.client("sagemaker").list_model_packages(
        ModelPackageGroupName=e2e.config.names.model_package_group)["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in packages] == [e2e.run.model_package_arn]
    (variant,) = e2e.run.endpoint.variants
    assert (variant.name, variant.version, variant.weight) == (CHAMPION_VARIANT, e2e.run.model_version, 1.0)
    recorded = json.loads((e2e.run.state_dir / "deployment.json").read_text())
    assert recorded["variants"][0]["version"] == e2e.run.model_version
    key = e2e.config.monitoring.jobs.drift_baseline_key
    assert aws.client("s3").head_object(Bucket=e2e.resources.artifacts_bucket, Key=key)["ContentLength"] > 0


def test_on_call_is_notified_of_the_deployment(e2e):
    envelopes = [json.loads(m["Body"]) for m in receive(e2e.oncall_queue, 1, settle_s=0.5)]
    (envelope,) = envelopes
    assert envelope["Subject"].endswith(f"deployed {e2e.run.model_version}")
    assert json.loads(envelope["Message"])["gate"]["passed"] is True


def test_the_inference_server_scores_every_candidate_with_the_deployed_model(e2e):
    for scored in e2e.scored:
        assert scored.model_version == e2e.run.model_version
        n = len(scored.item_ids)
        assert n > 0 and len(scored.pctr) == len(scored.pcvr) == len(scored.score) == n
        assert all(0.0 <= p <= 1.0 for p in scored.pctr + scored.pcvr)
        assert len(set(scored.item_ids)) == n
        assert len({round(score, 6) for score in scored.score}) > n // 10  # the ranker separates the candidates
    logged = (e2e.root / "served-rows.jsonl").read_text().splitlines()
    assert len(logged) == sum(len(s.item_ids) for s in e2e.scored)


def test_the_local_report_has_every_section(e2e, tmp_path):
    from recsys.local.report import EventCounts, LatencyFigure, LocalReport, drift_from_files, write_local_report

    run = e2e.run
    drift = drift_from_files(run.drift_baseline_path, e2e.root / "served-rows.jsonl", e2e.config.monitoring.drift)
    assert not isinstance(drift, str) and drift.rows == sum(len(s.item_ids) for s in e2e.scored)
    report = LocalReport(
        stage=e2e.config.stage, evaluation=run.report, evaluation_paths=run.report_paths,
        gate=run.decision.to_dict(), steps={s.value: (text, run.seconds.get(s)) for s, text in run.outcomes.items()},
        events=EventCounts(REPLAYED, e2e.replay.accepted, 0, 0, redis_events=REPLAYED), drift=drift,
        ab="no exposures: the recommend API logs them",
        latency=[LatencyFigure("scoring", 1.0, 2.0, 100.0, "p99 <= 10 ms", "2 cores")])
    index = write_local_report(report, tmp_path / "report")
    page = index.read_text()
    for section in ("Daily pipeline", "Offline evaluation", "Events", "Drift", "A/B", "Latency", "PASSED",
                    "no exposures", "p99 &lt;= 10 ms", "ndcg_at_k.png"):
        assert section in page, section
    assert (tmp_path / "report" / "ndcg_at_k.png").exists() and (tmp_path / "report" / "drift.html").exists()


def test_a_later_model_is_deployed_as_challenger_next_to_the_champion(e2e):
    """The next day's run (here: the same bundle under a new version, to skip retraining) passes the gate against
    the champion's figures and is served as the challenger with the configured weight; the champion keeps serving."""
    import dataclasses
    import shutil

    from recsys.config import CHALLENGER_VARIANT
    from recsys.local import daily

    first = e2e.run
    nxt = daily.DailyRun(e2e.config, e2e.resources, first.redis_url, first.state_dir, cutoff=first.cutoff,
                         run_id=first.run_id + "-next")
    nxt.model_dir = first.state_dir / "models" / nxt.run_id
    shutil.copytree(first.model_dir, nxt.model_dir)
    bundle = json.loads((nxt.model_dir / "bundle.json").read_text())
    nxt.model_version = bundle["version"] = first.model_version + "-next"
    (nxt.model_dir / "bundle.json").write_text(json.dumps(bundle))
    nxt.run_dir.mkdir(parents=True)
    nxt.report = first.report
    try:
        assert "PASSED against champion " + first.model_version in daily.quality_gate(nxt)
        assert dataclasses.asdict(nxt.decision.champion) == dataclasses.asdict(first.decision.candidate)
        daily.deploy(nxt)
        champion, challenger = nxt.endpoint.variants
        weight = e2e.config.pipeline.challenger_weight
        assert (champion.name, champion.version, champion.weight) == (CHAMPION_VARIANT, first.model_version,
                                                                      pytest.approx(1 - weight))
        assert (challenger.name, challenger.version, challenger.weight) == (CHALLENGER_VARIANT, nxt.model_version,
                                                                            weight)
        assert daily.smoke_test(champion.url, champion.model_dir) == first.model_version
        assert daily.smoke_test(challenger.url, challenger.model_dir) == nxt.model_version
        assert [v.version for v in daily.load_deployment(first.state_dir)] == [first.model_version,
                                                                                nxt.model_version]
        assert sorted(p.name for p in (first.state_dir / "models").iterdir()) == [first.run_id, nxt.run_id]
    finally:
        nxt.close()


def test_the_recommend_api_answers_valid_rule_abiding_showcases(e2e):
    config = e2e.config.recommend
    recent = {}
    for event in e2e.events:
        recent.setdefault(event.user_id, []).append(event.item_id)
    for call in e2e.pages["showcase"]:
        assert call["status"] == 200, call
        page = call["answer"]
        assert not page["degraded"], page["degradedReasons"]
        assert page["variant"] == CHAMPION_VARIANT and page["modelVersion"] == e2e.run.model_version
        higher_top5: set[str] = set()
        for shelf in sorted(page["shelves"], key=lambda s: s["position"]):
            ids = [item["itemId"] for item in shelf["items"]]
            assert len(ids) == len(set(ids)), f"duplicate inside shelf {shelf['shelfId']}"
            if shelf["kind"] != "continue_watching":
                assert not set(ids[:5]) & higher_top5, "cross-shelf duplicate in the top 5"
            higher_top5 |= set(ids[:5])
            for item in shelf["items"]:
                assert {"itemId", "score", "channel", "rules", "recommendationId", "variant"} <= set(item)
                assert item["recommendationId"] == page["recommendationId"]
        assert page["shelves"], "an empty showcase"
    first, second = e2e.pages["showcase"][0]["answer"], e2e.pages["showcase"][1]["answer"]
    assert [[i["itemId"] for i in s["items"]] for s in first["shelves"]] == \
           [[i["itemId"] for i in s["items"]] for s in second["shelves"]], "same user, same day: same page"
    assert config.max_candidates >= 500


def test_filtered_recommendations_exclude_the_genre_and_fill_the_page(e2e):
    import csv

    genres = {row["ITEM_ID"]: row["GENRES"].lower().split("|")
              for row in csv.DictReader(open(e2e.root / "csv" / "items.csv"))}
    assert e2e.pages["filters"][0]["status"] == 201
    for call in e2e.pages["recommendations"]:
        assert call["status"] == 200, call
        items = [item["itemId"] for item in call["answer"]["itemList"]]
        assert len(items) == 10  # backfilled to the requested size
        assert not [i for i in items if "drama" in genres.get(i, [])], "the filter let a drama through"


def test_related_items_exclude_the_anchor(e2e):
    for call in e2e.pages["related"]:
        assert call["status"] == 200, call
        items = [item["itemId"] for item in call["answer"]["itemList"]]
        assert 0 < len(items) <= 5 and call["request"]["itemId"] not in items


def test_every_served_list_is_logged_as_an_impression_in_the_lake(e2e):
    import gzip

    s3 = aws.client("s3")
    impressions = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=e2e.resources.lake_bucket, Prefix="events/"):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=e2e.resources.lake_bucket, Key=obj["Key"])["Body"].read()
            for line in gzip.decompress(body).decode().splitlines():
                record = json.loads(line)
                if record["event_type"] == "impression":
                    impressions.append(record)
    served = {c["answer"]["recommendationId"] for route in ("showcase", "recommendations", "related")
              for c in e2e.pages[route]}
    assert served <= {record["recommendation_id"] for record in impressions}
    assert all(record["properties"]["variant"] == CHAMPION_VARIANT for record in impressions)
