"""Feature group definitions from the spec, record encoding, and the SageMaker adapter against botocore's Stubber.

The Stubber validates every request against the real `sagemaker-featurestore-runtime` service model, so
these check the exact request shapes PutRecord, GetRecord and BatchGetRecord take.
"""

from __future__ import annotations

import re

import boto3
import pytest
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st

from recsys.batch.feature_store import (
    OFFLINE_COLUMNS,
    FeatureStoreError,
    SageMakerFeatureStore,
    decode_record,
    encode_record,
    feature_definitions,
    feature_group,
)
from recsys.batch.spec import features_of
from recsys.config import load_stage

NAMES = load_stage("dev").names
USER = feature_group("user", NAMES)
# SageMaker's FeatureName pattern and length limit.
FEATURE_NAME = re.compile(r"^[a-zA-Z0-9]([-_]*[a-zA-Z0-9]){0,63}$")


@pytest.fixture
def runtime():
    client = boto3.client(
        "sagemaker-featurestore-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize("entity", ["user", "item"])
def test_definitions_are_generated_from_the_spec(entity):
    definitions = feature_definitions(entity)
    names = [d["FeatureName"] for d in definitions]
    assert names == [f"{entity}_id", *(f.name for f in features_of(entity)), "event_time"]
    assert definitions[0]["FeatureType"] == "String" and definitions[-1]["FeatureType"] == "Fractional"
    kinds = {f.name: f.dtype for f in features_of(entity)}
    expected = {"integral": "Integral", "fractional": "Fractional", "string": "String"}
    assert all(d["FeatureType"] == expected[kinds[d["FeatureName"]]] for d in definitions[1:-1])
    assert all(FEATURE_NAME.match(name) for name in names) and not set(names) & set(OFFLINE_COLUMNS)
    assert len(definitions) <= 2500  # SageMaker's limit of features per group


def test_groups_are_named_per_stage():
    assert USER.name == "recsys-dev-user-batch-features"
    assert (USER.record_identifier, USER.event_time, USER.entity) == ("user_id", "event_time", "user")
    with pytest.raises(ValueError, match="entity: 'item_pair' has no feature group"):
        feature_definitions("item_pair")


@given(
    count=st.integers(-(2**62), 2**62),
    share=st.floats(allow_nan=False, allow_infinity=False),
    geo=st.text(min_size=1, max_size=20),
)
def test_encoding_round_trips(count, share, geo):
    record = {
        "user_id": "u1",
        "event_time": 1709251200.0,
        "user_click_count_7d": count,
        "user_top_category_share": share,
        "user_geo": geo,
        "user_age": None,
    }
    encoded = encode_record(USER, record)
    assert "user_age" not in {v["FeatureName"] for v in encoded}  # None: no value, as SageMaker omits it
    decoded = decode_record(USER, {v["FeatureName"]: v["ValueAsString"] for v in encoded})
    assert decoded == {k: v for k, v in record.items() if v is not None}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"event_time": 1.0}, "user_id: required non-empty string"),
        ({"user_id": "u1"}, "u1: event_time: required"),
        ({"user_id": "u1", "event_time": 1.0, "nope": 1}, "u1: nope: not a feature of the group"),
        ({"user_id": "u1", "event_time": 1.0, "user_age": 1.5}, "u1: user_age: expected an integer"),
        ({"user_id": "u1", "event_time": 1.0, "user_age": True}, "u1: user_age: expected a number"),
        ({"user_id": "u1", "event_time": 1.0, "user_geo": 3}, "u1: user_geo: expected a string"),
        ({"user_id": "u1", "event_time": float("nan")}, "u1: event_time: expected a finite number"),
    ],
)
def test_bad_records_name_the_field(record, message):
    with pytest.raises(FeatureStoreError, match=re.escape(message)):
        encode_record(USER, record)


def test_ingest_puts_each_record(runtime):
    client, stubber = runtime
    for user in ("u1", "u2"):
        stubber.add_response(
            "put_record",
            {},
            {
                "FeatureGroupName": USER.name,
                "Record": [
                    {"FeatureName": "user_id", "ValueAsString": user},
                    {"FeatureName": "event_time", "ValueAsString": "1709251200.0"},
                    {"FeatureName": "user_click_count_7d", "ValueAsString": "3"},
                ],
            },
        )
    store = SageMakerFeatureStore({USER.name: USER}, client, max_workers=1)
    records = [{"user_id": u, "event_time": 1709251200.0, "user_click_count_7d": 3} for u in ("u1", "u2")]
    assert store.ingest(USER.name, records) == 2


def test_ingest_tries_every_record_then_reports_failures(runtime):
    client, stubber = runtime
    stubber.add_client_error("put_record", "ValidationError", "bad value", 400)
    stubber.add_response("put_record", {})
    store = SageMakerFeatureStore({USER.name: USER}, client, max_workers=1)
    records = [{"user_id": u, "event_time": 1.0} for u in ("u1", "u2")]
    with pytest.raises(FeatureStoreError, match=r"1 record\(s\) not written; first: u1: .*bad value"):
        store.ingest(USER.name, records)


def test_get_record_decodes_types_and_returns_none_when_absent(runtime):
    client, stubber = runtime
    stubber.add_response(
        "get_record",
        {
            "Record": [
                {"FeatureName": "user_id", "ValueAsString": "u1"},
                {"FeatureName": "user_age", "ValueAsString": "30"},
                {"FeatureName": "user_price_sensitivity", "ValueAsString": "0.75"},
            ]
        },
        {"FeatureGroupName": USER.name, "RecordIdentifierValueAsString": "u1"},
    )
    stubber.add_response("get_record", {}, {"FeatureGroupName": USER.name, "RecordIdentifierValueAsString": "nobody"})
    store = SageMakerFeatureStore({USER.name: USER}, client)
    assert store.get_record(USER.name, "u1") == {"user_id": "u1", "user_age": 30, "user_price_sensitivity": 0.75}
    assert store.get_record(USER.name, "nobody") is None


def _result(user: str) -> dict:
    return {
        "FeatureGroupName": USER.name,
        "RecordIdentifierValueAsString": user,
        "Record": [
            {"FeatureName": "user_id", "ValueAsString": user},
            {"FeatureName": "user_geo", "ValueAsString": "ES"},
        ],
    }


def test_batch_get_chunks_by_100_and_retries_unprocessed(runtime):
    client, stubber = runtime
    ids = [f"u{i}" for i in range(150)]
    stubber.add_response(
        "batch_get_record",
        {
            "Records": [_result(u) for u in ids[:99]],
            "Errors": [],
            "UnprocessedIdentifiers": [{"FeatureGroupName": USER.name, "RecordIdentifiersValueAsString": ["u99"]}],
        },
        {"Identifiers": [{"FeatureGroupName": USER.name, "RecordIdentifiersValueAsString": ids[:100]}]},
    )
    stubber.add_response(
        "batch_get_record",
        {"Records": [_result("u99")], "Errors": [], "UnprocessedIdentifiers": []},
        {"Identifiers": [{"FeatureGroupName": USER.name, "RecordIdentifiersValueAsString": ["u99"]}]},
    )
    stubber.add_response(
        "batch_get_record",
        {"Records": [_result(u) for u in ids[100:] if u != "u149"], "Errors": [], "UnprocessedIdentifiers": []},
        {"Identifiers": [{"FeatureGroupName": USER.name, "RecordIdentifiersValueAsString": ids[100:]}]},
    )
    found = SageMakerFeatureStore({USER.name: USER}, client).batch_get(USER.name, ids)
    assert set(found) == set(ids) - {"u149"}  # u149 has no record
    assert found["u99"] == {"user_id": "u99", "user_geo": "ES"}


def test_batch_get_errors_name_the_record(runtime):
    client, stubber = runtime
    stubber.add_response(
        "batch_get_record",
        {
            "Records": [],
            "Errors": [
                {
                    "FeatureGroupName": USER.name,
                    "RecordIdentifierValueAsString": "u1",
                    "ErrorCode": "ThrottlingException",
                    "ErrorMessage": "slow down",
                }
            ],
            "UnprocessedIdentifiers": [],
        },
    )
    with pytest.raises(FeatureStoreError, match="recsys-dev-user-batch-features/u1: ThrottlingException: slow down"):
        SageMakerFeatureStore({USER.name: USER}, client).batch_get(USER.name, ["u1"])


def test_unknown_group_is_a_clear_error(runtime):
    client, _ = runtime
    with pytest.raises(FeatureStoreError, match="feature group 'nope' does not exist"):
        SageMakerFeatureStore({USER.name: USER}, client).get_record("nope", "u1")
