"""Both APIs fuzzed over real HTTP with hostile input: never a 5xx, every 4xx names what to fix, and nothing
a client can send becomes a poison message downstream.

The event tracker (its Lambda handler behind the local API Gateway stand-in, SNS -> SQS on moto, the real
feature writer, the local Firehose into the lake) and the recommend API (real Valkey, the inference server,
exposures published to the same topic) take generated bodies on every route: strings with lone surrogates and
control characters, times of every ISO-8601 year and offset, numbers beyond float range, documents nested
hundreds of levels deep, unknown fields, wrong types. Afterwards the queue is drained through the real writer
and the lake stream flushed: the DLQ and the lake's error prefix must stay empty.
"""

from __future__ import annotations

import http.client
import json
import time
from datetime import datetime, timezone
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys import aws
from recsys.events import EVENTS_ERROR_PREFIX
from recsys.local.realtime import serve_realtime_path
from recsys.recommend.local import serve_recommend_api
from recsys.recommend.request import ROUTE_FIELDS
from tests.hostile import (
    deep_json,
    deep_text,
    encode,
    fields,
    hostile_number,
    hostile_text,
    hostile_time,
    json_values,
    mutated,
)
from tests.integration.recommend.conftest import USERS

pytestmark = pytest.mark.timeout(900)
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
CLIENT_ERRORS = {400, 404, 405, 409, 411, 413, 415}


@pytest.fixture
def platform(local_resources, stage_config, loaded_store, rec_model_dir, scoring_url, local_platform):
    settings_ = {"batch_size": 10, "batching_window_s": 0, "retry_delay_s": 0}
    with serve_realtime_path(local_resources, stage_config, run_in_thread=False, quiet=True, **settings_) as path:
        api = serve_recommend_api(rec_model_dir, scoring_url=scoring_url, redis_url=local_platform.valkey.url,
                                  events_topic_arn=local_resources.events_topic_arn)
        api.recommender.filters.create("no-genre", "EXCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")
        yield path, api
        api.recommender.side_effects.drain()
        api.stop()
        assert_nothing_poisoned(path, local_resources)  # after every test: what was accepted was writable


def send(url: str, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def check_answer(status: int, raw: bytes) -> dict:
    """Never a 5xx; a 4xx is JSON with a message and, for a field error, the field."""
    assert status < 500, raw[:500]
    answer = json.loads(raw)
    if status >= 400:
        assert status in CLIENT_ERRORS, (status, answer)
        assert isinstance(answer["message"], str) and answer["message"]
        assert "Traceback" not in answer["message"] and "Error(" not in answer["message"]
        for error in answer.get("errors", []):
            assert error["field"] and error["message"]
    return answer


def assert_nothing_poisoned(path, local_resources) -> None:
    """Drain the queue through the real feature writer; nothing may fail or reach the DLQ, and the lake's
    transform must have failed no record."""
    summary = path.runner.run_until_empty()
    print(f"fuzz: the feature writer took {summary.received} messages, {summary.failed} failed")
    assert summary.failed == 0
    sqs = aws.client("sqs")
    dlq = sqs.get_queue_attributes(QueueUrl=local_resources.feature_dlq_url,
                                   AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    assert dlq["ApproximateNumberOfMessages"] == "0"
    path.lake.flush()
    failed = aws.client("s3").list_objects_v2(Bucket=local_resources.lake_bucket, Prefix=EVENTS_ERROR_PREFIX)
    assert failed.get("KeyCount", 0) == 0, [o["Key"] for o in failed.get("Contents", [])]


now = time.time()
event_strategy = fields({
    "event_type": st.one_of(st.sampled_from(["click", "like", "listen", "purchase"]), hostile_text),
    "item_id": st.one_of(st.sampled_from(["i000001", "i000002"]), hostile_text),
    "sent_at": st.one_of(st.floats(now - 86_400 * 365 * 60, now), hostile_time),
    "event_value": st.one_of(st.floats(0, 1e4), hostile_number, hostile_text),
    "event_id": hostile_text,
    "recommendation_id": hostile_text,
    "properties": st.dictionaries(hostile_text, st.one_of(hostile_text, json_values), max_size=3),
    "impression": st.lists(st.one_of(st.sampled_from(["i000001"]), hostile_text), max_size=4),
})
# Well-formed but unusual values: any Unicode text, times from 1970 on; these must be accepted and stay writable.
odd_text = st.text(alphabet=st.characters(exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30).filter(
    str.strip)
valid_event = {"event_type": "click", "item_id": "i000001", "sent_at": now - 60}
odd_event = mutated(valid_event, {
    "event_type": odd_text, "item_id": odd_text, "event_id": odd_text, "recommendation_id": odd_text,
    "sent_at": st.one_of(st.floats(1.0, now), st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2024, 1, 1), timezones=st.just(timezone.utc)).map(
        datetime.isoformat)),
    "event_value": hostile_number,
    "properties": st.dictionaries(odd_text, odd_text, max_size=3),
    "impression": st.lists(odd_text, max_size=3),
})
track_body = st.one_of(
    fields({
        "user_id": st.one_of(st.sampled_from(USERS), hostile_text),
        "session_id": st.one_of(st.just("s1"), hostile_text),
        "events": st.one_of(st.lists(event_strategy, min_size=1, max_size=4), json_values),
    }),
    mutated({"user_id": USERS[0], "session_id": "s1", "events": [valid_event]},
            {"user_id": odd_text, "session_id": odd_text, "events": st.lists(odd_event, min_size=1, max_size=4)}),
)


def catalog_body(kind: str, id_column: str):
    record = fields({
        id_column: st.one_of(st.sampled_from(["i-new-1", "u-new-1"]), hostile_text),
        "GENRES": st.one_of(st.just("Comedy|Drama"), hostile_text, st.lists(hostile_text, max_size=3)),
        "CREATION_TIMESTAMP": st.one_of(hostile_number, hostile_text),
        "PRICE": st.one_of(hostile_number, hostile_text),
        "AGE": st.one_of(st.integers(-5, 200), hostile_text),
        "IS_PAID": st.one_of(st.booleans(), hostile_text),
    })
    return fields({kind: st.one_of(st.lists(record, min_size=1, max_size=3), json_values)})


@FUZZ
@given(route=st.sampled_from(["/events", "/items", "/users"]), data=st.data())
def test_the_event_tracker_answers_every_body_with_a_4xx_or_its_result(platform, local_resources, route, data):
    path, _ = platform
    body = data.draw({"/events": track_body, "/items": catalog_body("items", "ITEM_ID"),
                      "/users": catalog_body("users", "USER_ID")}[route])
    check_answer(*send(path.api.url, route, encode(body)))


def recommend_body(route: str):
    return st.one_of(hostile_recommend_body(route), mutated(
        {"userId": USERS[0], "itemId": "i000001", "itemList": ["i000001", "i000002"]} if route in ("related", "ranking")
        else {"userId": USERS[0]},
        {"userId": odd_text, "sessionId": odd_text, "numResults": st.integers(1, 500),
         "context": st.fixed_dictionaries({"time": st.one_of(st.floats(1.0, now), st.just("1970-01-01T00:00:01Z")),
                                           "platform": odd_text})}))


def hostile_recommend_body(route: str):
    known = {
        "userId": st.one_of(st.sampled_from(USERS), hostile_text),
        "sessionId": hostile_text,
        "itemId": st.one_of(st.sampled_from(["i000001", "i000050"]), hostile_text),
        "itemList": st.lists(st.one_of(st.sampled_from(["i000001", "i000002", "i000003"]), hostile_text), max_size=5),
        "numResults": st.one_of(st.integers(-3, 600), hostile_number, hostile_text),
        "filterName": st.one_of(st.just("no-genre"), hostile_text),
        "filterValues": st.dictionaries(st.one_of(st.just("GENRE"), hostile_text),
                                        st.one_of(st.just('"Comedy"'), hostile_text), max_size=2),
        "context": fields({"platform": st.one_of(st.just("web"), hostile_text),
                           "geography": hostile_text, "time": st.one_of(st.floats(now - 1e8, now), hostile_time)}),
    }
    return fields({name: known[name] for name in ROUTE_FIELDS[route]})


filter_expression = st.one_of(
    st.just('EXCLUDE ItemID WHERE Items.GENRES IN ($G)'),
    hostile_text,
    st.integers(1, 500).map(lambda n: "EXCLUDE ItemID WHERE " + "(" * n + 'Items.A IN ("x")' + ")" * n),
)
filter_bodies = {
    "/filters": fields({"name": st.one_of(st.just("f-1"), hostile_text), "expression": filter_expression}),
    "/filters/describe": fields({"name": st.one_of(st.just("no-genre"), hostile_text)}),
    "/filters/delete": fields({"name": st.one_of(st.just("f-1"), hostile_text)}),
    "/filters/list": fields({}),
}


@FUZZ
@given(route=st.sampled_from([f"/{name}" for name in ROUTE_FIELDS] + list(filter_bodies)), data=st.data())
def test_the_recommend_api_answers_every_body_with_a_4xx_or_a_full_answer(platform, route, data):
    _, api = platform
    body = data.draw(filter_bodies[route] if route in filter_bodies else recommend_body(route.lstrip("/")))
    answer = check_answer(*send(api.url, route, encode(body)))
    if "itemList" in answer:
        assert answer["degraded"] is False
        assert len(answer["itemList"]) == len({item["itemId"] for item in answer["itemList"]})


@FUZZ
@given(route=st.sampled_from(["/events", "/items", "/recommendations", "/showcase", "/filters"]),
       body=st.one_of(deep_text, st.binary(max_size=64), deep_json.map(encode),
                      st.sampled_from([b"", b"null", b"[]", b"NaN", b'{"a": Infinity}', b"\xff\xfe", b'"\\ud800"'])))
def test_malformed_documents_are_400_on_both_apis(platform, route, body):
    path, api = platform
    url = path.api.url if route in ("/events", "/items") else api.url
    status, raw = send(url, route, body)
    check_answer(status, raw)
    assert status in (400, 413)


@pytest.mark.parametrize("length", ["abc", "-1", "1.5", " ", "99999999999999999999"])
def test_a_bad_content_length_is_a_400_on_the_local_api(platform, length):
    path, _ = platform
    parts = urlsplit(path.api.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.putrequest("POST", "/events")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", length)
    connection.endheaders()
    response = connection.getresponse()
    status = response.status
    connection.close()
    assert status in (400, 413)


def test_after_the_fuzzing_nothing_became_poison(platform, local_resources):
    """Accepted hostile-looking events and the exposures of accepted requests all reach Valkey and the lake."""
    path, api = platform
    time_now = time.time()
    edge = [
        {"event_type": "click", "item_id": "i\u00e9\u4e2d\U0001f600", "sent_at": 1.0},
        {"event_type": "like", "item_id": "i000001", "sent_at": "1970-01-01T00:00:01Z"},
        {"event_type": "click", "item_id": "i000002", "sent_at": time_now, "properties": {"note": "two\nlines\t"}},
    ]
    status, raw = send(path.api.url, "/events", encode({"user_id": "u\u00e9", "session_id": "s\u2603",
                                                        "events": edge}))
    assert check_answer(status, raw)["accepted"] == 3
    for body in ({"userId": "u\u00e9", "context": {"time": "1970-01-01T00:00:01+00:00"}},
                 {"userId": USERS[0], "sessionId": "s\U0001f600", "context": {"time": 1.0}},
                 {"userId": USERS[1], "context": {"time": "2099-12-31T23:59:59Z"}}):
        assert send(api.url, "/recommendations", encode(body))[0] == 200
    # the fixture's teardown drains the queue and the lake stream: nothing may fail
