"""The SageMaker hosting contract of the inference server, started as a process and called over HTTP."""

from __future__ import annotations

import http.client
import io
import json
import os
import signal
import time
import urllib.parse

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from containers.inference.server import start_local_server
from recsys.ranking.bundle import ModelBundle


def call(url: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def post_json(url: str, document, accept: str = "application/json"):
    return call(url, "POST", "/invocations", json.dumps(document).encode(),
                {"Content-Type": "application/json", "Accept": accept})


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def bundle(model_dir):
    return ModelBundle.load(model_dir, with_candidates=False)


@pytest.fixture(scope="module")
def rows(bundle):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 5, size=(50, len(bundle.schema.names))).astype(np.float32)
    x[::7, 3] = np.nan  # missing values are allowed
    return x


def test_ping_answers_with_the_model_identity(server, bundle):
    status, headers, body = call(server, "GET", "/ping")
    assert status == 200 and headers["content-type"] == "application/json"
    info = json.loads(body)
    assert info["model_version"] == bundle.version and info["ranker"] == "ltr"
    assert info["schema_id"] == bundle.schema.id and info["feature_names"] == list(bundle.schema.names)


def test_json_scoring_returns_calibrated_heads_score_and_version(server, bundle, rows):
    features = [[None if np.isnan(v) else float(v) for v in row] for row in rows]
    status, headers, body = post_json(server, {"features": features, "schema_id": bundle.schema.id})
    assert status == 200, body
    out = json.loads(body)
    expected = bundle.ranker().predict(rows)
    assert out["model_version"] == bundle.version and out["ranker"] == "ltr"
    assert f"model_version={bundle.version}" in headers["x-amzn-sagemaker-custom-attributes"]
    assert out["pctr"] == pytest.approx(expected.pctr, rel=1e-6)
    assert out["pcvr"] == pytest.approx(expected.pcvr, rel=1e-6)
    assert out["score"] == pytest.approx(expected.score, rel=1e-6)
    assert all(0.0 <= p <= 1.0 for p in out["pctr"] + out["pcvr"])


def test_named_columns_are_matched_by_name(server, bundle, rows):
    names = list(bundle.schema.names)
    order = list(reversed(range(len(names))))
    shuffled = np.nan_to_num(rows[:5][:, order], nan=0.0).tolist()
    status, _, body = post_json(server, {"features": shuffled, "feature_names": [names[i] for i in order]})
    assert status == 200, body
    assert json.loads(body)["score"] == pytest.approx(bundle.ranker().predict(np.nan_to_num(rows[:5])).score, rel=1e-6)


def test_npy_in_and_out_gives_the_same_scores(server, bundle, rows):
    status, headers, body = call(server, "POST", "/invocations", npy(rows),
                                 {"Content-Type": "application/x-npy", "Accept": "application/x-npy",
                                  "X-Amzn-SageMaker-Custom-Attributes": f"schema_id={bundle.schema.id}"})
    assert status == 200 and headers["content-type"] == "application/x-npy"
    out = np.load(io.BytesIO(body))
    expected = bundle.ranker().predict(rows)
    assert out.shape == (len(rows), 3)
    assert out[:, 0] == pytest.approx(expected.pctr) and out[:, 2] == pytest.approx(expected.score)
    assert f"model_version={bundle.version}" in headers["x-amzn-sagemaker-custom-attributes"]


def test_up_to_the_configured_candidates_per_request(server, bundle):
    width = len(bundle.schema.names)
    status, _, body = call(server, "POST", "/invocations", npy(np.ones((2000, width), np.float32)),
                           {"Content-Type": "application/x-npy"})
    assert status == 200 and len(json.loads(body)["score"]) == 2000
    status, _, body = call(server, "POST", "/invocations", npy(np.ones((2001, width), np.float32)),
                           {"Content-Type": "application/x-npy"})
    assert status == 400 and "at most 2000" in json.loads(body)["error"]


@pytest.mark.parametrize("content_type", ["text/csv", "application/x-www-form-urlencoded", ""])
def test_an_unknown_content_type_is_415(server, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    status, _, body = call(server, "POST", "/invocations", b"1,2,3", headers)
    assert status == 415
    assert "Content-Type" in json.loads(body)["error"] and "application/x-npy" in json.loads(body)["error"]


def test_bad_shapes_and_values_are_400_naming_the_problem(server, bundle):
    width = len(bundle.schema.names)
    cases = [
        ({"features": [[1.0] * (width - 1)]}, f"rows have {width - 1} values"),
        ({"features": [[1.0] * width, [1.0] * (width + 1)]}, "rows of different lengths"),
        ({"features": []}, "no candidates"),
        ({"features": "everything"}, "features: required"),
        ({"rows": [[1.0] * width]}, "features: required"),
        ({"features": [["a"] * width]}, "numbers or null"),
        ({"features": [1.0] * width}, "every row must be a list"),
        ({"features": [[[1.0, 2.0]] * width]}, "2-D"),
        ({"features": [[1.0] * width], "schema_id": "other"}, "schema_id"),
        ({"features": [[1.0] * width], "feature_names": ["x"] * width}, "unknown to the model: x"),
        ({"features": [[1.0] * width], "feature_names": list(bundle.schema.names)[:-1] + ["m_ease"]}, "missing"),
        ([1, 2, 3], "JSON object"),
    ]
    for document, message in cases:
        status, _, body = post_json(server, document)
        assert status == 400, document
        assert message in json.loads(body)["error"], (document, body)
    status, _, body = call(server, "POST", "/invocations", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and "not valid JSON" in json.loads(body)["error"]
    status, _, body = call(server, "POST", "/invocations", b"\x93NUMPY garbage", {"Content-Type": "application/x-npy"})
    assert status == 400 and "not a .npy array" in json.loads(body)["error"]
    status, _, body = call(server, "POST", "/invocations", npy(np.ones(width, np.float32)),
                           {"Content-Type": "application/x-npy"})
    assert status == 400 and "2-D" in json.loads(body)["error"]
    status, _, body = call(server, "POST", "/invocations", npy(np.array([["a"] * width])),
                           {"Content-Type": "application/x-npy"})
    assert status == 400 and "numeric" in json.loads(body)["error"]
    infinite = np.ones((1, width), np.float32)
    infinite[0, 0] = np.inf
    status, _, body = call(server, "POST", "/invocations", npy(infinite), {"Content-Type": "application/x-npy"})
    assert status == 400 and "infinite" in json.loads(body)["error"]


def test_other_routes_methods_and_accept_types(server, bundle):
    assert call(server, "GET", "/nowhere")[0] == 404
    assert call(server, "POST", "/ping", b"", {"Content-Type": "application/json"})[0] == 405
    document = {"features": [[0.0] * len(bundle.schema.names)]}
    status, _, body = post_json(server, document, accept="text/html")
    assert status == 406 and "Accept" in json.loads(body)["error"]
    status, headers, _ = post_json(server, document, accept="text/html, application/x-npy;q=0.9")
    assert status == 200 and headers["content-type"] == "application/x-npy"
    status, headers, _ = post_json(server, document, accept="*/*")
    assert status == 200 and headers["content-type"] == "application/json"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300), content_type=st.sampled_from(["application/json", "application/x-npy"]))
def test_arbitrary_bodies_never_give_a_5xx(server, body, content_type):
    status, _, _ = call(server, "POST", "/invocations", body, {"Content-Type": content_type})
    assert status in (200, 400)


def test_keep_alive_connections_serve_many_requests(server, bundle):
    parts = urllib.parse.urlsplit(server)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    body = npy(np.zeros((10, len(bundle.schema.names)), np.float32))
    for _ in range(20):
        connection.request("POST", "/invocations", body=body, headers={"Content-Type": "application/x-npy"})
        response = connection.getresponse()
        assert response.status == 200
        response.read()
    connection.close()


def test_a_variant_serves_another_ranker_and_a_dead_worker_is_replaced(model_dir, bundle):
    url, stop = start_local_server(model_dir, workers=1, ranker="rf")
    try:
        status, _, body = call(url, "GET", "/ping")
        assert json.loads(body)["ranker"] == "rf"
        row = np.ones((3, len(bundle.schema.names)), np.float32)
        status, _, body = call(url, "POST", "/invocations", npy(row), {"Content-Type": "application/x-npy"})
        assert status == 200
        assert json.loads(body)["score"] == pytest.approx(bundle.ranker("rf").predict(row).score, rel=1e-6)
        worker = int(json.loads(call(url, "GET", "/ping")[2])["pid"])
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if call(url, "GET", "/ping")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        assert json.loads(call(url, "GET", "/ping")[2])["pid"] != worker
    finally:
        stop()


def test_the_demo_flow_assembles_a_users_candidates_and_scores_them_over_http(server, model_dir, synthetic_dataset):
    """What `make demo` and the recommend API do: load the bundle, pool and assemble candidates, score remotely."""
    import pandas as pd

    from recsys.models import CandidateRequest
    from recsys.ranking.features import assemble_request

    bundle = ModelBundle.load(model_dir)
    frame = pd.read_csv(synthetic_dataset / "interactions.csv", dtype={"USER_ID": str, "ITEM_ID": str})
    user_rows = frame[frame["USER_ID"] == frame["USER_ID"].iloc[0]].tail(5)
    now = float(frame["TIMESTAMP"].max())
    request = CandidateRequest(user_id=user_rows["USER_ID"].iloc[0], history=tuple(user_rows["ITEM_ID"]),
                               history_times=tuple(user_rows["TIMESTAMP"].astype(float)), now=now,
                               exclude=frozenset(user_rows["ITEM_ID"]))
    models = bundle.candidates
    pool = models.pool(models.query(request))
    candidates = models.catalog.ids(pool.items)
    assert len(candidates) > 20 and not set(candidates) & set(request.exclude)
    rows, names = assemble_request(models, bundle.schema, request, candidates)
    status, _, body = call(server, "POST", "/invocations", npy(rows),
                           {"Content-Type": "application/x-npy", "Accept": "application/x-npy"})
    assert status == 200
    scores = np.load(io.BytesIO(body))[:, 2]
    assert scores == pytest.approx(bundle.ranker().predict(rows).score)
    assert models["popularity"].info.cutoff == pytest.approx(now + 1.0)  # served models know all the history
