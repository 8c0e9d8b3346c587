"""The local stand-ins: real moto and Valkey processes, resources from the stage config."""

import json

import pytest

from recsys import aws
from recsys.local.resources import create_resources, enforces_tls
from recsys.local.services import LocalPlatform, ServiceError, start_valkey


def test_resources_follow_the_stage_config(local_resources, stage_config):
    sqs = aws.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=local_resources.feature_queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == local_resources.feature_dlq_arn
    assert int(redrive["maxReceiveCount"]) == stage_config.queue.max_receive_count
    assert int(attributes["VisibilityTimeout"]) == stage_config.feature_writer.visibility_timeout_s
    assert attributes["KmsMasterKeyId"] == local_resources.kms_key_arn

    subscriptions = aws.client("sns").list_subscriptions_by_topic(TopicArn=local_resources.events_topic_arn)
    (subscription,) = subscriptions["Subscriptions"]
    assert subscription["Endpoint"] == local_resources.feature_queue_arn
    sub_attributes = aws.client("sns").get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])
    assert sub_attributes["Attributes"]["RawMessageDelivery"] == "true"


def test_buckets_are_encrypted_private_and_reachable_over_the_local_plain_http_endpoint(local_resources):
    s3 = aws.client("s3")
    for bucket in local_resources.buckets.values():
        rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values())
        s3.put_object(Bucket=bucket, Key="probe", Body=b"x")  # an SSL-only policy would refuse this on moto
    logging = s3.get_bucket_logging(Bucket=local_resources.lake_bucket)["LoggingEnabled"]
    assert logging["TargetBucket"] == local_resources.buckets["access-logs"]


def test_ssl_only_policy_applies_to_tls_endpoints(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.example.test")
    assert enforces_tls()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    assert not enforces_tls()
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert enforces_tls()


def test_creating_resources_twice_converges(local_resources, stage_config):
    assert create_resources(stage_config) == local_resources
    queues = aws.client("sqs").list_queues(QueueNamePrefix=stage_config.prefix)["QueueUrls"]
    assert len(queues) == 2


def test_sns_to_sqs_delivers_the_raw_message(local_resources):
    aws.client("sns").publish(TopicArn=local_resources.events_topic_arn, Message='{"hello": "world"}')
    messages = aws.client("sqs").receive_message(QueueUrl=local_resources.feature_queue_url, WaitTimeSeconds=1)
    assert [m["Body"] for m in messages["Messages"]] == ['{"hello": "world"}']


def test_valkey_is_a_real_server(redis_client):
    info = redis_client.info("server")
    assert int(str(info.get("valkey_version", info["redis_version"])).split(".")[0]) >= 7
    assert redis_client.eval("return redis.call('INCRBY', KEYS[1], ARGV[1])", 1, "k", 5) == 5


def test_platform_state_round_trip_and_stop(tmp_path):
    valkey = start_valkey(tmp_path)
    platform = LocalPlatform(moto=valkey, valkey=valkey)  # any live services do for the state file
    state = tmp_path / "platform.json"
    platform.save(state)
    assert LocalPlatform.load(state) is not None
    valkey.stop()
    assert not valkey.alive()
    assert LocalPlatform.load(state) is None


def test_a_missing_server_binary_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_VALKEY_SERVER", str(tmp_path / "no-such-valkey"))
    with pytest.raises((ServiceError, FileNotFoundError), match="no-such-valkey"):
        start_valkey(tmp_path)
