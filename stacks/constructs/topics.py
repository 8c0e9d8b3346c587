"""KMS-encrypted SNS topics that refuse publishers not using TLS."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


class EncryptedTopic(Construct):
    """An SNS topic encrypted with `key`; its policy denies every request that is not over TLS."""

    def __init__(self, scope: Construct, id: str, *, topic_name: str, key: kms.IKey) -> None:
        super().__init__(scope, id)
        self.topic = sns.Topic(self, "Topic", topic_name=topic_name, master_key=key, enforce_ssl=True)


class AlarmTopic(EncryptedTopic):
    """The on-call topic every CloudWatch alarm notifies.

    CloudWatch publishes to an encrypted topic only if the key lets the CloudWatch service use it, so the grant
    (scoped to alarms of this account) is added to the key's policy here.
    """

    def __init__(
        self, scope: Construct, id: str, *, topic_name: str, key: kms.IKey, emails: Sequence[str] = ()
    ) -> None:
        super().__init__(scope, id, topic_name=topic_name, key=key)
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsToPublishToEncryptedTopics",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}},
            )
        )
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
