"""The batch path's data (Amp, seed 001; Meesho's training data, seed 000): the lake's Firehose delivery stream,
its Glue catalog, and the Feature Store groups of the batch features.

Everything here writes into the foundation's lake bucket with the foundation's key. The bucket is taken by its
name (`names.bucket("lake", account)`), so IAM statements name it plainly. The event tracker (realtime stack) sends
to the stream by name; this stack is deployed before the realtime stack (platform.py orders them).
"""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from recsys.config import StageConfig
from stacks.constructs.feature_group import BatchFeatureGroups
from stacks.constructs.firehose_to_lake import FirehoseToLake
from stacks.constructs.glue_events_table import LakeCatalog
from stacks.foundation import shared_key


class BatchStack(Stack):
    def __init__(
        self, scope: Construct, id: str, *, config: StageConfig, key: kms.IKey, **kwargs
    ) -> None:
        super().__init__(scope, id, **kwargs)
        key = shared_key(self, key)
        lake_bucket = s3.Bucket.from_bucket_name(self, "LakeBucket", config.names.bucket("lake", Aws.ACCOUNT_ID))

        self.firehose = FirehoseToLake(self, "EventsToLake", config=config, bucket=lake_bucket, key=key)
        self.catalog = LakeCatalog(self, "LakeCatalog", config=config, bucket=lake_bucket)
        self.feature_groups = BatchFeatureGroups(
            self,
            "FeatureGroups",
            config=config,
            bucket=lake_bucket,
            key=key,
            database=self.catalog.database,
        )

        CfnOutput(self, "EventsStreamName", value=config.names.firehose_stream)
        CfnOutput(self, "GlueDatabase", value=self.catalog.database_name)
        for entity, group in self.feature_groups.groups.items():
            CfnOutput(self, f"{entity.title()}FeatureGroup", value=group.feature_group_name)
