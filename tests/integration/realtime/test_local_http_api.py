"""The local API Gateway stand-in: a real HTTP server that calls a Lambda handler with REST proxy events."""

import base64
import json
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from recsys.local.http_api import LocalHttpApi, post_json


def echo(event, context):
    return {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "X-Fn": context.function_name},
        "body": json.dumps({"event": event, "remaining_ms": context.get_remaining_time_in_millis()}),
    }


@pytest.fixture
def echo_api():
    with LocalHttpApi(echo, function_name="echo", stage="dev") as api:
        yield api


def test_a_request_becomes_a_rest_proxy_event(echo_api):
    request = urllib.request.Request(
        echo_api.url + "/events?debug=1&debug=2",
        data=b'{"a": 1}',
        method="POST",
        headers={"Content-Type": "application/json", "X-Api-Key": "k"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201 and response.headers["X-Fn"] == "echo"
        assert response.headers["x-amzn-RequestId"]
        answer = json.loads(response.read())
    event = answer["event"]
    assert (event["httpMethod"], event["path"], event["resource"]) == ("POST", "/events", "/events")
    assert event["body"] == '{"a": 1}' and event["isBase64Encoded"] is False
    assert event["headers"]["Content-Type"] == "application/json" and event["headers"]["X-Api-Key"] == "k"
    assert event["queryStringParameters"] == {"debug": "2"}
    assert event["multiValueQueryStringParameters"] == {"debug": ["1", "2"]}
    context = event["requestContext"]
    assert context["stage"] == "dev" and context["path"] == "/dev/events" and context["httpMethod"] == "POST"
    assert context["requestId"] == response.headers["x-amzn-RequestId"]
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert 0 < answer["remaining_ms"] <= 30_000


def test_a_binary_body_is_passed_base64(echo_api):
    status, answer = post_json(echo_api.url + "/x", None)  # warm-up: a JSON null body
    assert status == 201 and answer["event"]["body"] == "null"
    request = urllib.request.Request(echo_api.url + "/x", data=b"\xff\xfe", method="PUT")
    with urllib.request.urlopen(request, timeout=5) as response:
        event = json.loads(response.read())["event"]
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff\xfe"


def test_a_failing_handler_is_a_502_as_api_gateway_answers():
    def broken(event, context):
        raise RuntimeError("bug")

    with LocalHttpApi(broken) as api:
        assert post_json(api.url + "/events", {}) == (502, {"message": "Internal server error"})


def test_a_malformed_proxy_response_is_a_502():
    with LocalHttpApi(lambda event, context: {"body": "no status"}) as api:
        assert post_json(api.url + "/", {})[0] == 502


def test_a_base64_response_is_decoded():
    def binary(event, context):
        return {"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True}

    with LocalHttpApi(binary) as api, urllib.request.urlopen(api.url + "/", timeout=5) as response:
        assert response.read() == b"\x00\x01"


def test_stop_frees_the_port():
    api = LocalHttpApi(echo).start()
    url = api.url
    api.stop()
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/", timeout=2)


@pytest.mark.parametrize(("concurrency", "expected_max"), [(1, 1), (2, 2), (8, 4)])
def test_invocations_run_at_most_concurrency_at_once_as_in_that_many_execution_environments(concurrency,
                                                                                             expected_max):
    active, peak, lock = [0], [0], threading.Lock()
    all_in = threading.Barrier(expected_max, timeout=2)

    def slow(event, context):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        all_in.wait()  # proves expected_max invocations overlap
        time.sleep(0.05)
        with lock:
            active[0] -= 1
        return {"statusCode": 200, "body": "{}"}

    with LocalHttpApi(slow, concurrency=concurrency) as api, ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda _: post_json(api.url + "/", {})[0], range(4)))
    assert statuses == [200] * 4 and peak[0] == expected_max
