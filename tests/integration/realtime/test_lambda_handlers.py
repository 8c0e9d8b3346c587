"""The two Lambda handlers called as Lambda calls them, against moto and the real Valkey."""

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.config import load_stage
from recsys.events import Event
from recsys.features import FeatureReader, ItemCatalog, validate_event
from recsys.local.lambda_context import LocalLambdaContext
from recsys.local.realtime import cold_start, lambda_module
from recsys.tracker.api import tracker_api
from recsys.tracker.service import CatalogUpdater, EventTracker
from recsys.tracker.sinks import NullSender



@pytest.fixture
def fresh_handlers(monkeypatch):
    monkeypatch.setenv("RECSYS_STAGE", "dev")
    cold_start()
    yield
    cold_start()


def sqs_event(*bodies):
    attributes = {"ApproximateReceiveCount": "1"}
    records = [{"messageId": f"m{i}", "body": body, "attributes": attributes} for i, body in enumerate(bodies)]
    return {"Records": [{**record, "eventSource": "aws:sqs"} for record in records]}


def emf_metrics(output):
    """metric name -> list of values, from the EMF lines Powertools printed."""
    values = {}
    for line in output.splitlines():
        if line.startswith("{") and "_aws" in line:
            blob = json.loads(line)
            for definition in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                value = blob[definition["Name"]]
                values.setdefault(definition["Name"], []).extend(value if isinstance(value, list) else [value])
    return values


def test_the_feature_writer_handler_answers_failures_and_emits_its_metrics(
    redis_client, stage_config, fresh_handlers, capsys
):
    writer = lambda_module("feature_writer")
    now = time.time()
    like = Event(event_id="e1", user_id="u1", event_type="like", timestamp=now - 1, item_id="a", received_at=now)
    view = Event(event_id="e2", user_id="u1", event_type="view", timestamp=now - 1, item_id="a", received_at=now)
    event = sqs_event(like.to_json(), view.to_json(), like.to_json(), "not json")

    response = writer.handler(event, LocalLambdaContext("recsys-dev-feature-writer"))

    assert response == {"batchItemFailures": [{"itemIdentifier": "m3"}]}
    snapshot = FeatureReader(redis_client, stage_config.pit_features).read("u1", ["a"])
    assert (snapshot.items["a"]["item_likes"], snapshot.items["a"]["item_views"]) == (1, 1)
    metrics = emf_metrics(capsys.readouterr().out)
    assert metrics["EventsProcessed"] == [3] and metrics["EventsDuplicate"] == [1]
    assert metrics["EventsFailed"] == [1] and metrics["EventsPoison"] == [1] and metrics["StoreErrors"] == [0]
    assert len(metrics["ReflectionTime"]) == 2 and all(1000 <= value < 10_000 for value in metrics["ReflectionTime"])
    assert len(metrics["ReflectionTimeFromArrival"]) == 2


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_the_tracker_handler_needs_its_topic(monkeypatch, fresh_handlers):
    monkeypatch.delenv("EVENTS_TOPIC_ARN", raising=False)
    with pytest.raises(RuntimeError, match="EVENTS_TOPIC_ARN is not set"):
        lambda_module("event_tracker").handler({"httpMethod": "POST", "path": "/events"}, LocalLambdaContext("t"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300) | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
columns = st.sampled_from(
    ["ITEM_ID", "USER_ID", "GENRES", "CREATOR", "FRANCHISE", "IS_PAID", "CREATION_TIMESTAMP", "PRICE", "AGE", "TOPICS"]
)
record = st.dictionaries(columns, json_values | st.text(max_size=8), max_size=5) | json_values


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["items", "users"]), records=st.lists(record, max_size=3) | json_values)
def test_arbitrary_metadata_never_gets_a_5xx_from_the_real_catalog(redis_client, kind, records):
    config = load_stage("dev").event_tracker
    catalog = ItemCatalog(redis_client)
    tracker = EventTracker(config, [NullSender()], validate_event)
    api = tracker_api(tracker, CatalogUpdater(config, lambda: catalog), config)
    headers = {"content-type": "application/json"}
    body = json.dumps({kind: records})
    response = api.handle_apigateway({"httpMethod": "POST", "path": f"/{kind}", "headers": headers, "body": body})
    assert 200 <= response["statusCode"] < 500, response["body"]
