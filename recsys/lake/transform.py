"""Kinesis Data Firehose record transformation for the events delivery stream.

Firehose hands the transform Lambda a batch of base64 records and expects, for
every recordId, one of:
- `Ok`: `data` is the normalized event (one JSON line) and `metadata.partitionKeys`
  carries `event_date`, which the stream's dynamic partitioning puts in the S3 prefix
  (`events/event_date=YYYY-MM-DD/`);
- `Dropped`: a repeat of an event id already seen in this batch (Firehose retries
  whole batches, and the tracker may resend);
- `ProcessingFailed`: not a valid event; Firehose writes it, untouched, under the
  error prefix, so nothing is lost.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from recsys.events import InvalidEvent, event_date, parse_event_record

OK = "Ok"
DROPPED = "Dropped"
FAILED = "ProcessingFailed"


@dataclass
class TransformResult:
    records: list[dict[str, Any]]
    counts: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def response(self) -> dict[str, Any]:
        return {"records": self.records}


def _failed(record: dict[str, Any], reason: str, result: TransformResult) -> None:
    result.records.append({"recordId": record["recordId"], "result": FAILED, "data": record.get("data", "")})
    result.errors.append(f"{record['recordId']}: {reason}")


def transform_records(records: list[dict[str, Any]]) -> TransformResult:
    result = TransformResult(records=[])
    seen: set[str] = set()
    for record in records:
        try:
            raw = base64.b64decode(record["data"], validate=True)
            event = parse_event_record(json.loads(raw))
        except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as exc:
            _failed(record, f"not a JSON event: {exc}", result)
            continue
        except InvalidEvent as exc:
            _failed(record, str(exc), result)
            continue
        if event.event_id in seen:
            result.records.append({"recordId": record["recordId"], "result": DROPPED, "data": record["data"]})
            continue
        seen.add(event.event_id)
        line = (event.to_json() + "\n").encode()
        result.records.append(
            {
                "recordId": record["recordId"],
                "result": OK,
                "data": base64.b64encode(line).decode(),
                "metadata": {"partitionKeys": {"event_date": event_date(event.timestamp)}},
            }
        )
    result.counts.update(r["result"] for r in result.records)
    return result
