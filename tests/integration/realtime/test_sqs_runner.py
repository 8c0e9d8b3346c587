"""The local SQS event source against moto: Lambda's event shape, partial batch failures, redrive to the DLQ."""

import hashlib
import time

import pytest

from recsys import aws
from recsys.local.sqs_runner import SqsEventSourceRunner, failed_identifiers


class RecordingHandler:
    """Fails the records whose body starts with "fail"; remembers every batch it saw."""

    def __init__(self, raises=False):
        self.batches = []
        self.raises = raises

    def __call__(self, event, context):
        self.batches.append(event["Records"])
        if self.raises:
            raise RuntimeError("boom")
        failed = [r["messageId"] for r in event["Records"] if r["body"].startswith("fail")]
        return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def send(queue_url, *bodies):
    sqs = aws.client("sqs")
    for body in bodies:
        sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=body,
            MessageAttributes={"event_type": {"DataType": "String", "StringValue": "like"}},
        )


def visible_count(queue_url):
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def test_the_handler_gets_the_event_shape_lambda_delivers(local_resources):
    handler = RecordingHandler()
    send(local_resources.feature_queue_url, "hello")
    runner = SqsEventSourceRunner(handler, local_resources.feature_queue_url, batch_size=10)
    assert runner.poll_once(wait_s=0).deleted == 1
    (record,) = handler.batches[0]
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "md5OfMessageAttributes",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["body"] == "hello" and record["md5OfBody"] == hashlib.md5(b"hello").hexdigest()
    assert (record["eventSource"], record["eventSourceARN"]) == ("aws:sqs", local_resources.feature_queue_arn)
    assert record["awsRegion"] == "us-east-1"
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    for name in ("SentTimestamp", "ApproximateFirstReceiveTimestamp"):
        assert abs(int(record["attributes"][name]) / 1000 - time.time()) < 60
    assert record["messageAttributes"] == {
        "event_type": {"stringValue": "like", "stringListValues": [], "binaryListValues": [], "dataType": "String"}
    }


def test_only_messages_not_reported_as_failures_are_deleted(local_resources):
    queue = local_resources.feature_queue_url
    send(queue, "ok-1", "fail-1", "ok-2")
    runner = SqsEventSourceRunner(RecordingHandler(), queue, batch_size=10, retry_delay_s=0)
    run = runner.poll_once(wait_s=0)
    assert (len(run.message_ids), run.deleted, len(run.failed_message_ids)) == (3, 2, 1)
    messages = aws.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    assert [message["Body"] for message in messages] == ["fail-1"]


def test_a_failing_message_reaches_the_dlq_after_max_receive_count(local_resources, stage_config):
    queue, dlq = local_resources.feature_queue_url, local_resources.feature_dlq_url
    send(queue, "fail-poison", "ok")
    handler = RecordingHandler()
    summary = SqsEventSourceRunner(handler, queue, batch_size=10, retry_delay_s=0).run_until_empty()
    assert summary.received == 1 + stage_config.queue.max_receive_count
    poison_records = [record for batch in handler.batches for record in batch if record["body"] == "fail-poison"]
    receive_counts = [int(record["attributes"]["ApproximateReceiveCount"]) for record in poison_records]
    assert receive_counts == list(range(1, stage_config.queue.max_receive_count + 1))
    assert visible_count(queue) == (0, 0)
    dead = aws.client("sqs").receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert [message["Body"] for message in dead] == ["fail-poison"]


def test_a_raising_handler_fails_the_whole_batch(local_resources):
    queue = local_resources.feature_queue_url
    send(queue, "a", "b")
    run = SqsEventSourceRunner(RecordingHandler(raises=True), queue, batch_size=10, retry_delay_s=0).poll_once(0)
    assert run.deleted == 0 and run.handler_error == "RuntimeError: boom"
    assert visible_count(queue) == (2, 0)


def test_without_a_retry_delay_failed_messages_wait_for_the_visibility_timeout(local_resources):
    queue = local_resources.feature_queue_url
    send(queue, "fail-later")
    runner = SqsEventSourceRunner(RecordingHandler(), queue, batch_size=10)
    assert runner.poll_once(wait_s=0).failed_message_ids
    assert runner.poll_once(wait_s=0) is None  # in flight until the queue's visibility timeout
    assert visible_count(queue) == (0, 1)


def test_batches_fill_up_to_the_batch_size_within_the_window(local_resources):
    queue = local_resources.feature_queue_url
    send(queue, *[f"m{i}" for i in range(25)])
    handler = RecordingHandler()
    runner = SqsEventSourceRunner(handler, queue, batch_size=20, batching_window_s=1)
    summary = runner.run_until_empty()
    assert [len(batch.message_ids) for batch in summary.batches] == [20, 5]


def test_a_lone_message_waits_at_most_the_batching_window(local_resources):
    send(local_resources.feature_queue_url, "alone")
    queue = local_resources.feature_queue_url
    runner = SqsEventSourceRunner(RecordingHandler(), queue, batch_size=50, batching_window_s=1)
    started = time.monotonic()
    assert len(runner.poll_once(wait_s=0).message_ids) == 1
    assert 0.9 <= time.monotonic() - started < 2.5


def test_the_threaded_runner_consumes_as_messages_arrive(local_resources):
    queue = local_resources.feature_queue_url
    handler = RecordingHandler()
    with SqsEventSourceRunner(handler, queue, batch_size=10, poll_wait_s=1) as runner:
        send(queue, "x", "y")
        deadline = time.monotonic() + 10
        while runner.summary.deleted < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert sorted(r["body"] for batch in handler.batches for r in batch) == ["x", "y"]


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (None, []),
        ({}, []),
        ({"batchItemFailures": []}, []),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, ["b"]),
        ({"batchItemFailures": [{"itemIdentifier": "zzz"}]}, ["a", "b"]),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, ["a", "b"]),
        ({"batchItemFailures": [{}]}, ["a", "b"]),
    ],
)
def test_batch_item_failures_follow_lambdas_rules(response, expected):
    assert failed_identifiers(response, ["a", "b"]) == expected


def test_from_config_takes_the_writer_settings(local_resources, stage_config):
    runner = SqsEventSourceRunner.from_config(RecordingHandler(), local_resources.feature_queue_url, stage_config)
    writer = stage_config.feature_writer
    assert (runner.batch_size, runner.batching_window_s) == (writer.batch_size, writer.batching_window_s)
    assert runner.function_name == "recsys-dev-feature-writer"
