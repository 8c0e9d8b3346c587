"""SageMaker Feature Store groups of the batch features (user, item), from `recsys.batch.feature_store`.

Each group: record identifier and event time from the spec, FeatureDefinitions generated from it, an online store
encrypted with the platform key, and an offline store in the lake bucket (SSE-KMS, the same key) whose Glue table
Feature Store creates in the lake's database. One role, allowed to write only under the offline-store prefix and to
manage only those tables.
"""

from __future__ import annotations

from aws_cdk import Aws, Stack
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from recsys.batch.feature_store import FeatureGroup, feature_groups
from recsys.config import StageConfig
from stacks.constructs.lake_access import acknowledge_prefix_grant, prefix_objects

DATA_CATALOG = "AwsDataCatalog"


def offline_table_name(group: FeatureGroup) -> str:
    """Glue names allow lowercase letters, digits and underscores only."""
    return group.name.replace("-", "_")


class BatchFeatureGroups(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        bucket: s3.IBucket,
        key: kms.IKey,
        database: glue.CfnDatabase,
    ) -> None:
        super().__init__(scope, id)
        database_name = config.names.glue_database
        prefix = config.batch_features.offline_store_prefix.strip("/")
        groups = list(feature_groups(config.names).values())
        stack = Stack.of(self)

        def glue_arn(resource: str, name: str | None = None) -> str:
            return stack.format_arn(service="glue", resource=resource, resource_name=name)

        offline_objects = prefix_objects(bucket, prefix)
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal(
                "sagemaker.amazonaws.com", conditions={"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
            ),
            description=f"{config.prefix}: Feature Store writes the batch feature groups' offline store",
        )
        self.policy = iam.Policy(
            self,
            "Policy",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    sid="OfflineStoreBucket", actions=["s3:GetBucketAcl"], resources=[bucket.bucket_arn]
                ),
                iam.PolicyStatement(
                    sid="OfflineStoreObjects", actions=["s3:PutObject", "s3:PutObjectAcl"], resources=[offline_objects]
                ),
                iam.PolicyStatement(
                    sid="EncryptOfflineStore",
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=[key.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"s3.{Aws.REGION}.amazonaws.com"}},
                ),
                iam.PolicyStatement(
                    sid="OfflineStoreTables",
                    actions=["glue:GetDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable"],
                    resources=[
                        glue_arn("catalog"),
                        glue_arn("database", database_name),
                        *(glue_arn("table", f"{database_name}/{offline_table_name(group)}") for group in groups),
                    ],
                ),
            ],
        )

        acknowledge_prefix_grant(
            self.policy,
            bucket,
            prefix,
            f"Feature Store names the offline store's Parquet objects itself (per group, creation time and hour); "
            f"the grant is limited to the {prefix}/ prefix of the lake bucket.",
        )

        self.groups: dict[str, sagemaker.CfnFeatureGroup] = {}
        for group in groups:
            resource = sagemaker.CfnFeatureGroup(
                self,
                group.entity.title(),
                feature_group_name=group.name,
                description=f"Batch features of each {group.entity} (recsys.batch.spec), daily snapshots",
                record_identifier_feature_name=group.record_identifier,
                event_time_feature_name=group.event_time,
                feature_definitions=[
                    sagemaker.CfnFeatureGroup.FeatureDefinitionProperty(feature_name=name, feature_type=kind)
                    for name, kind in group.features
                ],
                online_store_config={"EnableOnlineStore": True, "SecurityConfig": {"KmsKeyId": key.key_arn}},
                offline_store_config={
                    "S3StorageConfig": {"S3Uri": f"s3://{bucket.bucket_name}/{prefix}", "KmsKeyId": key.key_arn},
                    "DisableGlueTableCreation": False,
                    "DataCatalogConfig": {
                        "Catalog": DATA_CATALOG,
                        "Database": database_name,
                        "TableName": offline_table_name(group),
                    },
                },
                role_arn=self.role.role_arn,
            )
            # Feature Store checks the role when it creates the group, and creates its table in the database.
            resource.node.add_dependency(self.policy)
            resource.add_resource_dependency(database)
            self.groups[group.entity] = resource
