"""S3 buckets that are safe by default: encrypted, TLS 1.2+ only, private, versioned, logged."""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from recsys.config import StorageConfig


def _common(bucket_name: str, storage: StorageConfig, retain: bool) -> dict[str, Any]:
    return dict(
        bucket_name=bucket_name,
        enforce_ssl=True,
        minimum_tls_version=1.2,
        block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
        object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        versioned=True,
        removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
        # A dev stack can be destroyed with data in it; prod keeps its buckets.
        auto_delete_objects=not retain,
        lifecycle_rules=[
            s3.LifecycleRule(
                id="expire-noncurrent-versions",
                noncurrent_version_expiration=Duration.days(storage.noncurrent_version_days),
                abort_incomplete_multipart_upload_after=Duration.days(7),
            )
        ],
    )


class SecureBucket(Construct):
    """A KMS-encrypted bucket whose server access logs go to the platform's access-logs bucket."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        bucket_name: str,
        key: kms.IKey,
        access_logs: s3.IBucket,
        log_prefix: str,
        storage: StorageConfig,
        retain: bool,
    ) -> None:
        super().__init__(scope, id)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            # S3 Bucket Keys cut KMS requests (and cost) by orders of magnitude for a data lake.
            bucket_key_enabled=True,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=log_prefix,
            **_common(bucket_name, storage, retain),
        )


class AccessLogsBucket(Construct):
    """The target of every bucket's server access logs.

    S3 delivers server access logs only to buckets encrypted with SSE-S3, not SSE-KMS, so this one bucket uses
    S3-managed keys; it is otherwise as locked down as `SecureBucket`, and its logs expire. It does not log its
    own accesses (that would loop); cdk-nag accepts a bucket that is the log target of another.
    """

    def __init__(self, scope: Construct, id: str, *, bucket_name: str, storage: StorageConfig, retain: bool) -> None:
        super().__init__(scope, id)
        props = _common(bucket_name, storage, retain)
        props["lifecycle_rules"] = [
            *props["lifecycle_rules"],
            s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(storage.access_log_retention_days)),
        ]
        self.bucket = s3.Bucket(self, "Bucket", encryption=s3.BucketEncryption.S3_MANAGED, **props)
