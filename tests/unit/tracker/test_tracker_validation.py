"""POST /events validation: every field's error names the field; limits; mapping to the canonical Event."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.config import EventTrackerConfig
from recsys.events import Event
from tests.hostile import hostile_number, hostile_text, hostile_time
from recsys.tracker.validation import (
    InvalidMessage,
    RequestRejected,
    check_event,
    decode_event_message,
    parse_metadata_request,
    parse_sent_at,
    parse_track_request,
)

SURROGATE = "a lone surrogate (not valid Unicode)"
RANGE = "must be between 1970-01-01T00:00:01Z and 2100-01-01T00:00:00Z"
CONFIG = EventTrackerConfig()
NOW = 1_714_564_800.0  # 2024-05-01T12:00:00Z


def body(*events, **envelope):
    return {"user_id": "u1", "session_id": "s1", "events": list(events), **envelope}


def event(**fields):
    return {"event_type": "click", "item_id": "i1", "sent_at": NOW - 60, **fields}


def errors_of(raw, config=CONFIG):
    verdict = check_event(0, raw, user_id="u1", session_id="s1", config=config, now=NOW)
    assert verdict.event is None
    return {error.field: error.message for error in verdict.errors}


def rejected(payload, config=CONFIG):
    with pytest.raises(RequestRejected) as caught:
        parse_track_request(payload, config, NOW)
    return caught.value


def test_a_valid_event_maps_to_the_canonical_event():
    raw = event(
        event_id="e1",
        event_value=312.5,
        sent_at="2024-05-01T11:59:00Z",
        properties={"device": "tv"},
        impression=["i1", "i2"],
        recommendation_id="r1",
    )
    request = parse_track_request(body(raw), CONFIG, NOW)
    (verdict,) = request.verdicts
    assert verdict.errors == ()
    assert verdict.event == Event(
        event_id="e1",
        user_id="u1",
        event_type="click",
        timestamp=NOW - 60,
        item_id="i1",
        event_value=312.5,
        session_id="s1",
        recommendation_id="r1",
        impression=("i1", "i2"),
        properties={"device": "tv"},
        received_at=NOW,
    )


def test_a_missing_event_id_is_generated_and_unique():
    request = parse_track_request(body(event(), event()), CONFIG, NOW)
    ids = [verdict.event.event_id for verdict in request.verdicts]
    assert all(len(event_id) == 36 for event_id in ids) and ids[0] != ids[1]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"sent_at": NOW}, {"events[0].event_type": "is required"}),
        (event(event_type=""), {"events[0].event_type": "must not be empty or blank"}),
        (event(event_type=7), {"events[0].event_type": "must be a string, got number"}),
        (event(item_id="x" * 257), {"events[0].item_id": "has 257 characters; the limit is 256"}),
        (event(item_id="a\nb"), {"events[0].item_id": "must not contain U+000A, a control character, at character 1"}),
        (event(item_id="a\x9fb"), {"events[0].item_id": "must not contain U+009F, a control character, at "
                                                    "character 1"}),
        (event(item_id="a\udfffb"), {"events[0].item_id": f"must not contain U+DFFF, {SURROGATE}, at character 1"}),
        (event(properties={"p": "a\ud800"}), {"events[0].properties.p": f"must not contain U+D800, {SURROGATE}, at "
                                                                       "character 1"}),
        (event(properties={"p": "a\x00"}), {"events[0].properties.p": "must not contain U+0000, a control character, "
                                                                     "at character 1"}),
        (event(event_id=["e"]), {"events[0].event_id": "must be a string, got array"}),
        (event(recommendation_id=True), {"events[0].recommendation_id": "must be a string, got boolean"}),
        (event(event_value="5"), {"events[0].event_value": "must be a finite number, got string"}),
        (event(event_value=True), {"events[0].event_value": "must be a finite number, got boolean"}),
        (event(event_value=10**400), {"events[0].event_value": "must be a finite number, got number"}),
        (event(sent_at=None), {"events[0].sent_at": "is required"}),
        (event(properties=["a"]), {"events[0].properties": "must be an object of string values, got array"}),
        (event(properties={"n": 1}), {"events[0].properties.n": "must be a string, got number"}),
        (event(properties={"": "v"}), {"events[0].properties.''": "key must not be empty or blank"}),
        (event(impression="i1"), {"events[0].impression": "must be an array of item ids, got string"}),
        (event(impression=["i1", 2]), {"events[0].impression[1]": "must be a string, got number"}),
        (
            event(eventType="click"),
            {
                "events[0].eventType": "unknown field; expected one of event_id, event_type, event_value, item_id, "
                "sent_at, properties, impression, recommendation_id"
            },
        ),
    ],
)
def test_each_invalid_field_is_named_with_its_reason(raw, expected):
    assert errors_of(raw) == expected


def test_all_problems_of_an_event_are_reported_at_once():
    assert set(errors_of({"event_value": "x", "item_id": ""})) == {
        "events[0].event_type",
        "events[0].sent_at",
        "events[0].event_value",
        "events[0].item_id",
    }


def test_property_values_are_free_text_with_tabs_and_line_breaks():
    verdict = check_event(0, event(properties={"note": "two\nlines\tand\r\n"}), user_id="u1", session_id="s1",
                          config=CONFIG, now=NOW)
    assert verdict.errors == () and verdict.event.properties == {"note": "two\nlines\tand\r\n"}


def test_an_event_that_is_not_an_object_is_rejected_alone():
    request = parse_track_request(body(event(), "click"), CONFIG, NOW)
    assert request.verdicts[0].event is not None
    assert [str(error) for error in request.verdicts[1].errors] == ["events[1]: must be an object, got string"]


@pytest.mark.parametrize(
    ("sent_at", "problem"),
    [
        ("2024-05-01T12:00:00+02:00", None),
        ("2024-05-01 11:00:00.250Z", None),
        (NOW - 10, None),
        (int(NOW), None),
        ("2024-05-01T12:00:00", "an ISO-8601 time needs a timezone (Z or +hh:mm)"),
        ("yesterday", "must be unix seconds or an ISO-8601 time with a timezone, e.g. 2024-05-01T12:00:00Z"),
        ("1714564800", "must be unix seconds or an ISO-8601 time with a timezone, e.g. 2024-05-01T12:00:00Z"),
        (True, "must be unix seconds or an ISO-8601 time with a timezone, e.g. 2024-05-01T12:00:00Z, got boolean"),
        ({}, "must be unix seconds or an ISO-8601 time with a timezone, e.g. 2024-05-01T12:00:00Z, got object"),
        ("1999-12-31T23:59:59Z", None),  # history of any era since 1970 is accepted (a backfill)
        (0, f"0 is outside the platform's time range: {RANGE}"),
        (-1.5, f"-1.5 is outside the platform's time range: {RANGE}"),
        ("1969-12-31T23:59:59Z", f"'1969-12-31T23:59:59Z' is outside the platform's time range: {RANGE}"),
        ("0001-01-01T00:00:00+14:00", f"'0001-01-01T00:00:00+14:00' is outside the platform's time range: {RANGE}"),
        ("9999-12-31T23:59:59-14:00", f"'9999-12-31T23:59:59-14:00' is outside the platform's time range: {RANGE}"),
        (NOW + 901, f"{NOW + 901} is more than 900 s ahead of the server clock"),
        (NOW * 1000, f"{NOW * 1000} is outside the platform's time range: {RANGE} (milliseconds? send seconds)"),
    ],
)
def test_sent_at_forms_and_bounds(sent_at, problem):
    seconds, found = parse_sent_at(sent_at, CONFIG, NOW)
    assert found == problem
    assert (seconds is None) == (problem is not None)


def test_iso_and_unix_sent_at_agree():
    assert parse_sent_at("2024-05-01T14:00:00+02:00", CONFIG, NOW) == (NOW, None)
    assert parse_sent_at("2024-05-01T12:00:00Z", CONFIG, NOW) == (NOW, None)


def test_the_clock_skew_allowance_comes_from_config():
    tight = EventTrackerConfig(max_clock_skew_s=5)
    assert parse_sent_at(NOW + 4, tight, NOW)[1] is None
    assert parse_sent_at(NOW + 6, tight, NOW)[1] == f"{NOW + 6} is more than 5 s ahead of the server clock"


def test_property_and_impression_limits():
    config = EventTrackerConfig(max_properties=2, max_impressions=3, max_property_value_chars=4)
    assert errors_of(event(properties={"a": "1", "b": "2", "c": "3"}), config) == {
        "events[0].properties": "has 3 entries; the limit is 2"
    }
    assert errors_of(event(properties={"a": "12345"}), config) == {
        "events[0].properties.a": "has 5 characters; the limit is 4"
    }
    assert errors_of(event(impression=["a", "b", "c", "d"]), config) == {
        "events[0].impression": "has 4 item ids; the limit is 3"
    }


def test_an_event_over_the_byte_limit_is_rejected_with_its_size():
    raw = event(properties={"blob": "x" * 1000})
    size = len(json.dumps(raw, separators=(",", ":")).encode())
    config = EventTrackerConfig(max_event_bytes=size - 1)
    assert errors_of(raw, config) == {"events[0]": f"is {size} bytes as compact JSON; the limit is {size - 1}"}
    fits = EventTrackerConfig(max_event_bytes=size)
    assert check_event(0, raw, user_id="u", session_id="s", config=fits, now=NOW).event is not None


def test_too_many_events_is_413_before_anything_else():
    error = rejected({"events": [event()] * 101})
    assert error.status == 413
    assert str(error) == "events: 101 events exceed the limit of 100 per call"
    assert parse_track_request(body(*[event()] * 100), CONFIG, NOW).verdicts[99].event is not None


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ([], "body: must be a JSON object, got array"),
        ({"session_id": "s", "events": [event()]}, "user_id: is required"),
        (body(event(), user_id=""), "user_id: must not be empty or blank"),
        (body(event(), session_id="s\ud800"), f"session_id: must not contain U+D800, {SURROGATE}, at character 1"),
        (body(event(), session_id=5), "session_id: must be a string, got number"),
        ({"user_id": "u", "session_id": "s"}, "events: is required"),
        (body(), "events: must contain at least one event"),
        ({"user_id": "u", "session_id": "s", "events": {}}, "events: must be an array of events, got object"),
        (body(event(), userId="u"), "userId: unknown field; expected one of user_id, session_id, events"),
    ],
)
def test_a_bad_envelope_is_400_naming_the_field(payload, expected):
    error = rejected(payload)
    assert (error.status, str(error)) == (400, expected)


def test_a_repeated_event_id_in_one_call_is_rejected():
    request = parse_track_request(body(event(event_id="e"), event(event_id="x"), event(event_id="e")), CONFIG, NOW)
    assert [verdict.event is not None for verdict in request.verdicts] == [True, True, False]
    assert str(request.verdicts[2].errors[0]) == "events[2].event_id: repeats events[0].event_id"


def test_metadata_requests():
    assert parse_metadata_request({"items": [{"ITEM_ID": "i"}]}, "items", CONFIG) == [{"ITEM_ID": "i"}]
    cases = [
        ({"users": [{}]}, "items", 400, "users: unknown field; expected one of items; items: is required"),
        ({}, "users", 400, "users: is required"),
        ({"users": []}, "users", 400, "users: must contain at least one record"),
        ({"items": [{}, 3]}, "items", 400, "items[1]: must be an object, got number"),
        ({"items": [{}] * 101}, "items", 413, "items: 101 records exceed the limit of 100 per call"),
    ]
    for payload, kind, status, message in cases:
        with pytest.raises(RequestRejected) as caught:
            parse_metadata_request(payload, kind, CONFIG)
        assert (caught.value.status, str(caught.value)) == (status, message)


def test_queue_messages_decode_to_the_event_they_carry():
    original = Event(event_id="e", user_id="u", event_type="listen", timestamp=NOW, item_id="i", event_value=300.0)
    assert decode_event_message(original.to_json()) == original


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "body is not JSON"),
        ("[1]", "record: must be a JSON object"),
        ("[" * 40 + "]" * 40, "body nests more than 32 levels of arrays and objects"),
        ('{"user_id": "u", "event_type": "x", "timestamp": 1}', "event_id: is required"),
        ('{"event_id": "e", "user_id": "u", "event_type": "x", "timestamp": "1"}',
         "timestamp: must be unix seconds \\(a number\\)"),
        ('{"event_id": "e", "user_id": "u", "event_type": "x", "timestamp": -62135596800}',
         "timestamp: -62135596800 is outside the platform's time range"),
        ('{"event_id": "e", "user_id": "u\\ud800", "event_type": "x", "timestamp": 1}',
         "user_id: must not contain U\\+D800, a lone surrogate"),
        ('{"event_id": "e", "user_id": "u", "event_type": "x", "timestamp": 1, "impression": "i"}',
         "impression: must be a list of item ids"),
    ],
)
def test_poison_messages_are_named(body, reason):
    with pytest.raises(InvalidMessage, match=reason):
        decode_event_message(body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
event_like = st.fixed_dictionaries(
    {},
    optional={
        "event_id": json_values | st.text(max_size=8),
        "event_type": json_values | st.sampled_from(["click", "listen"]),
        "event_value": json_values,
        "item_id": json_values | st.text(max_size=8),
        "sent_at": json_values | st.floats(NOW - 1e9, NOW + 2000) | st.just("2024-05-01T11:00:00Z"),
        "properties": json_values | st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
        "impression": json_values | st.lists(st.text(max_size=5), max_size=3),
        "recommendation_id": json_values,
    },
)


@given(st.lists(event_like | json_values, min_size=1, max_size=5))
def test_any_event_list_gives_one_verdict_per_event_and_valid_events_only(events):
    request = parse_track_request(body(*events), CONFIG, NOW)
    assert [verdict.index for verdict in request.verdicts] == list(range(len(events)))
    for verdict in request.verdicts:
        assert (verdict.event is None) == bool(verdict.errors)
        assert all(error.field.startswith(f"events[{verdict.index}]") for error in verdict.errors)
        if verdict.event is not None:
            assert CONFIG.min_sent_at_s <= verdict.event.timestamp <= NOW + CONFIG.max_clock_skew_s
            assert decode_event_message(verdict.event.to_json()) == verdict.event


@settings(max_examples=1500, deadline=None)
@given(
    user_id=st.one_of(hostile_text, st.text(min_size=1)),
    session_id=st.one_of(hostile_text, st.text(min_size=1)),
    raw=st.fixed_dictionaries(
        {"event_type": st.one_of(hostile_text, st.just("click")), "sent_at": st.one_of(hostile_time, st.just(NOW))},
        optional={"item_id": hostile_text, "event_id": hostile_text, "recommendation_id": hostile_text,
                  "event_value": hostile_number, "properties": st.dictionaries(hostile_text, hostile_text, max_size=3),
                  "impression": st.lists(hostile_text, max_size=3)}),
)
def test_every_event_the_tracker_accepts_passes_the_queue_consumer_and_the_lake_transform(user_id, session_id, raw):
    """Nothing a client can send becomes poison: an accepted event decodes from its queue message and lands in
    the lake, since every stage applies the same input rules (recsys.inputs)."""
    import base64

    from recsys.lake.transform import OK, transform_records

    try:
        request = parse_track_request({"user_id": user_id, "session_id": session_id, "events": [raw]}, CONFIG, NOW)
    except RequestRejected:
        return
    event = request.verdicts[0].event
    if event is None:
        return
    assert decode_event_message(event.to_json()) == event
    record = {"recordId": "r", "data": base64.b64encode(event.to_json().encode()).decode()}
    assert transform_records([record]).records[0]["result"] == OK
