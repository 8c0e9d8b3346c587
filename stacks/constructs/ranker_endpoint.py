"""The ranking endpoint: the inference image, one SageMaker Model per variant, an EndpointConfig with the
champion and challenger production variants and data capture, the endpoint, per-variant autoscaling and alarms.

On a fresh account the live model keys are empty: `BootstrapModel` seeds them with the bootstrap model before the
endpoint is created, so the first `cdk deploy --all` needs no hand step (recsys/live_models.py).

The stack owns the endpoint's name and its *initial* EndpointConfig; the daily pipeline deploys new models by
creating new Models and an EndpointConfig with the same variant names and calling UpdateEndpoint, so the
autoscaling targets (`endpoint/<name>/variant/<variant>`) and the alarms' dimensions stay valid across deploys.
"""

from __future__ import annotations

from aws_cdk import Aws, Duration
from aws_cdk import aws_applicationautoscaling as autoscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sagemaker as sagemaker
from aws_cdk import aws_sns as sns
from aws_cdk import custom_resources
from constructs import Construct

from recsys.config import StageConfig, VariantConfig
from recsys.pipeline.run import PIPELINE_PREFIX
from stacks.constructs.bootstrap_model import BootstrapModel
from stacks.constructs.bundling import image_asset, image_context
from stacks.constructs.logs import encrypted_log_group
from stacks.nag import acknowledge

DOCKERFILE = "containers/inference/Dockerfile"
# The image's build context is the repository root; only what the Dockerfile copies is staged (and hashed).
IMAGE_CONTEXT = image_context(
    "recsys",
    "containers/inference/Dockerfile",
    "containers/inference/requirements.txt",
    "containers/inference/server.py",
    "containers/inference/serve",
)
# What SageMaker needs to place a model's or a job's network interfaces in the VPC; none supports resource-level
# scoping.
SAGEMAKER_VPC_ACTIONS = [
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
]
# Where the daily pipeline's training jobs put model.tar.gz (recsys.pipeline.run.RunPlan.model_output).
TRAINED_MODELS = f"{PIPELINE_PREFIX}/*/model/*"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
INVOCATIONS_PER_INSTANCE = "SageMakerVariantInvocationsPerInstance"
CAPTURE_CONTENT_TYPES = ["application/json"]


def scalable_resource_id(endpoint_name: str, variant: str) -> str:
    """Application Auto Scaling's id of a variant: what UpdateEndpoint must keep valid."""
    return f"endpoint/{endpoint_name}/variant/{variant}"


class RankerEndpoint(Construct):
    """The ranker's SageMaker real-time endpoint, named `config.names.endpoint`."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        key: kms.IKey,
        artifacts_bucket: s3.IBucket,
        alarm_topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, id)
        serving = config.serving
        self.endpoint_name = config.names.endpoint
        self.log_group_name = f"/aws/sagemaker/Endpoints/{self.endpoint_name}"

        self.image = image_asset(self, "Image", dockerfile=DOCKERFILE, exclude=IMAGE_CONTEXT,
                                 platform=ecr_assets.Platform.custom(serving.image_platform),
                                 display_name=f"{self.endpoint_name} inference image")
        # SageMaker writes the containers' stdout/stderr here; created in advance to be encrypted and to expire.
        self.log_group = encrypted_log_group(
            self,
            "Logs",
            name=self.log_group_name,
            key=key,
            days=serving.log_retention_days,
            field="serving.log_retention_days",
            retain=config.retain_data,
        )
        self._log_group_arn = f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:{Aws.ACCOUNT_ID}:log-group:{self.log_group_name}"
        self.role = self._execution_role(config, key, artifacts_bucket)
        self._scan_images_on_push(config, key)

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="Ranker endpoint: no ingress; HTTPS out for model downloads (S3 gateway endpoint)",
            allow_all_outbound=False,
        )
        self.security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to S3 and AWS APIs")
        subnet_ids = vpc.select_subnets(subnet_group_name=subnets.subnet_group_name).subnet_ids

        self.models: dict[str, sagemaker.CfnModel] = {}
        production_variants = []
        for name, variant in serving.variants:
            model = sagemaker.CfnModel(
                self,
                f"{name.title()}Model",
                # No ModelName: CloudFormation replaces a model under a new name, never in place.
                execution_role_arn=self.role.role_arn,
                primary_container=sagemaker.CfnModel.ContainerDefinitionProperty(
                    image=self.image.image_uri,
                    model_data_url=artifacts_bucket.s3_url_for_object(serving.live_model_key(name)),
                    mode="SingleModel",
                    environment=self._container_environment(config, variant),
                ),
                vpc_config=sagemaker.CfnModel.VpcConfigProperty(
                    security_group_ids=[self.security_group.security_group_id], subnets=subnet_ids
                ),
                # The ranker calls nothing: its container gets no network at all.
                enable_network_isolation=True,
            )
            model.node.add_dependency(self.role)
            self.models[name] = model
            production_variants.append(
                sagemaker.CfnEndpointConfig.ProductionVariantProperty(
                    variant_name=name,
                    model_name=model.attr_model_name,
                    initial_variant_weight=variant.weight,
                    instance_type=variant.instance_type,
                    initial_instance_count=variant.initial_instance_count,
                )
            )

        self.endpoint_config = sagemaker.CfnEndpointConfig(
            self,
            "EndpointConfig",
            production_variants=production_variants,
            # Encrypts the instances' ML storage volumes.
            kms_key_id=key.key_arn,
            data_capture_config=sagemaker.CfnEndpointConfig.DataCaptureConfigProperty(
                enable_capture=True,
                initial_sampling_percentage=serving.data_capture_percent,
                destination_s3_uri=artifacts_bucket.s3_url_for_object(serving.data_capture_prefix),
                kms_key_id=key.key_arn,
                capture_options=[
                    sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Input"),
                    sagemaker.CfnEndpointConfig.CaptureOptionProperty(capture_mode="Output"),
                ],
                # JSON is captured as text; anything else (application/x-npy) base64-encoded.
                capture_content_type_header=sagemaker.CfnEndpointConfig.CaptureContentTypeHeaderProperty(
                    json_content_types=CAPTURE_CONTENT_TYPES
                ),
            ),
        )
        self.endpoint = sagemaker.CfnEndpoint(
            self,
            "Endpoint",
            endpoint_name=self.endpoint_name,
            endpoint_config_name=self.endpoint_config.attr_endpoint_config_name,
        )
        self.endpoint.node.add_dependency(self.log_group)
        # SageMaker downloads every variant's model data when it creates the endpoint.
        self.bootstrap = BootstrapModel(self, "BootstrapModel", config=config, key=key, bucket=artifacts_bucket,
                                        keys=[serving.live_model_key(name) for name, _ in serving.variants])
        self.endpoint.node.add_dependency(self.bootstrap.seed)

        self.alarms: dict[str, list[cloudwatch.Alarm]] = {}
        for name, variant in serving.variants:
            self._autoscale(name, variant)
            self.alarms[name] = self._alarms(config, name, variant, alarm_topic)

    def _scan_images_on_push(self, config: StageConfig, key: kms.IKey) -> None:
        """Turn on ECR's scan on push for the repository the image is published to.

        DockerImageAsset publishes into the CDK bootstrap's container-assets repository, whose template leaves
        scanning off. The setting is per repository (not the account-wide registry configuration, which may hold
        the account's own Inspector settings) and idempotent; see docs/infrastructure.md for the first image.
        """
        repository = self.image.repository
        call = custom_resources.AwsSdkCall(
            service="ECR",
            action="putImageScanningConfiguration",
            parameters={
                "repositoryName": repository.repository_name,
                "imageScanningConfiguration": {"scanOnPush": True},
            },
            physical_resource_id=custom_resources.PhysicalResourceId.of(repository.repository_name),
        )
        self.scan_on_push = custom_resources.AwsCustomResource(
            self,
            "ScanOnPush",
            on_create=call,
            on_update=call,
            policy=custom_resources.AwsCustomResourcePolicy.from_statements(
                [
                    iam.PolicyStatement(
                        actions=["ecr:PutImageScanningConfiguration"], resources=[repository.repository_arn]
                    )
                ]
            ),
            install_latest_aws_sdk=False,
            log_group=encrypted_log_group(
                self,
                "ScanOnPushLogs",
                key=key,
                days=config.serving.log_retention_days,
                field="serving.log_retention_days",
                retain=config.retain_data,
            ),
        )
        acknowledge(
            self.scan_on_push.grant_principal.node.default_child,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "The role of CDK's AwsCustomResource provider function, which runs only during deployments; the managed "
            "policy lets it write its own logs, and its one other statement is scoped to the asset repository.",
        )

    def _execution_role(self, config: StageConfig, key: kms.IKey, artifacts_bucket: s3.IBucket) -> iam.Role:
        """What the models run as: pull the image, read model artifacts, write captures and logs, use the key."""
        serving = config.serving
        role = iam.Role(
            self,
            "ExecutionRole",
            assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
            description=f"Execution role of the {self.endpoint_name} models (also passed by the daily pipeline)",
        )
        self.image.repository.grant_pull(role)
        # The live artifacts, and the ones the daily pipeline's training jobs write (Models it creates read them).
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:GetObject"],
                resources=[
                    artifacts_bucket.arn_for_objects(f"{serving.model_prefix}/*"),
                    artifacts_bucket.arn_for_objects(TRAINED_MODELS),
                ],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["s3:PutObject"],
                resources=[artifacts_bucket.arn_for_objects(f"{serving.data_capture_prefix}/*")],
            )
        )
        key.grant(role, "kms:Decrypt", "kms:GenerateDataKey")
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[self.log_group.log_group_arn, f"{self._log_group_arn}:log-stream:*"],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}},
            )
        )
        role.add_to_policy(iam.PolicyStatement(actions=SAGEMAKER_VPC_ACTIONS, resources=["*"]))
        policy = role.node.find_child("DefaultPolicy").node.default_child
        bucket_arn = f"arn:<AWS::Partition>:s3:::{config.names.bucket('artifacts', '<AWS::AccountId>')}"
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::{bucket_arn}/{serving.model_prefix}/*]",
            "Models read any artifact under the model prefix of the artifacts bucket: the daily pipeline writes "
            "each model version under its own key there, and every version runs with this role.",
        )
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::{bucket_arn}/{TRAINED_MODELS}]",
            "The daily pipeline's training jobs write each run's model under its own run and job name; the Models "
            "the pipeline creates from them run with this role, which may read only the model/ output of runs.",
        )
        acknowledge(
            policy,
            f"AwsSolutions-IAM5[Resource::{bucket_arn}/{serving.data_capture_prefix}/*]",
            "SageMaker data capture writes objects under keys it generates (endpoint, variant, hour, uuid) below "
            "the capture prefix of the artifacts bucket; nothing else of the bucket is writable.",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:"
            f"{self.log_group_name}:log-stream:*]",
            "SageMaker names one log stream per variant and instance in the endpoint's own log group; the "
            "statement covers the streams of that one group only.",
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken, cloudwatch:PutMetricData (limited to the /aws/sagemaker/ namespaces by "
            "condition) and the EC2 network-interface actions SageMaker needs to place the models in the VPC "
            "support no resource-level permissions; every other statement names its resources.",
        )
        return role

    @staticmethod
    def _container_environment(config: StageConfig, variant: VariantConfig) -> dict[str, str]:
        environment = {"RECSYS_MAX_CANDIDATES": str(config.serving.max_candidates)}
        if variant.ranker:
            environment["RECSYS_RANKER"] = variant.ranker
        return environment

    def _autoscale(self, name: str, variant: VariantConfig) -> None:
        # No RoleARN: Application Auto Scaling uses its SageMaker service-linked role.
        target = autoscaling.CfnScalableTarget(
            self,
            f"{name.title()}ScalableTarget",
            service_namespace="sagemaker",
            scalable_dimension=SCALABLE_DIMENSION,
            resource_id=scalable_resource_id(self.endpoint.attr_endpoint_name, name),
            min_capacity=variant.min_instances,
            max_capacity=variant.max_instances,
        )
        # The CloudFormation schema cfn-lint checks against has no Tags on scalable targets; CDK's app tags would
        # otherwise land here.
        target.add_property_deletion_override("Tags")
        policy = autoscaling.CfnScalingPolicy
        policy(
            self,
            f"{name.title()}ScalingPolicy",
            policy_name=f"{self.endpoint_name}-{name}-invocations-per-instance",
            policy_type="TargetTrackingScaling",
            scaling_target_id=target.ref,
            target_tracking_scaling_policy_configuration=policy.TargetTrackingScalingPolicyConfigurationProperty(
                predefined_metric_specification=policy.PredefinedMetricSpecificationProperty(
                    predefined_metric_type=INVOCATIONS_PER_INSTANCE
                ),
                target_value=variant.target_invocations_per_instance,
                scale_in_cooldown=variant.scale_in_cooldown_s,
                scale_out_cooldown=variant.scale_out_cooldown_s,
            ),
        )

    def _alarms(
        self, config: StageConfig, name: str, variant: VariantConfig, alarm_topic: sns.ITopic
    ) -> list[cloudwatch.Alarm]:
        settings = config.serving.alarms
        period = Duration.seconds(settings.period_s)
        dimensions = {"EndpointName": self.endpoint_name, "VariantName": name}
        where = f"{self.endpoint_name} variant {name}"
        window = dict(evaluation_periods=settings.evaluation_periods, datapoints_to_alarm=settings.datapoints_to_alarm)
        errors = cloudwatch.Metric(
            namespace="AWS/SageMaker",
            metric_name="Invocation5XXErrors",
            dimensions_map=dimensions,
            statistic=cloudwatch.Stats.SUM,
            period=period,
        )
        latency = cloudwatch.Metric(
            namespace="AWS/SageMaker",
            metric_name="ModelLatency",
            dimensions_map=dimensions,
            statistic=cloudwatch.Stats.p(99),
            period=period,
        )
        # SageMaker publishes no instance-count metric, but every in-service instance reports CPUUtilization
        # once a minute: the sample count of one minute is the number of live instances.
        instances = cloudwatch.Metric(
            namespace="/aws/sagemaker/Endpoints",
            metric_name="CPUUtilization",
            dimensions_map=dimensions,
            statistic=cloudwatch.Stats.SAMPLE_COUNT,
            period=Duration.minutes(1),
        )
        specs = [
            (
                "Errors5xx",
                f"{self.endpoint_name}-{name}-5xx",
                errors,
                settings.errors_5xx,
                cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                cloudwatch.TreatMissingData.NOT_BREACHING,
                f"{where} answered >= {settings.errors_5xx} 5xx errors per {settings.period_s} s. The recommend API "
                "falls back to its baseline ranking meanwhile (responses marked degraded). Runbook: read the "
                f"container logs in /aws/sagemaker/Endpoints/{self.endpoint_name}; if a new model caused it, shift "
                f"traffic to the other variant (UpdateEndpointWeightsAndCapacities) or roll the endpoint back to the "
                "previous EndpointConfig (UpdateEndpoint).",
            ),
            (
                "LatencyP99",
                f"{self.endpoint_name}-{name}-p99-latency",
                latency,
                settings.model_latency_p99_ms * 1000,  # ModelLatency is in microseconds
                cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                cloudwatch.TreatMissingData.NOT_BREACHING,
                f"{where}: p99 ModelLatency above {settings.model_latency_p99_ms:g} ms. Calls slower than the "
                "recommend API's endpoint timeout fall back to the baseline ranking. Runbook: check "
                "InvocationsPerInstance and CPUUtilization; if the variant is saturated at max_instances, raise "
                "serving.<variant>.max_instances or the instance type; if a new model is slower, roll it back.",
            ),
            (
                "InstancesBelowMin",
                f"{self.endpoint_name}-{name}-instances-below-min",
                instances,
                variant.min_instances,
                cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                cloudwatch.TreatMissingData.BREACHING,
                f"{where} has fewer than {variant.min_instances} in-service instances reporting. Runbook: "
                "DescribeEndpoint for the endpoint's status and failure reason; check the container logs for a "
                "model that fails to load and the account's SageMaker instance quotas.",
            ),
            (
                "InstancesAtMax",
                f"{self.endpoint_name}-{name}-instances-at-max",
                instances,
                variant.max_instances,
                cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                cloudwatch.TreatMissingData.NOT_BREACHING,
                f"{where} runs at its autoscaling maximum ({variant.max_instances} instances): it cannot absorb more "
                "load. Runbook: raise serving.<variant>.max_instances (and the account quota) and redeploy the "
                "serving stack, or move the variant to a larger instance type.",
            ),
        ]
        if variant.max_instances == variant.min_instances:
            # A fixed-size variant is always "at max": nothing to tell on-call.
            specs = [spec for spec in specs if spec[0] != "InstancesAtMax"]
        alarms = []
        for id_, alarm_name, metric, threshold, comparison, missing, description in specs:
            alarm = cloudwatch.Alarm(
                self,
                f"{name.title()}{id_}",
                alarm_name=alarm_name,
                alarm_description=description,
                metric=metric,
                threshold=threshold,
                comparison_operator=comparison,
                treat_missing_data=missing,
                **window,
            )
            alarm.add_alarm_action(actions.SnsAction(alarm_topic))
            alarm.add_ok_action(actions.SnsAction(alarm_topic))
            alarms.append(alarm)
        return alarms
