"""The bootstrap model (recsys.live_models): what a fresh account serves before the daily pipeline's first model.

It must load where a trained bundle loads (the inference server, the recommend API), score any row of the full
schema, answer requests with 200 and no items, and be copied only to live keys that hold nothing."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest

from containers.inference.server import start_local_server
from recsys.aws import client as aws_client
from recsys.live_models import BOOTSTRAP_METRIC, bootstrap_bundle, seed_missing
from recsys.local.http_api import post_json
from recsys.ranking.bundle import ModelBundle
from recsys.recommend.local import serve_recommend_api
from stacks.constructs.bootstrap_model import bootstrap_archive

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def aws_s3(aws):
    s3 = aws_client("s3")
    s3.create_bucket(Bucket="recsys-dev-artifacts-test")
    return s3, "recsys-dev-artifacts-test"


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bootstrap")
    bootstrap_bundle(directory)
    return directory


def test_the_bundle_loads_marked_as_bootstrap_with_both_rankers(bundle_dir):
    bundle = ModelBundle.load(bundle_dir)
    assert bundle.metrics == {BOOTSTRAP_METRIC: True} and bundle.version.startswith("bootstrap-")
    assert set(bundle.rankers) == {"ltr", "rf"} and bundle.default_ranker == "ltr"
    assert len(bundle.candidates.catalog) == 0
    rows = np.random.default_rng(1).random((7, len(bundle.schema.names)), dtype=np.float32)
    for name in bundle.rankers:
        assert np.array_equal(bundle.ranker(name).predict(rows).score, np.zeros(7))


def test_the_inference_server_serves_it(bundle_dir):
    bundle = ModelBundle.load(bundle_dir, with_candidates=False)
    url, stop = start_local_server(bundle_dir, workers=1)
    try:
        rows = [[0.5] * len(bundle.schema.names)] * 3
        status, body = post_json(f"{url}/invocations", {"features": rows, "schema_id": bundle.schema.id})
        assert status == 200 and body["score"] == [0.0, 0.0, 0.0] and body["model_version"] == bundle.version
        status, body = post_json(f"{url}/invocations", {"features": [[0.5]]})
        assert status == 400
    finally:
        stop()


def test_the_recommend_api_answers_200_with_no_items(bundle_dir, local_platform, redis_client, stage_config):
    server = serve_recommend_api(bundle_dir, redis_url=local_platform.valkey.url, use_feature_store=False)
    try:
        for route, request in (("/recommendations", {"userId": "u1", "numResults": 10}),
                               ("/popular", {"numResults": 10}), ("/trending", {"numResults": 10})):
            status, body = post_json(server.url + route, request)
            assert status == 200, (route, body)
            assert body["itemList"] == []
        # An item id: none is known yet, and the answer says which field.
        status, body = post_json(server.url + "/related", {"itemId": "i1"})
        assert status == 404 and body["errors"][0]["field"] == "itemId"
    finally:
        server.stop()


def test_the_archive_holds_the_bundle_at_its_root_and_is_built_once(tmp_path):
    archive, digest = bootstrap_archive()
    assert archive.parent.name == digest and bootstrap_archive() == (archive, digest)
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert "bundle.json" in names and "rankers/ltr/ranker.json" in names
        assert {member.mtime for member in tar.getmembers()} == {0}
        tar.extractall(tmp_path, filter="data")
    assert ModelBundle.load(tmp_path).metrics == {BOOTSTRAP_METRIC: True}


def test_seeding_fills_empty_live_keys_and_never_overwrites_a_model(aws_s3):
    s3, bucket = aws_s3
    s3.put_object(Bucket=bucket, Key="bootstrap/model.tar.gz", Body=b"bootstrap")
    s3.put_object(Bucket=bucket, Key="models/live/champion/model.tar.gz", Body=b"trained")
    keys = ["models/live/champion/model.tar.gz", "models/live/challenger/model.tar.gz"]
    seeded = seed_missing(s3, bucket=bucket, keys=keys, source_bucket=bucket, source_key="bootstrap/model.tar.gz")
    assert seeded == ["models/live/challenger/model.tar.gz"]
    assert s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read() == b"trained"
    assert s3.get_object(Bucket=bucket, Key=keys[1])["Body"].read() == b"bootstrap"
    assert seed_missing(s3, bucket=bucket, keys=keys, source_bucket=bucket, source_key="bootstrap/model.tar.gz") == []


def test_the_custom_resource_handler_seeds_on_create_and_keeps_the_keys_on_delete(aws_s3):
    from lambdas.seed_live_models.handler import handler
    from recsys.local.lambda_context import LocalLambdaContext

    s3, bucket = aws_s3
    s3.put_object(Bucket=bucket, Key="assets/bootstrap.tar.gz", Body=b"model")
    props = {"Bucket": bucket, "Keys": ["models/live/champion/model.tar.gz"], "SourceBucket": bucket,
             "SourceKey": "assets/bootstrap.tar.gz", "ServiceToken": "arn:aws:lambda:us-east-1:1:function:x"}
    context = LocalLambdaContext("recsys-dev-seed_live_models")
    created = handler({"RequestType": "Create", "ResourceProperties": props}, context)
    assert created == {"PhysicalResourceId": f"{bucket}/live-models",
                       "Data": {"Seeded": "models/live/champion/model.tar.gz"}}
    updated = handler({"RequestType": "Update", "ResourceProperties": props,
                       "PhysicalResourceId": created["PhysicalResourceId"]}, context)
    assert updated["Data"] == {"Seeded": ""}
    assert handler({"RequestType": "Delete", "ResourceProperties": props,
                    "PhysicalResourceId": created["PhysicalResourceId"]}, context) == {
        "PhysicalResourceId": f"{bucket}/live-models"}
    assert s3.get_object(Bucket=bucket, Key="models/live/champion/model.tar.gz")["Body"].read() == b"model"
