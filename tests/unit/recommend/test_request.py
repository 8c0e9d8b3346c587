"""Request parsing: every bad field is a 400 naming it; valid bodies parse to typed requests."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recsys.config import RecommendConfig
from recsys.recommend.request import ROUTE_FIELDS, parse_request
from recsys.tracker.validation import RequestRejected

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


@pytest.mark.parametrize(("route", "body", "field", "message"), [
    ("recommendations", {}, "userId", "is required"),
    ("recommendations", {"userId": ""}, "userId", "must be a non-empty string"),
    ("recommendations", {"userId": 7}, "userId", "must be a non-empty string"),
    ("recommendations", {"userId": "u", "numResults": 0}, "numResults", "must be between 1 and 500, got 0"),
    ("recommendations", {"userId": "u", "numResults": "5"}, "numResults", "must be an integer, got str"),
    ("recommendations", {"userId": "u", "numResults": True}, "numResults", "must be an integer, got bool"),
    ("recommendations", {"userId": "u", "numresults": 5}, "numresults",
     "is not a known field of /recommendations; known: userId, sessionId, numResults, filterName, filterValues, "
     "context"),
    ("recommendations", {"userId": "u", "filterValues": {"G": '"a"'}}, "filterValues", "needs filterName"),
    ("recommendations", {"userId": "u", "filterName": "f", "filterValues": {"G": 3}}, "filterValues.G",
     'must be a string in Personalize\'s format, e.g. "\\"drama\\",\\"comedy\\""'),
    ("recommendations", {"userId": "u", "context": {"device": "tv"}}, "context.device",
     "is not a known field; known: platform, geography, time"),
    ("recommendations", {"userId": "u", "context": {"time": 1714564800000}}, "context.time",
     "must be unix seconds between 2000 and 2100, got 1714564800000"),
    ("recommendations", {"userId": "u", "context": {"time": "yesterday"}}, "context.time",
     "must be unix seconds or an ISO-8601 time with a timezone, got 'yesterday'"),
    ("recommendations", {"userId": "u", "context": "web"}, "context",
     "must be an object with platform, geography and/or time"),
    ("ranking", {"userId": "u"}, "itemList", "is required"),
    ("ranking", {"userId": "u", "itemList": []}, "itemList", "must be a non-empty array of item id strings"),
    ("ranking", {"userId": "u", "itemList": ["a", 3]}, "itemList[1]", "must be a non-empty string"),
    ("ranking", {"userId": "u", "itemList": ["a"], "numResults": 3}, "numResults",
     "is not a known field of /ranking; known: userId, sessionId, itemList, filterName, filterValues, context"),
    ("related", {}, "itemId", "is required"),
    ("showcase", {"userId": "u\x00"}, "userId", "must not contain control characters"),
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
