"""The real-time path (Amp, seed 001): event tracker API -> SNS -> SQS -> feature writer Lambda -> MemoryDB."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from recsys.config import StageConfig
from stacks.constructs.event_api import LambdaRestApi
from stacks.constructs.memorydb import MemoryDbCluster
from stacks.constructs.python_lambda import PythonLambda, VpcPlacement
from stacks.constructs.queue_with_dlq import QueueWithDlq
from stacks.constructs.topics import EncryptedTopic
from stacks.foundation import shared_key
from stacks.network import NetworkStack

TRACKER_ROUTES = ("events", "items", "users")


class RealtimeStack(Stack):
    """Stateless compute around two stores: the events topic/queue and the MemoryDB feature store."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        network: NetworkStack,
        key: kms.IKey,
        alarm_topic: sns.ITopic,
        **kwargs,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        key = shared_key(self, key)
        names = config.names
        placement = VpcPlacement(
            vpc=network.vpc, subnets=network.app_subnets, security_group=network.lambda_security_group
        )

        self.feature_store = MemoryDbCluster(
            self,
            "FeatureStore",
            config=config,
            vpc=network.vpc,
            subnets=network.data_subnets,
            key=key,
            clients=network.lambda_security_group,
        )
        store_environment = self.feature_store.client_environment

        self.events_topic = EncryptedTopic(self, "EventsTopic", topic_name=names.events_topic, key=key).topic
        self.feature_queue = QueueWithDlq(
            self,
            "FeatureQueue",
            queue_name=names.feature_queue,
            dlq_name=names.feature_dlq,
            key=key,
            settings=config.queue,
            visibility_timeout_s=config.feature_writer.visibility_timeout_s,
            alarm_topic=alarm_topic,
        )
        # Raw delivery: the queue message body is the event JSON itself, not an SNS envelope around it.
        self.events_topic.add_subscription(
            subscriptions.SqsSubscription(self.feature_queue.queue, raw_message_delivery=True)
        )

        writer = config.feature_writer
        self.feature_writer = PythonLambda(
            self,
            "FeatureWriter",
            config=config,
            handler="feature_writer",
            settings=writer.function,
            key=key,
            description="Applies events from the feature queue to the point-in-time features in MemoryDB",
            environment=store_environment,
            placement=placement,
        )
        self.feature_writer.function.add_event_source(
            event_sources.SqsEventSource(
                self.feature_queue.queue,
                batch_size=writer.batch_size,
                max_batching_window=Duration.seconds(writer.batching_window_s) if writer.batching_window_s else None,
                # Only the failed messages of a batch return to the queue; the rest are deleted.
                report_batch_item_failures=True,
            )
        )
        self.feature_store.secret.grant_read(self.feature_writer.role)

        tracker = config.event_tracker
        self.event_tracker = PythonLambda(
            self,
            "EventTracker",
            config=config,
            handler="event_tracker",
            settings=tracker.function,
            key=key,
            description="POST /events, /items, /users: validates, publishes events, upserts item and user metadata",
            environment={
                "EVENTS_TOPIC_ARN": self.events_topic.topic_arn,
                # The lake's delivery stream (batch stack); named, not referenced, so the stacks stay acyclic.
                "FIREHOSE_STREAM_NAME": names.firehose_stream,
                **store_environment,
            },
            placement=placement,
        )
        # Not topic.grant_publish, which adds kms:GenerateDataKey*: an encrypted topic needs exactly these.
        self.event_tracker.role.add_to_policy(
            iam.PolicyStatement(actions=["sns:Publish"], resources=[self.events_topic.topic_arn])
        )
        key.grant(self.event_tracker.role, "kms:GenerateDataKey", "kms:Decrypt")
        firehose_arn = self.format_arn(
            service="firehose", resource="deliverystream", resource_name=names.firehose_stream
        )
        self.event_tracker.role.add_to_policy(
            iam.PolicyStatement(actions=["firehose:PutRecord", "firehose:PutRecordBatch"], resources=[firehose_arn])
        )
        self.feature_store.secret.grant_read(self.event_tracker.role)

        self.api = LambdaRestApi(
            self,
            "EventTrackerApi",
            config=config,
            api_name=names.event_tracker_api,
            description="Event tracker: POST /events, /items, /users (SigV4)",
            handler=self.event_tracker.function,
            routes=TRACKER_ROUTES,
            key=key,
            throttle_rate_per_s=tracker.throttle_rate_per_s,
            throttle_burst=tracker.throttle_burst,
            log_retention_days=tracker.function.log_retention_days,
            log_retention_field="event_tracker.function.log_retention_days",
        ).api

        CfnOutput(self, "EventTrackerUrl", value=self.api.url)
        # What a caller's IAM policy grants execute-api:Invoke on.
        invoke_arn = self.api.arn_for_execute_api("POST", "/*", self.api.deployment_stage.stage_name)
        CfnOutput(self, "EventTrackerInvokeArn", value=invoke_arn)
        CfnOutput(self, "EventsTopicArn", value=self.events_topic.topic_arn)
        CfnOutput(self, "FeatureQueueUrl", value=self.feature_queue.queue.queue_url)
        CfnOutput(self, "FeatureStoreEndpoint", value=self.feature_store.endpoint)
        CfnOutput(self, "FeatureStoreSecretArn", value=self.feature_store.secret.secret_arn)
