"""The transform Lambda's per-record contract with Firehose."""

import base64
import json
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from recsys.lake.transform import transform_records


def _record(record_id, payload) -> dict:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return {"recordId": record_id, "approximateArrivalTimestamp": 0, "data": base64.b64encode(raw).decode()}


EVENT = {"event_id": "e1", "user_id": "u1", "event_type": "click", "item_id": "i1", "timestamp": 1_700_000_000.5}


def test_valid_event_is_normalized_and_partitioned_by_event_date():
    (out,) = transform_records([_record("r1", {**EVENT, "properties": {"device": "tv"}})]).records
    assert out["result"] == "Ok"
    assert out["metadata"] == {"partitionKeys": {"event_date": "2023-11-14"}}
    line = base64.b64decode(out["data"]).decode()
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line)["properties"] == {"device": "tv"}
    assert json.loads(line)["impression"] == []


def test_invalid_records_fail_with_the_field_named_and_keep_their_data():
    bad_json = _record("r1", b"{not json")
    bad_field = _record("r2", {**EVENT, "timestamp": "yesterday"})
    missing_user = _record("r3", {k: v for k, v in EVENT.items() if k != "user_id"})
    result = transform_records([bad_json, bad_field, missing_user])
    assert [r["result"] for r in result.records] == ["ProcessingFailed"] * 3
    assert [r["data"] for r in result.records] == [bad_json["data"], bad_field["data"], missing_user["data"]]
    assert "not a JSON event" in result.errors[0]
    assert result.errors[1] == "r2: timestamp: must be unix seconds (a number)"
    assert result.errors[2] == "r3: user_id: is required"


def test_repeated_event_ids_in_a_batch_are_dropped():
    result = transform_records([_record("r1", EVENT), _record("r2", EVENT), _record("r3", {**EVENT, "event_id": "e2"})])
    assert [r["result"] for r in result.records] == ["Ok", "Dropped", "Ok"]
    assert result.counts == {"Ok": 2, "Dropped": 1}


@given(st.lists(st.one_of(st.binary(max_size=64), st.dictionaries(st.text(max_size=8), st.integers())), max_size=10))
def test_every_record_gets_exactly_one_answer_in_order(payloads):
    records = [_record(f"r{i}", p) for i, p in enumerate(payloads)]
    out = transform_records(records).records
    assert [r["recordId"] for r in out] == [r["recordId"] for r in records]
    assert all(r["result"] in {"Ok", "Dropped", "ProcessingFailed"} for r in out)


def test_handler_returns_firehose_response(monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "recsys-test")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "firehose-transform")
    from lambdas.firehose_transform.handler import handler

    context = SimpleNamespace(
        function_name="f", memory_limit_in_mb=128, invoked_function_arn="arn:aws:lambda:us-east-1:1:function:f",
        aws_request_id="req-1",
    )
    response = handler({"records": [_record("r1", EVENT), _record("r2", b"x")]}, context)
    assert [r["result"] for r in response["records"]] == ["Ok", "ProcessingFailed"]
