"""Request parsing: every bad field is a 400 naming it; valid bodies parse to typed requests."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.config import RecommendConfig
from recsys.recommend.request import ROUTE_FIELDS, parse_request
from recsys.tracker.validation import RequestRejected
from tests.hostile import hostile_text, hostile_time

CONFIG = RecommendConfig()


def rejected(route: str, body) -> dict[str, str]:
    with pytest.raises(RequestRejected) as caught:
        parse_request(route, body, CONFIG)
    assert caught.value.status == 400
    return {error.field: error.message for error in caught.value.errors}


def test_a_full_request_parses():
    request = parse_request("recommendations", {
        "userId": "u1", "sessionId": "s1", "numResults": 7, "filterName": "f", "filterValues": {"$GENRE": '"a","b"'},
        "context": {"platform": "tv", "geography": "ES", "time": "2024-05-01T12:00:00Z"}}, CONFIG)
    assert (request.user_id, request.num_results, request.filter_name) == ("u1", 7, "f")
    assert request.filter_values == {"GENRE": '"a","b"'}
    assert (request.context.platform, request.context.geography, request.context.time) == ("tv", "ES", 1714564800.0)


def test_defaults():
    request = parse_request("popular", {}, CONFIG)
    assert request.num_results == CONFIG.default_num_results and request.context.platform == "default"
    assert request.context.time is None and request.user_id is None


SURROGATE = "a lone surrogate (not valid Unicode)"


@pytest.mark.parametrize(("route", "body", "field", "message"), [
    ("recommendations", {}, "userId", "is required"),
    ("recommendations", {"userId": ""}, "userId", "must not be empty or blank"),
    ("recommendations", {"userId": 7}, "userId", "must be a string, got number"),
    ("recommendations", {"userId": "u\ud800"}, "userId", f"must not contain U+D800, {SURROGATE}, at character 1"),
    ("recommendations", {"userId": "u\x7f"}, "userId",
     "must not contain U+007F, a control character, at character 1"),
    ("recommendations", {"userId": "u\x85"}, "userId",
     "must not contain U+0085, a control character, at character 1"),
    ("recommendations", {"userId": "a\u2028b"}, "userId", "must not contain U+2028, a line break, at character 1"),
    ("recommendations", {"userId": "u", "numResults": 0}, "numResults", "must be between 1 and 500, got 0"),
    ("recommendations", {"userId": "u", "numResults": "5"}, "numResults", "must be an integer, got string"),
    ("recommendations", {"userId": "u", "numResults": True}, "numResults", "must be an integer, got boolean"),
    ("recommendations", {"userId": "u", "numresults": 5}, "numresults",
     "is not a known field of /recommendations; known: userId, sessionId, numResults, filterName, filterValues, "
     "context"),
    ("recommendations", {"userId": "u", "filterValues": {"G": '"a"'}}, "filterValues", "needs filterName"),
    ("recommendations", {"userId": "u", "filterName": "f", "filterValues": {"G": 3}}, "filterValues.G",
     'must be a string in Personalize\'s format, e.g. "\\"drama\\",\\"comedy\\""'),
    ("recommendations", {"userId": "u", "context": {"device": "tv"}}, "context.device",
     "is not a known field; known: platform, geography, time"),
    ("recommendations", {"userId": "u", "context": {"time": 1714564800000}}, "context.time",
     "1714564800000 is outside the platform's time range: must be between 1970-01-01T00:00:01Z and "
     "2100-01-01T00:00:00Z (milliseconds? send seconds)"),
    ("recommendations", {"userId": "u", "context": {"time": "0001-01-01T00:00:00Z"}}, "context.time",
     "'0001-01-01T00:00:00Z' is outside the platform's time range: must be between 1970-01-01T00:00:01Z and "
     "2100-01-01T00:00:00Z"),
    ("recommendations", {"userId": "u", "context": {"time": "0001-01-01T00:00:00+14:00"}}, "context.time",
     "'0001-01-01T00:00:00+14:00' is outside the platform's time range: must be between 1970-01-01T00:00:01Z and "
     "2100-01-01T00:00:00Z"),
    ("recommendations", {"userId": "u", "context": {"time": "9999-12-31T23:59:59-14:00"}}, "context.time",
     "'9999-12-31T23:59:59-14:00' is outside the platform's time range: must be between 1970-01-01T00:00:01Z and "
     "2100-01-01T00:00:00Z"),
    ("recommendations", {"userId": "u", "context": {"time": "yesterday"}}, "context.time",
     "must be unix seconds or an ISO-8601 time with a timezone, e.g. 2024-05-01T12:00:00Z"),
    ("recommendations", {"userId": "u", "context": {"time": "2024-05-01T12:00:00"}}, "context.time",
     "an ISO-8601 time needs a timezone (Z or +hh:mm)"),
    ("recommendations", {"userId": "u", "context": "web"}, "context",
     "must be an object with platform, geography and/or time"),
    ("ranking", {"userId": "u"}, "itemList", "is required"),
    ("ranking", {"userId": "u", "itemList": []}, "itemList", "must be a non-empty array of item id strings"),
    ("ranking", {"userId": "u", "itemList": ["a", 3]}, "itemList[1]", "must be a string, got number"),
    ("ranking", {"userId": "u", "itemList": ["a"], "numResults": 3}, "numResults",
     "is not a known field of /ranking; known: userId, sessionId, itemList, filterName, filterValues, context"),
    ("related", {}, "itemId", "is required"),
    ("showcase", {"userId": "u\x00"}, "userId",
     "must not contain U+0000, a control character, at character 1"),
    ("recommendations", {"userId": "u", "filterName": "f", "filterValues": {"G": '"a\ud800"'}}, "filterValues.G",
     f"must not contain U+D800, {SURROGATE}, at character 2"),
    ("recommendations", {"userId": "u", "context": {"platform": "web\n"}}, "context.platform",
     "must not contain U+000A, a control character, at character 3"),
])
def test_bad_fields_are_named(route, body, field, message):
    assert rejected(route, body)[field] == message


def test_every_error_is_reported_at_once():
    errors = rejected("recommendations", {"numResults": -1, "context": {"platform": 5}})
    assert set(errors) == {"userId", "numResults", "context.platform"}


def test_a_body_that_is_not_an_object_is_rejected():
    assert rejected("popular", [1, 2]) == {"body": "must be a JSON object"}


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=3), max_leaves=8)


@given(st.sampled_from(sorted(ROUTE_FIELDS)), st.dictionaries(
    st.sampled_from(["userId", "itemId", "itemList", "numResults", "filterName", "filterValues", "context", "x"]),
    json_values, max_size=5))
def test_any_json_body_parses_or_is_a_400_naming_known_fields(route, body):
    try:
        request = parse_request(route, body, CONFIG)
    except RequestRejected as exc:
        assert exc.status == 400 and exc.errors
        for error in exc.errors:
            assert error.field.split(".")[0].split("[")[0] in (*ROUTE_FIELDS[route], *body, "body")
            json.dumps(error.to_dict())
    else:
        assert 1 <= request.num_results <= CONFIG.max_num_results


@settings(max_examples=1500, deadline=None)
@given(route=st.sampled_from(sorted(ROUTE_FIELDS)), body=st.fixed_dictionaries({}, optional={
    "userId": hostile_text, "sessionId": hostile_text, "itemId": hostile_text,
    "itemList": st.lists(hostile_text, min_size=1, max_size=3),
    "context": st.fixed_dictionaries({}, optional={"time": hostile_time, "platform": hostile_text,
                                                   "geography": hostile_text})}))
def test_every_accepted_request_logs_exposures_the_pipeline_accepts(route, body):
    """Nothing a client can send becomes poison: the impression events of any accepted request (its user, session
    and time) pass the queue consumer's and the lake's check."""
    from recsys.events import parse_event_record
    from recsys.recommend.exposure import ShownList, impression_events

    body = {name: value for name, value in body.items() if name in ROUTE_FIELDS[route]}
    try:
        request = parse_request(route, body, CONFIG)
    except RequestRejected:
        return
    if request.user_id is None:
        return
    events = impression_events(user_id=request.user_id, session_id=request.session_id, recommendation_id="r" * 32,
                               variant="champion", route=route, lists=[ShownList(("i1", "i2"), "shelf", 0)],
                               now=request.context.time or 1_714_564_800.0, degraded=False, latency_ms=1.0)
    for event in events:
        assert parse_event_record(json.loads(event.to_json())) == event
