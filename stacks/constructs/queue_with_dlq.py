"""An SQS queue with a dead-letter queue, both KMS-encrypted and TLS-only, and an alarm on the DLQ's depth."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from recsys.config import QueueConfig


class QueueWithDlq(Construct):
    """`queue` moves a message to `dlq` after `settings.max_receive_count` failed receives; on-call hears of it.

    The alarm fires as soon as the DLQ holds `settings.dlq_alarm_threshold` messages: a message there is an
    event the platform could not apply, and someone has to look at it before the DLQ retention runs out.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        queue_name: str,
        dlq_name: str,
        key: kms.IKey,
        settings: QueueConfig,
        visibility_timeout_s: int,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, id)
        encryption = dict(encryption=sqs.QueueEncryption.KMS, encryption_master_key=key, enforce_ssl=True)
        self.dlq = sqs.Queue(
            self,
            "Dlq",
            queue_name=dlq_name,
            retention_period=Duration.days(settings.dlq_retention_days),
            **encryption,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            queue_name=queue_name,
            visibility_timeout=Duration.seconds(visibility_timeout_s),
            retention_period=Duration.days(settings.retention_days),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=settings.max_receive_count, queue=self.dlq),
            **encryption,
        )
        self.dlq_alarm = cloudwatch.Alarm(
            self,
            "DlqDepthAlarm",
            alarm_name=f"{dlq_name}-not-empty",
            alarm_description=(
                f"{dlq_name} holds messages that failed {settings.max_receive_count} times: inspect them, fix the "
                f"cause, then redrive them to {queue_name} (SQS console: 'Start DLQ redrive')."
            ),
            metric=self.dlq.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
            ),
            threshold=settings.dlq_alarm_threshold,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.dlq_alarm.add_alarm_action(actions.SnsAction(alarm_topic))
        self.dlq_alarm.add_ok_action(actions.SnsAction(alarm_topic))
