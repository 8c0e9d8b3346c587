"""The tracker's sinks against moto: SNS publish_batch to the raw-delivery queue, Firehose to the lake."""

import json

from recsys import aws
from recsys.events import Event
from recsys.tracker.sinks import FirehoseSender, NullSender, SnsEventPublisher, archive_for
from tests.delivery import receive

NOW = 1_714_564_800.0


def events(count, event_type="like"):
    return [
        Event(event_id=f"e{i}", user_id="u", event_type=event_type, timestamp=NOW + i, item_id=f"i{i}")
        for i in range(count)
    ]


def test_sns_publishes_every_event_in_chunks_with_filterable_attributes(local_resources):
    sent = events(23)
    assert SnsEventPublisher(local_resources.events_topic_arn).deliver(sent) == {}
    messages = receive(local_resources.feature_queue_url, len(sent), settle_s=0.5, attributes=True)
    assert sorted((Event.from_json(m["Body"]) for m in messages), key=lambda e: e.event_id) == sorted(
        sent, key=lambda e: e.event_id
    )
    attributes = messages[0]["MessageAttributes"]
    assert attributes["event_type"] == {"StringValue": "like", "DataType": "String"}
    assert attributes["has_item"]["StringValue"] == "true"


def test_sns_failures_are_reported_per_event_not_raised(local_resources):
    missing_topic = local_resources.events_topic_arn + "-gone"
    failed = SnsEventPublisher(missing_topic).deliver(events(12))
    assert set(failed) == {f"e{i}" for i in range(12)}
    assert all(reason.startswith("sns: NotFound") for reason in failed.values())


def test_a_subscription_filter_on_event_type_works(local_resources):
    sqs, sns = aws.client("sqs"), aws.client("sns")
    likes_url = sqs.create_queue(QueueName="likes-only")["QueueUrl"]
    likes_arn = sqs.get_queue_attributes(QueueUrl=likes_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(
        TopicArn=local_resources.events_topic_arn,
        Protocol="sqs",
        Endpoint=likes_arn,
        Attributes={"RawMessageDelivery": "true", "FilterPolicy": json.dumps({"event_type": ["like"]})},
    )
    publisher = SnsEventPublisher(local_resources.events_topic_arn)
    publisher.deliver(events(2, "like") + [Event("v", "u", "view", NOW)])
    assert sorted(Event.from_json(m["Body"]).event_type for m in receive(likes_url, 2, settle_s=0.5)) == ["like", "like"]


def test_firehose_lands_newline_delimited_json_in_s3(local_resources):
    # A plain bucket: the lake's bucket policy is not what this tests.
    stream, bucket = "recsys-dev-events-test", "firehose-destination"
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=bucket)
    aws.client("firehose").create_delivery_stream(
        DeliveryStreamName=stream,
        ExtendedS3DestinationConfiguration={
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "Prefix": "events/",
        },
    )
    sent = events(3)
    assert archive_for(stream).deliver(sent) == {}
    keys = [obj["Key"] for obj in s3.list_objects_v2(Bucket=bucket, Prefix="events/")["Contents"]]
    lines = b"".join(s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys)
    assert [Event.from_json(line) for line in lines.splitlines()] == sent


def test_firehose_failures_are_reported_per_event(local_resources):
    failed = FirehoseSender("no-such-stream").deliver(events(2))
    assert set(failed) == {"e0", "e1"} and all(reason.startswith("firehose: ") for reason in failed.values())


def test_no_stream_name_means_no_firehose():
    assert isinstance(archive_for(""), NullSender) and isinstance(archive_for(None), NullSender)
    assert NullSender().deliver(events(2)) == {}
