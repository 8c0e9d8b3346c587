"""Create the platform's AWS resources on the local stand-in (moto or LocalStack).

Names and settings come from the same `StageConfig` that the CDK stacks read,
so the local queues, topic and buckets are the deployed ones in miniature.
Creation is idempotent: running it twice gives the same resources.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from recsys import aws
from recsys.config import LOCAL_ACCOUNT, StageConfig


@dataclass(frozen=True)
class LocalResources:
    kms_key_arn: str
    events_topic_arn: str
    feature_queue_url: str
    feature_queue_arn: str
    feature_dlq_url: str
    feature_dlq_arn: str
    alarm_topic_arn: str
    buckets: dict[str, str]

    @property
    def lake_bucket(self) -> str:
        return self.buckets["lake"]

    @property
    def artifacts_bucket(self) -> str:
        return self.buckets["artifacts"]


def _kms_key(config: StageConfig) -> str:
    kms = aws.client("kms")
    alias = f"alias/{config.prefix}-data"
    try:
        return kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"]
    except kms.exceptions.NotFoundException:
        key = kms.create_key(Description=f"{config.prefix} data at rest")["KeyMetadata"]
        kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
        return key["Arn"]


def enforces_tls() -> bool:
    """Whether buckets get the SSL-only policy. moto enforces it, but the local server speaks plain
    HTTP, so an SSL-only lake would refuse every local call; the deployed buckets always have it
    (stacks/constructs/secure_bucket.py, checked by the infra tests)."""
    endpoint = aws.endpoint_for("s3")
    return endpoint is None or endpoint.startswith("https://")


def _bucket(name: str, kms_key_arn: str, log_bucket: str | None, receives_logs: bool = False) -> None:
    s3 = aws.client("s3")
    try:
        s3.head_bucket(Bucket=name)
    except s3.exceptions.ClientError:
        s3.create_bucket(Bucket=name)
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    s3.put_bucket_encryption(
        Bucket=name,
        ServerSideEncryptionConfiguration={
            "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_key_arn}}]
        },
    )
    s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    statements = []
    if enforces_tls():
        statements.append(
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": {"AWS": "*"},
                "Action": "s3:*",
                "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        )
    if receives_logs:
        statements.append(
            {
                "Sid": "S3ServerAccessLogs",
                "Effect": "Allow",
                "Principal": {"Service": "logging.s3.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": f"arn:aws:s3:::{name}/*",
            }
        )
    if statements:
        s3.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": statements}))
    if log_bucket:
        s3.put_bucket_logging(
            Bucket=name,
            BucketLoggingStatus={"LoggingEnabled": {"TargetBucket": log_bucket, "TargetPrefix": f"{name}/"}},
        )


def _queue(name: str, kms_key_arn: str, attributes: dict[str, str]) -> tuple[str, str]:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName=name, Attributes={"KmsMasterKeyId": kms_key_arn, **attributes})["QueueUrl"]
    # create_queue keeps existing attributes when they differ; set them so a rerun converges.
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"KmsMasterKeyId": kms_key_arn, **attributes})
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def create_resources(config: StageConfig, account: str = LOCAL_ACCOUNT) -> LocalResources:
    names = config.names
    kms_key_arn = _kms_key(config)

    buckets = {purpose: names.bucket(purpose, account) for purpose in names.bucket_purposes}
    _bucket(buckets["access-logs"], kms_key_arn, log_bucket=None, receives_logs=True)
    for purpose in ("lake", "artifacts"):
        _bucket(buckets[purpose], kms_key_arn, log_bucket=buckets["access-logs"])

    day_s = 24 * 3600
    dlq_url, dlq_arn = _queue(
        names.feature_dlq, kms_key_arn, {"MessageRetentionPeriod": str(config.queue.dlq_retention_days * day_s)}
    )
    queue_url, queue_arn = _queue(
        names.feature_queue,
        kms_key_arn,
        {
            "MessageRetentionPeriod": str(config.queue.retention_days * day_s),
            "VisibilityTimeout": str(config.feature_writer.visibility_timeout_s),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(config.queue.max_receive_count)}
            ),
        },
    )

    sns = aws.client("sns")
    topic_arn = sns.create_topic(Name=names.events_topic, Attributes={"KmsMasterKeyId": kms_key_arn})["TopicArn"]
    alarm_topic_arn = sns.create_topic(Name=names.alarm_topic, Attributes={"KmsMasterKeyId": kms_key_arn})["TopicArn"]
    existing = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    if not any(sub["Endpoint"] == queue_arn for sub in existing):
        sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
        )

    # The blender's runtime rules, with the defaults, as the recommend stack creates them.
    from recsys.blender.config import DEFAULT_CONFIG

    ssm = aws.client("ssm")
    try:
        ssm.get_parameter(Name=names.blender_parameter)
    except ssm.exceptions.ParameterNotFound:
        ssm.put_parameter(Name=names.blender_parameter, Value=DEFAULT_CONFIG.to_json(), Type="String")

    return LocalResources(
        kms_key_arn=kms_key_arn,
        events_topic_arn=topic_arn,
        feature_queue_url=queue_url,
        feature_queue_arn=queue_arn,
        feature_dlq_url=dlq_url,
        feature_dlq_arn=dlq_arn,
        alarm_topic_arn=alarm_topic_arn,
        buckets=buckets,
    )
