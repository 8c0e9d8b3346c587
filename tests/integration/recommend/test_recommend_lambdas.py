"""The Lambda handlers wired from their environment, and batch recommendations on moto S3."""

from __future__ import annotations

import importlib
import json

import pytest

from recsys import aws
from recsys.local.lambda_context import LocalLambdaContext
from recsys.local.http_api import apigateway_event
from tests.integration.recommend.conftest import USERS, read_impressions

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def lambda_env(monkeypatch, local_resources, loaded_store, rec_model_dir, scoring_url):
    monkeypatch.setenv("RECSYS_MODEL_DIR", str(rec_model_dir))
    monkeypatch.setenv("RECSYS_SCORING_URL", f"champion={scoring_url},challenger={scoring_url}")
    monkeypatch.setenv("RECOMMEND_VARIANT_WEIGHTS", "champion=0.5,challenger=0.5")
    monkeypatch.setenv("EVENTS_TOPIC_ARN", local_resources.events_topic_arn)
    return local_resources


def test_the_recommend_lambda_answers_proxy_events_and_emits_the_agreed_metrics(lambda_env, dataset_end, capsys,
                                                                                stage_config):
    aws.client("ssm").put_parameter(Name=stage_config.names.blender_parameter, Type="String", Overwrite=True,
                                    Value=json.dumps({"spacing": {"coefficient": 2}}))
    module = importlib.import_module("lambdas.recommend.handler")
    module.api.cache_clear()
    body = json.dumps({"userId": USERS[0], "numResults": 8, "context": {"time": dataset_end}}).encode()
    event = apigateway_event("POST", "/recommendations", [("Content-Type", "application/json")], body, stage="dev")
    response = module.handler(event, LocalLambdaContext("recsys-dev-recommend"))
    assert response["statusCode"] == 200, response
    answer = json.loads(response["body"])
    assert len(answer["itemList"]) == 8 and answer["variant"] in ("champion", "challenger")
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    names = {m["Name"] for doc in metrics for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert names == {"RecommendRequests", "RecommendLatency", "RecommendDegraded", "EndpointFallbacks", "CircuitOpen",
                     "BoostsAutoDisabled", "BoostCapExceeded", "ExposuresLogged"}
    events = read_impressions(lambda_env.feature_queue_url, 1)  # inline delivery: published before the response
    assert [e["recommendation_id"] for e in events] == [answer["recommendationId"]]
    bad = apigateway_event("POST", "/recommendations", [("Content-Type", "application/json")], b'{"numResults": 3}',
                           stage="dev")
    response = module.handler(bad, LocalLambdaContext("recsys-dev-recommend"))
    assert response["statusCode"] == 400 and "userId: is required" in response["body"]
    module.api().recommender.close()
    module.api.cache_clear()


def test_variants_are_sticky_across_requests(lambda_env, dataset_end):
    module = importlib.import_module("lambdas.recommend.handler")
    module.api.cache_clear()
    seen = {}
    for user in USERS * 2:
        body = json.dumps({"userId": user, "numResults": 3, "context": {"time": dataset_end}}).encode()
        event = apigateway_event("POST", "/recommendations", [("Content-Type", "application/json")], body, stage="dev")
        variant = json.loads(module.handler(event, LocalLambdaContext("f"))["body"])["variant"]
        assert seen.setdefault(user, variant) == variant
    module.api().recommender.close()
    module.api.cache_clear()


def test_batch_recommendations_from_s3_to_s3(lambda_env, dataset_end):
    s3 = aws.client("s3")
    bucket = lambda_env.artifacts_bucket
    lines = [{"userId": USERS[0]}, {"userId": USERS[1], "numResults": 3}, {"numResults": 2}, "not json"]
    body = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    s3.put_object(Bucket=bucket, Key="batch/in/users.jsonl", Body=body.encode())
    module = importlib.import_module("lambdas.batch_recommendations.handler")
    module.recommender.cache_clear()
    report = module.handler({"input": f"s3://{bucket}/batch/in/users.jsonl",
                             "output": f"s3://{bucket}/batch/out/recs.jsonl", "numResults": 5},
                            LocalLambdaContext("recsys-dev-batch-recommendations"))
    assert report == {"users": 4, "written": 4, "degraded": 0, "errors": 2,
                      "output": f"s3://{bucket}/batch/out/recs.jsonl"}
    out = [json.loads(line) for line in
           s3.get_object(Bucket=bucket, Key="batch/out/recs.jsonl")["Body"].read().decode().splitlines()]
    assert [len(row["output"]["itemList"]) if row["output"] else None for row in out] == [5, 3, None, None]
    assert out[0]["input"] == {"userId": USERS[0]} and out[0]["error"] is None
    assert out[2]["error"] == {"status": 400, "message": "userId: is required"}
    assert out[3]["error"]["message"] == "line: is not valid JSON"
    assert read_impressions(lambda_env.feature_queue_url, 0) == []  # nothing was shown: no exposure
    module.recommender().close()
    module.recommender.cache_clear()


def test_batch_recommend_cli(lambda_env, tmp_path, rec_model_dir, scoring_url, capsys):
    from recsys.cli import main

    source = tmp_path / "users.jsonl"
    source.write_text("\n".join(json.dumps({"userId": user}) for user in USERS) + "\n")
    bucket = lambda_env.artifacts_bucket
    code = main(["batch-recommend", "--input", str(source), "--output", f"s3://{bucket}/cli/recs.jsonl",
                 "--model", str(rec_model_dir), "--scoring-url", scoring_url, "--num-results", "4"])
    assert code == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["written"] == 3
    rows = aws.client("s3").get_object(Bucket=bucket, Key="cli/recs.jsonl")["Body"].read().decode().splitlines()
    assert [len(json.loads(row)["output"]["itemList"]) for row in rows] == [4, 4, 4]
