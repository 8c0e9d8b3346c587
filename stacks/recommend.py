"""The recommend API (seed 000's request flow, KION's blender, Personalize's campaigns and filters): a SigV4 REST
API in front of one Lambda in the VPC that reads MemoryDB and the Feature Store, scores on the ranker endpoint,
applies the blender rules from SSM and logs exposures into the event tracker's path."""

from __future__ import annotations

from aws_cdk import Aws, CfnOutput, Duration, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_ssm as ssm
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from recsys.batch.feature_store import STORE_ENTITIES
from recsys.blender.config import DEFAULT_CONFIG
from recsys.config import StageConfig
from recsys.recommend.request import ROUTE_FIELDS
from stacks.constructs.event_api import LambdaRestApi
from stacks.constructs.python_lambda import ContainerImage, PythonLambda, VpcPlacement
from stacks.constructs.state_machine import logged_state_machine
from stacks.foundation import shared_key
from stacks.nag import acknowledge
from stacks.network import NetworkStack
from stacks.realtime import RealtimeStack

# recsys.recommend.api: the recommendation routes, then the named-filter administration routes.
FILTER_ROUTES = ("filters", "filters/list", "filters/describe", "filters/delete")
ROUTES = (*ROUTE_FIELDS, *FILTER_ROUTES)
# numpy, SciPy, pandas and scikit-learn do not fit a zip bundle: both functions run from one image.
RECOMMEND_IMAGE = ContainerImage(
    dockerfile="lambdas/recommend/Dockerfile",
    context=(
        "recsys",
        "requirements.txt",
        "containers/inference/requirements.txt",
        "lambdas/__init__.py",
        "lambdas/recommend",
        "lambdas/batch_recommendations",
    ),
)


class RecommendStack(Stack):
    """Stateless: reads the stores of the realtime, batch and serving stacks; its one state is the rules parameter."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        network: NetworkStack,
        realtime: RealtimeStack,
        key: kms.IKey,
        **kwargs,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        key = shared_key(self, key)
        names = config.names
        serving = config.serving
        settings = config.recommend_api
        artifacts = names.bucket("artifacts", Aws.ACCOUNT_ID)
        # The candidate models come from the champion's live bundle (the rankers stay on the endpoint).
        model_key = serving.live_model_key(serving.variants[0][0])
        store = realtime.feature_store

        self.blender_rules = ssm.StringParameter(
            self,
            "BlenderRules",
            parameter_name=names.blender_parameter,
            description=f"{config.prefix}: blender rules (JSON, recsys.blender.BlenderConfig); hot-reloaded",
            string_value=DEFAULT_CONFIG.to_json(),
            tier=ssm.ParameterTier.STANDARD,
        )

        placement = VpcPlacement(
            vpc=network.vpc, subnets=network.app_subnets, security_group=network.lambda_security_group
        )
        serving_environment = {
            "RECSYS_MODEL_URI": f"s3://{artifacts}/{model_key}",
            "ENDPOINT_NAME": names.endpoint,
            # Sticky A/B assignment uses the endpoint's own variant weights: one source of truth.
            "RECOMMEND_VARIANT_WEIGHTS": ",".join(f"{name}={v.weight:g}" for name, v in serving.variants),
            "RECSYS_FEATURE_STORE": "sagemaker",
            "BLENDER_PARAMETER": names.blender_parameter,
            **store.client_environment,
        }
        self.function = PythonLambda(
            self,
            "Recommend",
            config=config,
            handler="recommend",
            settings=settings.function,
            key=key,
            description="POST /recommendations, /showcase, /ranking, /related, /popular, /trending, /filters/*",
            environment={
                **serving_environment,
                # Exposures go where the event tracker sends events: the events topic and the lake's stream.
                "EVENTS_TOPIC_ARN": realtime.events_topic.topic_arn,
                "FIREHOSE_STREAM_NAME": names.firehose_stream,
            },
            placement=placement,
            image=RECOMMEND_IMAGE,
        )
        # Batch recommendations: the same request flow, no exposures (nothing was shown yet).
        self.batch_function = PythonLambda(
            self,
            "BatchRecommendations",
            config=config,
            handler="batch_recommendations",
            settings=settings.batch_function,
            key=key,
            description=f"Batch recommendations: JSON lines of users -> recommendations, under {settings.batch_prefix}",
            environment=serving_environment,
            placement=placement,
            image=RECOMMEND_IMAGE,
        )
        endpoint_arn = self.format_arn(service="sagemaker", resource="endpoint", resource_name=names.endpoint)
        feature_groups = [
            self.format_arn(service="sagemaker", resource="feature-group", resource_name=names.feature_group(entity))
            for entity in STORE_ENTITIES
        ]
        firehose_arn = self.format_arn(
            service="firehose", resource="deliverystream", resource_name=names.firehose_stream
        )
        reads = (
            (["sagemaker:InvokeEndpoint"], [endpoint_arn]),
            (["sagemaker:GetRecord", "sagemaker:BatchGetRecord"], feature_groups),
            (["ssm:GetParameter"], [self.blender_rules.parameter_arn]),
            (["s3:GetObject"], [f"arn:{Aws.PARTITION}:s3:::{artifacts}/{model_key}"]),
            (["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"], [store.secret.secret_arn]),
        )
        batch_objects = f"arn:{Aws.PARTITION}:s3:::{artifacts}/{settings.batch_prefix}*"
        grants = {
            self.function.role: (
                *reads,
                (["sns:Publish"], [realtime.events_topic.topic_arn]),
                (["firehose:PutRecord", "firehose:PutRecordBatch"], [firehose_arn]),
            ),
            self.batch_function.role: (
                *reads,
                (["s3:GetObject", "s3:PutObject"], [batch_objects]),
                (["s3:ListBucket"], [f"arn:{Aws.PARTITION}:s3:::{artifacts}"]),
            ),
        }
        for role, statements in grants.items():
            for actions, resources in statements:
                role.add_to_policy(iam.PolicyStatement(actions=actions, resources=resources))
            # Decrypt: the model object, the secret, the Feature Store's online records; GenerateDataKey: publishing
            # to the encrypted topic, writing batch output.
            key.grant(role, "kms:Decrypt", "kms:GenerateDataKey")
        self.batch_state_machine = self._batch_state_machine(config, key)
        self._acknowledge(config)

        self.api = LambdaRestApi(
            self,
            "RecommendApi",
            config=config,
            api_name=names.recommend_api,
            description="Recommend API: POST /recommendations, /showcase, /ranking, /related, /popular, /trending, "
            "/filters/* (SigV4)",
            handler=self.function.function,
            routes=ROUTES,
            key=key,
            throttle_rate_per_s=settings.throttle_rate_per_s,
            throttle_burst=settings.throttle_burst,
            log_retention_days=settings.function.log_retention_days,
            log_retention_field="recommend_api.function.log_retention_days",
            # The event tracker's API (realtime stack, deployed first) owns the account's API Gateway log role.
            cloud_watch_role=False,
        ).api

        stage = self.api.deployment_stage.stage_name
        CfnOutput(self, "RecommendUrl", value=self.api.url)
        CfnOutput(self, "RecommendInvokeArn", value=self.api.arn_for_execute_api("POST", "/*", stage))
        # Filter administration is for editors' tools: grant it separately from the recommendation routes.
        CfnOutput(self, "FiltersInvokeArn", value=self.api.arn_for_execute_api("POST", "/filters*", stage))
        CfnOutput(self, "BlenderParameterName", value=self.blender_rules.parameter_name)
        CfnOutput(self, "BatchRecommendationsStateMachineArn", value=self.batch_state_machine.state_machine_arn)

    def _acknowledge(self, config: StageConfig) -> None:
        artifacts = config.names.bucket("artifacts", "<AWS::AccountId>")
        acknowledge(
            self.batch_function.role.node.find_child("DefaultPolicy").node.default_child,
            f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{artifacts}/{config.recommend_api.batch_prefix}*]",
            "A batch job reads the users file and writes the recommendations file its caller names; both must be "
            "under the batch prefix of the artifacts bucket, and nowhere else.",
        )
        machine_policy = self.batch_state_machine.role.node.find_child("DefaultPolicy").node.default_child
        acknowledge(
            machine_policy,
            "AwsSolutions-IAM5[Resource::*]",
            "X-Ray's PutTraceSegments, PutTelemetryRecords and sampling reads (tracing of the state machine) support "
            "no resource-level permissions.",
        )
        function_id = self.get_logical_id(self.batch_function.function.node.default_child)
        acknowledge(
            machine_policy,
            f"AwsSolutions-IAM5[Resource::<{function_id}.Arn>:*]",
            "CDK grants lambda:InvokeFunction on the function and its versions/aliases (`:*`); only this one function.",
        )

    def _batch_state_machine(self, config: StageConfig, key: kms.IKey) -> sfn.StateMachine:
        """Start with {"input": "s3://<artifacts>/batch-recommendations/users.jsonl", "output": "s3://...", ...}."""
        invoke = tasks.LambdaInvoke(
            self,
            "RecommendForUsers",
            lambda_function=self.batch_function.function,
            payload_response_only=True,
            retry_on_service_exceptions=True,
        )
        return logged_state_machine(
            self,
            "BatchRecommendationsStateMachine",
            name=f"{config.prefix}-batch-recommendations",
            definition=invoke,
            timeout=Duration.minutes(30),
            key=key,
            logs_id="BatchRecommendationsLogs",
            log_days=config.recommend_api.batch_function.log_retention_days,
            log_field="recommend_api.batch_function.log_retention_days",
            retain=config.retain_data,
        )
