"""The local Firehose stand-in against moto S3: the tracker's real FirehoseSender sends to it, the transform Lambda's
code runs on every record, objects land gzipped under the event-date partitions or the error prefix."""

from __future__ import annotations

import base64
import gzip
import json
import time

import pytest
from botocore.exceptions import ClientError

from recsys import aws
from recsys.events import Event, event_date
from recsys.lake.local_firehose import CONTRACT_BROKEN, FUNCTION_ERROR, RECORD_FAILED, LocalFirehose, transform_lambda
from recsys.local.realtime import local_lake_stream, replay_events, serve_realtime_path
from recsys.tracker.sinks import FirehoseSender, NullSender, archive_for

NOW = 1_714_564_800.0  # 2024-05-01T12:00:00Z
DAY = 86_400.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def read_prefix(bucket: str, prefix: str) -> dict[str, list[bytes]]:
    """Objects under `prefix`: key -> its gunzipped lines."""
    s3, objects = aws.client("s3"), {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            objects[item["Key"]] = gzip.decompress(body).splitlines()
    return objects


def lake_events(bucket: str) -> dict[str, list[Event]]:
    """Events by object key under events/."""
    return {key: [Event.from_json(line) for line in lines] for key, lines in read_prefix(bucket, "events/").items()}


def error_documents(bucket: str) -> dict[str, list[dict]]:
    return {key: [json.loads(line) for line in lines] for key, lines in read_prefix(bucket, "events-errors/").items()}


def event(number: int, timestamp: float) -> Event:
    return Event(event_id=f"e{number}", user_id=f"u{number % 3}", event_type="like", timestamp=timestamp, item_id="i1")


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def stream(local_resources, stage_config, clock) -> LocalFirehose:
    return LocalFirehose.for_stage(stage_config, local_resources.lake_bucket, clock=clock)


def test_every_record_lands_once_in_its_event_date_partition_or_in_the_error_prefix(stream, local_resources):
    bucket = local_resources.lake_bucket
    on_time = [event(i, NOW - i * 60) for i in range(40)]
    late = [event(100 + i, NOW - (2 + i % 3) * DAY) for i in range(15)]  # days late: their own partitions
    sender = FirehoseSender(stream.stream_name, client=stream)
    assert sender.deliver(on_time + late + on_time[:5]) == {}  # 5 resent in the same batch: Dropped
    bad = [b'{"event_id": "x1", "user_id": "u"}', b"not json at all", b'{"event_id": "x3", "timestamp": "soon"}']
    stream.put_record_batch(DeliveryStreamName=stream.stream_name, Records=[{"Data": data} for data in bad])
    assert lake_events(bucket) == {} and error_documents(bucket) == {}  # still buffered (64 MiB / 60 s)
    stream.flush()

    stats = stream.stats
    sent = len(on_time) + len(late) + 5 + len(bad)
    assert (stats.received, stats.ok, stats.dropped, stats.failed) == (sent, 55, 5, 3)
    landed = lake_events(bucket)
    for key, events in landed.items():
        assert key.endswith(".jsonl.gz") and key.startswith("events/event_date=")
        partition = key.split("/")[1].removeprefix("event_date=")
        assert {event_date(e.timestamp) for e in events} == {partition}
    all_landed = [e for events in landed.values() for e in events]
    assert sorted(all_landed, key=lambda e: e.event_id) == sorted(on_time + late, key=lambda e: e.event_id)
    assert {key.split("/")[1] for key in landed} == {f"event_date={d}" for d in
                                                    ("2024-05-01", "2024-04-29", "2024-04-28", "2024-04-27")}
    assert stats.objects == len(landed) == 4

    (errors,) = error_documents(bucket).values()
    assert [base64.b64decode(doc["rawData"]) for doc in errors] == bad
    assert {doc["errorCode"] for doc in errors} == {RECORD_FAILED}
    assert all(doc["arrivalTimestamp"] == int(NOW * 1000) and doc["lambdaArn"].endswith("firehose-transform")
               for doc in errors)
    assert stats.received == len(all_landed) + stats.dropped + len(errors)


def test_error_objects_are_under_the_error_type_and_arrival_date(stream, local_resources):
    stream.put_record(DeliveryStreamName=stream.stream_name, Record={"Data": b"[1, 2]"})
    stream.flush()
    (key,) = error_documents(local_resources.lake_bucket)
    assert key.startswith("events-errors/processing-failed/2024-05-01/recsys-dev-events-to-lake-1-2024-05-01-12-00-00-")


def test_a_partition_is_written_when_its_buffer_interval_passes(local_resources, stage_config, clock):
    stream = LocalFirehose.for_stage(
        stage_config, local_resources.lake_bucket, clock=clock, buffer_interval_s=60, processor_interval_s=10
    )
    FirehoseSender(stream.stream_name, client=stream).deliver([event(1, NOW), event(2, NOW - DAY)])
    clock.now += 9
    stream.tick()
    assert stream.stats.invocations == 0  # the processor buffer waits 10 s
    clock.now += 1
    stream.tick()
    assert stream.stats.ok == 2 and lake_events(local_resources.lake_bucket) == {}
    clock.now += 59
    stream.tick()
    assert lake_events(local_resources.lake_bucket) == {}
    clock.now += 1  # each partition's buffer is 60 s old now
    stream.tick()
    assert len(lake_events(local_resources.lake_bucket)) == 2


def test_a_partition_is_written_as_soon_as_its_buffer_is_full(local_resources, stage_config):
    stream = LocalFirehose.for_stage(
        stage_config, local_resources.lake_bucket, buffer_bytes=2_000, processor_buffer_bytes=1_000
    )
    FirehoseSender(stream.stream_name, client=stream).deliver([event(i, NOW) for i in range(30)])
    landed = lake_events(local_resources.lake_bucket)  # no flush: the size hints alone wrote these
    assert landed and all(len(b"".join(e.to_json().encode() + b"\n" for e in events)) >= 2_000
                          for events in landed.values())
    stream.flush()
    assert sum(len(events) for events in lake_events(local_resources.lake_bucket).values()) == 30


def test_a_failing_transform_is_retried_then_its_records_go_to_the_error_prefix(local_resources, stage_config):
    calls = []

    def flaky(event_):
        calls.append(len(event_["records"]))
        if len(calls) <= 2:
            raise TimeoutError("task timed out")
        return transform_lambda(event_)

    stream = LocalFirehose.for_stage(stage_config, local_resources.lake_bucket, transform=flaky, processor_retries=2)
    FirehoseSender(stream.stream_name, client=stream).deliver([event(1, NOW)])
    stream.flush()
    assert calls == [1, 1, 1] and stream.stats.ok == 1

    def broken(event_):
        raise RuntimeError("boom")

    stream = LocalFirehose.for_stage(stage_config, local_resources.lake_bucket, transform=broken, processor_retries=2)
    FirehoseSender(stream.stream_name, client=stream).deliver([event(2, NOW), event(3, NOW)])
    stream.flush()
    errors = [doc for docs in error_documents(local_resources.lake_bucket).values() for doc in docs]
    assert [(doc["errorCode"], doc["attemptsMade"]) for doc in errors] == [(FUNCTION_ERROR, 3)] * 2
    assert errors[0]["errorMessage"] == "RuntimeError: boom"
    assert sorted(Event.from_json(base64.b64decode(doc["rawData"])).event_id for doc in errors) == ["e2", "e3"]


def test_answers_that_break_the_firehose_contract_fail_their_records(local_resources, stage_config):
    def careless(event_):
        first, *rest = transform_lambda(event_)["records"]
        first.pop("metadata")  # Ok without the partition key; the last record gets no answer at all
        return {"records": [first, *rest[:-1]]}

    stream = LocalFirehose.for_stage(stage_config, local_resources.lake_bucket, transform=careless)
    FirehoseSender(stream.stream_name, client=stream).deliver([event(i, NOW) for i in range(3)])
    stream.flush()
    errors = [doc for docs in error_documents(local_resources.lake_bucket).values() for doc in docs]
    assert [doc["errorCode"] for doc in errors] == [CONTRACT_BROKEN, CONTRACT_BROKEN]
    assert "no 'event_date' key" in errors[0]["errorMessage"]
    assert "no entry for this recordId" in errors[1]["errorMessage"]
    assert [e.event_id for events in lake_events(local_resources.lake_bucket).values() for e in events] == ["e1"]


def test_service_errors_answer_like_firehose_and_the_sender_reports_them_per_event(stream):
    failed = FirehoseSender("no-such-stream", client=stream).deliver([event(1, NOW), event(2, NOW)])
    assert set(failed) == {"e1", "e2"}
    assert failed["e1"].startswith("firehose: ResourceNotFoundException: Firehose no-such-stream not found")
    with pytest.raises(ClientError, match="InvalidArgumentException"):
        stream.put_record_batch(DeliveryStreamName=stream.stream_name, Records=[{"Data": b"x"}] * 501)
    with pytest.raises(ClientError, match="larger than 1000 KiB"):
        stream.put_record(DeliveryStreamName=stream.stream_name, Record={"Data": b"x" * (1000 * 1024 + 1)})
    assert stream.stats.received == 0


def test_the_local_realtime_path_lands_tracked_events_in_the_lake_on_shutdown(local_resources, stage_config):
    events = [event(i, NOW - (i % 4) * DAY + i) for i in range(60)]
    with serve_realtime_path(local_resources, stage_config, run_in_thread=False, quiet=True) as path:
        report = replay_events(path.api.url, events, shift_to=time.time())
        assert report.accepted == len(events), report.errors
        assert lake_events(local_resources.lake_bucket) == {}  # buffered: the dev interval is 60 s
    objects = lake_events(local_resources.lake_bucket)
    landed = [e for events_ in objects.values() for e in events_]
    assert sorted(e.event_id for e in landed) == sorted(e.event_id for e in events)
    for key, events_ in objects.items():  # events days old land in their own day's partition, not today's
        assert {f"event_date={event_date(e.timestamp)}" for e in events_} == {key.split("/")[1]}
    assert len(objects) >= 4


def test_with_its_timer_thread_the_stream_delivers_full_buffers_without_blocking_the_sender(
    local_resources, stage_config
):
    with LocalFirehose.for_stage(
        stage_config, local_resources.lake_bucket, buffer_bytes=2_000, processor_buffer_bytes=1_000
    ) as stream:
        FirehoseSender(stream.stream_name, client=stream).deliver([event(i, NOW) for i in range(30)])
        deadline = time.monotonic() + 10
        while not lake_events(local_resources.lake_bucket) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lake_events(local_resources.lake_bucket), "the thread wrote the full buffer, before any close"
    assert sum(len(events) for events in lake_events(local_resources.lake_bucket).values()) == 30


def test_a_local_lake_stream_takes_the_sinks_events_while_open_and_delivers_them_when_closed(
    local_resources, stage_config
):
    name = stage_config.names.firehose_stream
    with local_lake_stream(stage_config, local_resources.lake_bucket) as stream:
        sink = archive_for(name)  # what the tracker's and the recommend API's lake sinks build
        assert sink.client is stream
        assert stream._thread is not None and stream._thread.is_alive()  # delivering on its own timer
        assert sink.deliver([event(i, NOW) for i in range(12)]) == {}
    assert sum(len(events) for events in lake_events(local_resources.lake_bucket).values()) == 12
    assert stream._thread is None
    assert not isinstance(archive_for(name), NullSender) and archive_for(name).client is not stream  # forgotten
