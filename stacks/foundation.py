"""What every other stack stands on: the platform's KMS key, its S3 buckets and the on-call alarm topic."""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct

from recsys.config import StageConfig
from stacks.constructs.secure_bucket import AccessLogsBucket, SecureBucket
from stacks.constructs.topics import AlarmTopic

_ACCOUNT_LOGS = f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:*"


def shared_key(scope: Stack, key: kms.IKey) -> kms.IKey:
    """The platform key as another stack uses it.

    Imported by ARN, so grants go into the grantees' own policies (the key policy delegates to IAM) and never
    back into the key policy, which would make this stack depend on the stacks that depend on it.
    """
    return kms.Key.from_key_arn(scope, "DataKey", key.key_arn)


class FoundationStack(Stack):
    """Long-lived state: deleting this stack in prod keeps the key and the buckets (config.retain_data)."""

    def __init__(self, scope: Construct, id: str, *, config: StageConfig, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        names = config.names
        # One customer-managed key encrypts the platform's data at rest: buckets, queues, topics, logs,
        # secrets, MemoryDB and Lambda environments. Rotated yearly by KMS.
        self.key = kms.Key(
            self,
            "DataKey",
            alias=names.data_key_alias,
            description=f"{config.prefix}: encrypts the platform's data at rest",
            enable_key_rotation=True,
            pending_window=Duration.days(30 if config.retain_data else 7),
            removal_policy=RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY,
        )
        # Services that encrypt with the key on the platform's behalf, each limited to this account.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsOfThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": _ACCOUNT_LOGS}},
            )
        )
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowSnsToDeliverToEncryptedQueues",
                principals=[iam.ServicePrincipal("sns.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )

        access_logs = AccessLogsBucket(
            self,
            "AccessLogs",
            bucket_name=names.bucket("access-logs", Aws.ACCOUNT_ID),
            storage=config.storage,
            retain=config.retain_data,
        )
        self.access_logs_bucket = access_logs.bucket
        self.lake_bucket = self._bucket(config, "lake").bucket
        self.artifacts_bucket = self._bucket(config, "artifacts").bucket

        self.alarm_topic = AlarmTopic(
            self, "AlarmTopic", topic_name=names.alarm_topic, key=self.key, emails=config.alarm_emails
        ).topic

        CfnOutput(self, "DataKeyArn", value=self.key.key_arn)
        CfnOutput(self, "LakeBucketName", value=self.lake_bucket.bucket_name)
        CfnOutput(self, "ArtifactsBucketName", value=self.artifacts_bucket.bucket_name)
        CfnOutput(self, "AlarmTopicArn", value=self.alarm_topic.topic_arn)

    def _bucket(self, config: StageConfig, purpose: str) -> SecureBucket:
        return SecureBucket(
            self,
            purpose.title(),
            bucket_name=config.names.bucket(purpose, Aws.ACCOUNT_ID),
            key=self.key,
            access_logs=self.access_logs_bucket,
            log_prefix=f"{purpose}/",
            storage=config.storage,
            retain=config.retain_data,
        )
