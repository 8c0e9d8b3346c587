"""FoundationStack: the KMS key, the secure buckets, the on-call alarm topic."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk.assertions import Match
from cdk_synth import Synth


def _bucket(synth: Synth, purpose: str) -> tuple[str, dict[str, Any]]:
    for logical_id, bucket in synth.resources("foundation", "AWS::S3::Bucket").items():
        if bucket["Properties"]["BucketName"]["Fn::Join"][1][0] == f"{synth.config.prefix}-{purpose}-":
            return logical_id, bucket
    raise AssertionError(f"no {purpose} bucket")


def _bucket_policy(synth: Synth, logical_id: str) -> list[dict[str, Any]]:
    (policy,) = [
        policy["Properties"]["PolicyDocument"]["Statement"]
        for policy in synth.resources("foundation", "AWS::S3::BucketPolicy").values()
        if policy["Properties"]["Bucket"] == {"Ref": logical_id}
    ]
    return policy


def _key_statement(synth: Synth, sid: str) -> dict[str, Any]:
    key = synth.one("foundation", "AWS::KMS::Key")["Properties"]
    (statement,) = [s for s in key["KeyPolicy"]["Statement"] if s.get("Sid") == sid]
    return statement


def test_one_customer_managed_key_with_rotation(synth: Synth) -> None:
    template = synth.template("foundation")
    template.resource_count_is("AWS::KMS::Key", 1)
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    template.has_resource_properties("AWS::KMS::Alias", {"AliasName": synth.config.names.data_key_alias})


def test_services_may_use_the_key_only_for_this_account(dev: Synth) -> None:
    logs = _key_statement(dev, "AllowCloudWatchLogsOfThisAccount")
    assert "kms:EncryptionContext:aws:logs:arn" in logs["Condition"]["ArnLike"]
    for sid, service in [
        ("AllowSnsToDeliverToEncryptedQueues", "sns.amazonaws.com"),
        ("AllowCloudWatchAlarmsToPublishToEncryptedTopics", "cloudwatch.amazonaws.com"),
    ]:
        statement = _key_statement(dev, sid)
        assert statement["Principal"] == {"Service": service}
        assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}
        assert "kms:*" not in statement["Action"]


@pytest.mark.parametrize("purpose", ["lake", "artifacts"])
def test_data_buckets_are_kms_encrypted_private_versioned_and_logged(dev: Synth, purpose: str) -> None:
    logical_id, bucket = _bucket(dev, purpose)
    props = bucket["Properties"]
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": dev.key_arn()}
    assert encryption["BucketKeyEnabled"] is True
    assert props["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"], True
    )
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    access_logs_id, _ = _bucket(dev, "access-logs")
    assert props["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": access_logs_id},
        "LogFilePrefix": f"{purpose}/",
    }
    assert props["BucketName"] == {"Fn::Join": ["", [f"recsys-dev-{purpose}-", {"Ref": "AWS::AccountId"}]]}


@pytest.mark.parametrize("purpose", ["lake", "artifacts", "access-logs"])
def test_every_bucket_refuses_requests_without_tls_1_2(dev: Synth, purpose: str) -> None:
    logical_id, _ = _bucket(dev, purpose)
    denies = [s for s in _bucket_policy(dev, logical_id) if s["Effect"] == "Deny"]
    conditions = [s["Condition"] for s in denies if s["Principal"] == {"AWS": "*"} and s["Action"] == "s3:*"]
    assert {"Bool": {"aws:SecureTransport": "false"}} in conditions
    assert {"NumericLessThan": {"s3:TlsVersion": 1.2}} in conditions


def test_access_logs_bucket_uses_sse_s3_expires_logs_and_admits_only_the_platform_buckets(dev: Synth) -> None:
    logical_id, bucket = _bucket(dev, "access-logs")
    props = bucket["Properties"]
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    expiry = {"ExpirationInDays": dev.config.storage.access_log_retention_days, "Id": "expire-access-logs"}
    assert {**expiry, "Status": "Enabled"} in props["LifecycleConfiguration"]["Rules"]
    logging_service = {"Service": "logging.s3.amazonaws.com"}
    deliveries = [s for s in _bucket_policy(dev, logical_id) if s.get("Principal") == logging_service]
    sources = {s["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::GetAtt"][0] for s in deliveries}
    assert sources == {_bucket(dev, "lake")[0], _bucket(dev, "artifacts")[0]}
    assert all(s["Action"] == "s3:PutObject" for s in deliveries)


def test_dev_buckets_are_destroyed_with_the_stack_and_prod_buckets_retained(dev: Synth, prod: Synth) -> None:
    for synth, policy in [(dev, "Delete"), (prod, "Retain")]:
        for bucket in synth.resources("foundation", "AWS::S3::Bucket").values():
            assert bucket["DeletionPolicy"] == policy
        assert synth.one("foundation", "AWS::KMS::Key")["DeletionPolicy"] == policy
    assert prod.resources("foundation", "Custom::S3AutoDeleteObjects") == {}
    assert len(dev.resources("foundation", "Custom::S3AutoDeleteObjects")) == 3


def test_alarm_topic_is_kms_encrypted_and_tls_only(synth: Synth) -> None:
    template = synth.template("foundation")
    template.has_resource_properties(
        "AWS::SNS::Topic", {"TopicName": synth.config.names.alarm_topic, "KmsMasterKeyId": synth.key_arn()}
    )
    template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )
