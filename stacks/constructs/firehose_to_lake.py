"""The events delivery stream: DirectPut -> transform Lambda -> the lake bucket, partitioned by event date.

- SSE with the platform key on the stream, SSE-KMS on every object it writes, GZIP JSON lines (`.jsonl.gz`);
- dynamic partitioning on the `event_date` key the transform Lambda returns: `events/event_date=YYYY-MM-DD/`;
- records the transform fails (or cannot process) go to `events-errors/processing-failed/<arrival date>/`;
- buffering hints and processor settings from `FirehoseConfig`; delivery errors logged to an encrypted log group;
- its role may write only under those two prefixes, use the key only through S3, and invoke only the transform.

The prefixes are Firehose expressions from recsys.lake.delivery, which the local stand-in evaluates the same way.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Aws, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kinesisfirehose as firehose
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from constructs import Construct

from recsys.config import StageConfig
from recsys.events import EVENTS_ERROR_PREFIX, EVENTS_PREFIX
from recsys.lake.delivery import ERRORS_S3_PREFIX, EVENTS_S3_PREFIX, FILE_EXTENSION
from stacks.constructs.lake_access import acknowledge_prefix_grant, prefix_objects
from stacks.constructs.logs import encrypted_log_group
from stacks.constructs.python_lambda import PythonLambda

DELIVERY_LOG_STREAM = "DestinationDelivery"
Cfn = firehose.CfnDeliveryStream


def _hint(value: float) -> str:
    """Processor parameters are strings: 1.0 -> "1", 0.5 -> "0.5"."""
    return f"{value:g}"


class FirehoseToLake(Construct):
    def __init__(
        self, scope: Construct, id: str, *, config: StageConfig, bucket: s3.IBucket, key: kms.IKey
    ) -> None:
        super().__init__(scope, id)
        settings = config.firehose
        stream_name = config.names.firehose_stream
        log_group_name = f"/aws/kinesisfirehose/{stream_name}"

        self.transform = PythonLambda(
            self,
            "Transform",
            config=config,
            handler="firehose_transform",
            settings=settings.transform,
            key=key,
            description="Firehose transform: validates and normalizes events, returns the event_date partition key",
        )

        self.log_group = encrypted_log_group(
            self,
            "Logs",
            name=log_group_name,
            key=key,
            days=settings.log_retention_days,
            field="firehose.log_retention_days",
            retain=config.retain_data,
        )
        logs.LogStream(self, "DeliveryLogs", log_group=self.log_group, log_stream_name=DELIVERY_LOG_STREAM)
        log_stream_arn = Stack.of(self).format_arn(
            service="logs",
            resource="log-group",
            resource_name=f"{log_group_name}:log-stream:{DELIVERY_LOG_STREAM}",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "firehose.amazonaws.com", conditions={"StringEquals": {"sts:ExternalId": Aws.ACCOUNT_ID}}
            ),
            description=f"Delivery role of {stream_name}: writes the lake's events and errors prefixes",
        )
        object_prefixes = [prefix_objects(bucket, prefix) for prefix in (EVENTS_PREFIX, EVENTS_ERROR_PREFIX)]
        policy = iam.Policy(
            self,
            "Policy",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="LakeBucket",
                    actions=["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                    resources=[bucket.bucket_arn],
                ),
                iam.PolicyStatement(
                    sid="LakeObjects",
                    actions=["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"],
                    resources=object_prefixes,
                ),
                iam.PolicyStatement(
                    sid="EncryptLakeObjects",
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[key.key_arn],
                    conditions={
                        "StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"},
                        # With S3 Bucket Keys the context is the bucket's ARN, else the object's.
                        "StringLike": {"kms:EncryptionContext:aws:s3:arn": [bucket.bucket_arn, *object_prefixes]},
                    },
                ),
                iam.PolicyStatement(
                    sid="InvokeTransform",
                    actions=["lambda:InvokeFunction", "lambda:GetFunctionConfiguration"],
                    resources=[self.transform.function.function_arn],
                ),
                iam.PolicyStatement(sid="DeliveryErrorLogs", actions=["logs:PutLogEvents"], resources=[log_stream_arn]),
            ],
        )
        for prefix in (EVENTS_PREFIX, EVENTS_ERROR_PREFIX):
            acknowledge_prefix_grant(
                policy,
                bucket,
                prefix,
                f"Firehose names each object at delivery time (one per event-date partition and buffer); the grant "
                f"is limited to the {prefix}/ prefix of the lake bucket.",
            )

        processor_parameters = {
            "LambdaArn": self.transform.function.function_arn,
            "BufferSizeInMBs": _hint(settings.processor_buffer_size_mb),
            "BufferIntervalInSeconds": str(settings.processor_buffer_interval_s),
            "NumberOfRetries": str(settings.processor_retries),
        }
        self.stream = Cfn(
            self,
            "Stream",
            delivery_stream_name=stream_name,
            delivery_stream_type="DirectPut",
            delivery_stream_encryption_configuration_input=Cfn.DeliveryStreamEncryptionConfigurationInputProperty(
                key_type="CUSTOMER_MANAGED_CMK", key_arn=key.key_arn
            ),
            extended_s3_destination_configuration=Cfn.ExtendedS3DestinationConfigurationProperty(
                bucket_arn=bucket.bucket_arn,
                role_arn=self.role.role_arn,
                prefix=EVENTS_S3_PREFIX,
                error_output_prefix=ERRORS_S3_PREFIX,
                file_extension=FILE_EXTENSION,
                compression_format="GZIP",
                buffering_hints=Cfn.BufferingHintsProperty(
                    size_in_m_bs=settings.buffer_size_mb, interval_in_seconds=settings.buffer_interval_s
                ),
                encryption_configuration=Cfn.EncryptionConfigurationProperty(
                    kms_encryption_config=Cfn.KMSEncryptionConfigProperty(
                        awskms_key_arn=key.key_arn
                    )
                ),
                dynamic_partitioning_configuration=Cfn.DynamicPartitioningConfigurationProperty(
                    enabled=True,
                    retry_options=Cfn.RetryOptionsProperty(
                        duration_in_seconds=settings.s3_retry_s
                    ),
                ),
                processing_configuration=Cfn.ProcessingConfigurationProperty(
                    enabled=True,
                    processors=[
                        Cfn.ProcessorProperty(
                            type="Lambda",
                            parameters=[
                                Cfn.ProcessorParameterProperty(
                                    parameter_name=name, parameter_value=value
                                )
                                for name, value in processor_parameters.items()
                            ],
                        )
                    ],
                ),
                cloud_watch_logging_options=Cfn.CloudWatchLoggingOptionsProperty(
                    enabled=True, log_group_name=self.log_group.log_group_name, log_stream_name=DELIVERY_LOG_STREAM
                ),
                s3_backup_mode="Disabled",
            ),
        )
        # Firehose checks its role's permissions when the stream is created.
        self.stream.node.add_dependency(policy)
