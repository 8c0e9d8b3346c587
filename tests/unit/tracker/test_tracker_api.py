"""The tracker API over API Gateway proxy events: statuses, per-event answers, routing; bad input is never a 5xx."""

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.config import EventTrackerConfig
from recsys.features import validate_event
from recsys.tracker.api import tracker_api
from recsys.tracker.service import CatalogUpdater, EventTracker

NOW = 1_714_564_800.0
CONFIG = EventTrackerConfig()


class RecordingSink:
    """An in-memory sink that can refuse chosen events."""

    def __init__(self, name="memory", refuse=lambda event: None):
        self.name = name
        self.refuse = refuse
        self.delivered = []

    def deliver(self, events):
        failed = {event.event_id: reason for event in events if (reason := self.refuse(event))}
        self.delivered.extend(event for event in events if event.event_id not in failed)
        return failed


class DictCatalog:
    def __init__(self):
        self.items, self.users = {}, {}

    def upsert_items(self, records):
        self._upsert(self.items, "ITEM_ID", records)

    def upsert_users(self, records):
        self._upsert(self.users, "USER_ID", records)

    @staticmethod
    def _upsert(table, key, records):
        for record in records:
            if not isinstance(record.get(key), str):
                raise ValueError(f"{key} is required")
        table.update({record[key]: record for record in records})


def build(*sinks, catalog=None, unavailable=()):
    catalog = catalog or DictCatalog()
    tracker = EventTracker(CONFIG, sinks or [RecordingSink()], writable=validate_event, clock=lambda: NOW)
    return tracker_api(tracker, CatalogUpdater(CONFIG, lambda: catalog, unavailable), CONFIG)


def proxy_event(payload, path="/events", method="POST", content_type="application/json", raw=None):
    body = raw if raw is not None else json.dumps(payload)
    return {
        "httpMethod": method,
        "path": path,
        "headers": {"Content-Type": content_type} if content_type else None,
        "body": body,
        "isBase64Encoded": False,
        "requestContext": {"requestId": "r-1", "stage": "dev"},
    }


def call(api, payload=None, **kwargs):
    response = api.handle_apigateway(proxy_event(payload, **kwargs))
    assert response["headers"]["Content-Type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def click(**fields):
    return {"event_type": "click", "item_id": "i1", "sent_at": NOW - 5, **fields}


def events_body(*events):
    return {"user_id": "u1", "session_id": "s1", "events": list(events)}


def test_all_accepted_is_200_and_every_event_reaches_every_sink():
    sns, firehose = RecordingSink("sns"), RecordingSink("firehose")
    status, answer = call(build(sns, firehose), events_body(click(event_id="a"), click(event_id="b")))
    assert status == 200
    assert answer == {
        "accepted": 2,
        "rejected": 0,
        "failed": 0,
        "results": [
            {"index": 0, "event_id": "a", "status": "accepted"},
            {"index": 1, "event_id": "b", "status": "accepted"},
        ],
    }
    assert [event.event_id for event in sns.delivered] == ["a", "b"] == [e.event_id for e in firehose.delivered]


def test_partial_success_is_200_with_the_rejected_events_reasons():
    sink = RecordingSink()
    status, answer = call(build(sink), events_body(click(event_id="a"), click(event_id="b", sent_at="soon")))
    assert status == 200 and (answer["accepted"], answer["rejected"]) == (1, 1)
    assert answer["results"][1]["status"] == "rejected"
    assert answer["results"][1]["errors"][0]["field"] == "events[1].sent_at"
    assert [event.event_id for event in sink.delivered] == ["a"]


def test_an_event_the_feature_writer_would_refuse_is_rejected_naming_the_field():
    sink = RecordingSink()
    status, answer = call(build(sink), events_body(click(event_id="a: b", properties={"progress": "1.5"})))
    assert status == 400 and sink.delivered == []
    (error,) = answer["results"][0]["errors"]
    assert error["field"] == "events[0].properties.progress"
    assert error["message"].startswith("must be a number in [0, 1]")


def test_all_rejected_is_400_with_per_event_reasons():
    status, answer = call(build(), events_body(click(event_type=None)))
    assert status == 400
    assert answer["results"][0]["errors"] == [{"field": "events[0].event_type", "message": "is required"}]


def test_an_event_a_sink_refuses_is_failed_and_not_accepted():
    firehose = RecordingSink("firehose", refuse=lambda e: "firehose: ServiceUnavailable" if e.event_id == "b" else None)
    status, answer = call(build(RecordingSink("sns"), firehose), events_body(click(event_id="a"), click(event_id="b")))
    assert status == 200 and answer["failed"] == 1
    assert answer["results"][1] == {
        "index": 1,
        "event_id": "b",
        "status": "failed",
        "reason": "firehose: ServiceUnavailable",
    }


def test_a_total_publishing_outage_is_503_with_retry_after_and_the_ids_to_retry():
    down = RecordingSink("sns", refuse=lambda event: "sns: InternalError")
    response = build(down).handle_apigateway(proxy_event(events_body(click(), click())))
    assert response["statusCode"] == 503 and response["headers"]["Retry-After"] == "1"
    results = json.loads(response["body"])["results"]
    assert [result["status"] for result in results] == ["failed", "failed"]
    assert all(len(result["event_id"]) == 36 for result in results)  # generated ids, to retry with


@pytest.mark.parametrize(
    ("kwargs", "status", "field"),
    [
        ({"content_type": "text/plain"}, 415, "Content-Type"),
        ({"content_type": None}, 415, "Content-Type"),
        ({"raw": "{not json"}, 400, "body"),
        ({"raw": '{"user_id": NaN}'}, 400, "body"),
        ({"raw": "[" * 100_000 + "]" * 100_000}, 400, "body"),
        ({"raw": " " * (CONFIG.max_body_bytes + 1)}, 413, "body"),
        ({"path": "/nope"}, 404, "path"),
        ({"method": "GET"}, 405, "method"),
    ],
)
def test_request_level_errors_name_what_is_wrong(kwargs, status, field):
    got_status, answer = call(build(), events_body(click()), **kwargs)
    assert got_status == status
    assert answer["errors"][0]["field"] == field and answer["message"].startswith(field)


def test_json_content_type_variants_are_accepted():
    for content_type in ("application/json; charset=utf-8", "Application/JSON", "application/vnd.api+json"):
        assert call(build(), events_body(click()), content_type=content_type)[0] == 200


def test_a_base64_body_is_decoded_and_a_broken_one_is_400():
    api = build()
    event = proxy_event(None, raw=base64.b64encode(json.dumps(events_body(click())).encode()).decode())
    assert api.handle_apigateway({**event, "isBase64Encoded": True})["statusCode"] == 200
    broken = api.handle_apigateway({**event, "body": "%%%", "isBase64Encoded": True})
    assert broken["statusCode"] == 400 and "base64" in broken["body"]


def test_a_trailing_slash_routes_the_same():
    assert call(build(), events_body(click()), path="/events/")[0] == 200


def test_405_lists_the_allowed_methods():
    response = build().handle_apigateway(proxy_event({}, method="DELETE"))
    assert response["statusCode"] == 405 and response["headers"]["Allow"] == "POST"


def test_items_and_users_upsert_through_the_catalog():
    catalog = DictCatalog()
    api = build(catalog=catalog)
    assert call(api, {"items": [{"ITEM_ID": "i1", "GENRE": "drama"}]}, path="/items") == (200, {"upserted": 1})
    assert call(api, {"users": [{"USER_ID": "u1"}, {"USER_ID": "u2"}]}, path="/users") == (200, {"upserted": 2})
    assert catalog.items == {"i1": {"ITEM_ID": "i1", "GENRE": "drama"}} and set(catalog.users) == {"u1", "u2"}


def test_a_catalog_validation_error_is_400_naming_the_field():
    class IndexedCatalog(DictCatalog):
        def upsert_items(self, records):
            raise ValueError("items[0].PRICE: must be >= 0, got -1")

    status, answer = call(build(), {"items": [{"GENRE": "drama"}]}, path="/items")
    assert (status, answer["errors"]) == (400, [{"field": "items", "message": "ITEM_ID is required"}])
    status, answer = call(build(catalog=IndexedCatalog()), {"items": [{"PRICE": -1}]}, path="/items")
    assert (status, answer["errors"]) == (400, [{"field": "items[0].PRICE", "message": "must be >= 0, got -1"}])


def test_a_store_outage_on_upsert_is_503():
    class DownCatalog(DictCatalog):
        def upsert_items(self, records):
            raise ConnectionError("store down")

    response = build(catalog=DownCatalog(), unavailable=(ConnectionError,)).handle_apigateway(
        proxy_event({"items": [{"ITEM_ID": "i"}]}, path="/items")
    )
    assert response["statusCode"] == 503 and response["headers"]["Retry-After"] == "1"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
plausible_event = st.fixed_dictionaries(
    {"event_type": st.sampled_from(["click", "like", ""]) | json_values},
    optional={
        "item_id": st.text(max_size=6) | json_values,
        "sent_at": st.floats(NOW - 1e9, NOW + 3000) | st.text(max_size=25) | json_values,
        "event_value": json_values,
        "properties": st.dictionaries(st.text(max_size=4), st.text(max_size=4) | json_values, max_size=3),
        "impression": st.lists(st.text(max_size=4) | json_values, max_size=3),
        "event_id": st.text(max_size=4) | json_values,
    },
)
bodies = (
    json_values
    | st.fixed_dictionaries(
        {"user_id": st.text(max_size=5) | json_values, "session_id": st.text(max_size=5) | json_values},
        optional={"events": st.lists(plausible_event | json_values, max_size=6) | json_values},
    )
    | st.fixed_dictionaries({"items": st.lists(json_values, max_size=3) | json_values})
    | st.fixed_dictionaries({"users": st.lists(json_values, max_size=3) | json_values})
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies, path=st.sampled_from(["/events", "/items", "/users"]))
def test_arbitrary_json_bodies_never_get_a_5xx(body, path):
    status, answer = call(build(), raw=json.dumps(body), path=path)
    assert 200 <= status < 500
    if status >= 400:
        assert answer.get("message") or answer.get("results")


@settings(max_examples=200)
@given(raw=st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_bytes_never_get_a_5xx(raw):
    api = build()
    text = raw.decode("latin-1") if isinstance(raw, bytes) else raw
    response = api.handle_apigateway(proxy_event(None, raw=text))
    assert 200 <= response["statusCode"] < 500
    encoded = base64.b64encode(raw if isinstance(raw, bytes) else raw.encode()).decode()
    response = api.handle_apigateway({**proxy_event(None, raw=encoded), "isBase64Encoded": True})
    assert 200 <= response["statusCode"] < 500
