"""The serving path (Amp, Meesho): the custom inference image on an autoscaling SageMaker endpoint with champion
and challenger production variants for A/B, data capture, and per-variant alarms."""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from constructs import Construct

from recsys.config import StageConfig
from stacks.constructs.ranker_endpoint import RankerEndpoint
from stacks.foundation import shared_key
from stacks.network import NetworkStack


class ServingStack(Stack):
    """Stateless: the endpoint's data (captures) and models live in the foundation's artifacts bucket."""

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
        self.ranker = RankerEndpoint(
            self,
            "Ranker",
            config=config,
            vpc=network.vpc,
            subnets=network.app_subnets,
            key=shared_key(self, key),
            # By name, not by the foundation's export: IAM resources and nag findings read as the bucket's name.
            artifacts_bucket=s3.Bucket.from_bucket_name(
                self, "ArtifactsBucket", config.names.bucket("artifacts", Aws.ACCOUNT_ID)
            ),
            alarm_topic=alarm_topic,
        )
        CfnOutput(self, "EndpointName", value=self.ranker.endpoint.attr_endpoint_name)
        # What the daily pipeline needs to create new Models for UpdateEndpoint.
        CfnOutput(self, "InferenceImageUri", value=self.ranker.image.image_uri)
        CfnOutput(self, "ModelExecutionRoleArn", value=self.ranker.role.role_arn)
        CfnOutput(self, "ModelSecurityGroupId", value=self.ranker.security_group.security_group_id)
