"""The one way the platform defines a Python Lambda function.

Every function gets: the locally built bundle of `recsys/` + its handler folder + pinned dependencies
(`stacks.constructs.bundling`) — or, for handlers whose dependencies (numpy, SciPy, pandas, scikit-learn) do not
fit a 250 MB zip, a container image built by `cdk deploy` from `image=` Dockerfile (synth only stages its context,
so no Docker is needed here) — Python 3.12 on ARM64 (Graviton: cheaper per GB-second), Powertools settings,
X-Ray active tracing, its own role with only what it is granted, its own KMS-encrypted log group with the
configured retention, KMS-encrypted environment variables, optional reserved concurrency, and VPC placement
with a security group when asked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aws_cdk import Duration, IgnoreMode
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from recsys.config import LambdaConfig, StageConfig
from stacks.constructs.bundling import ARCHITECTURE, REPO_ROOT, RUNTIME, image_context, python_code
from stacks.constructs.logs import encrypted_log_group
from stacks.nag import acknowledge

# What AWSLambdaVPCAccessExecutionRole grants, inline: Lambda manages the function's network interfaces.
_VPC_ACTIONS = [
    "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeSubnets",
    "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses",
    "ec2:UnassignPrivateIpAddresses",
]


@dataclass(frozen=True)
class ContainerImage:
    """A Lambda container image: its Dockerfile and the only repository paths its build context stages."""

    dockerfile: str
    context: Sequence[str]

    def code(self, handler: str, entry: str) -> lambda_.DockerImageCode:
        return lambda_.DockerImageCode.from_image_asset(
            str(REPO_ROOT),
            file=self.dockerfile,
            cmd=[f"lambdas.{handler}.handler.{entry}"],
            exclude=image_context(*self.context),
            ignore_mode=IgnoreMode.DOCKER,
            platform=ecr_assets.Platform.LINUX_ARM64,
        )


@dataclass(frozen=True)
class VpcPlacement:
    vpc: ec2.IVpc
    subnets: ec2.SubnetSelection
    security_group: ec2.ISecurityGroup


class PythonLambda(Construct):
    """A Lambda function running `lambdas/<handler>/handler.py:handler`."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        handler: str,
        settings: LambdaConfig,
        key: kms.IKey,
        description: str,
        environment: Mapping[str, str] | None = None,
        placement: VpcPlacement | None = None,
        name: str | None = None,
        entry: str = "handler",
        image: ContainerImage | None = None,
    ) -> None:
        """`name`: the function's purpose when several functions share one handler folder (default: `handler`);
        `entry`: the function of `handler.py` Lambda calls; `image`: package as a container image instead of a zip."""
        super().__init__(scope, id)
        function_name = config.names.function(name or handler)
        self.log_group = encrypted_log_group(
            self,
            "Logs",
            name=f"/aws/lambda/{function_name}",
            key=key,
            days=settings.log_retention_days,
            field=f"{handler}.log_retention_days",
            retain=config.retain_data,
        )
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of {function_name}",
        )
        self.log_group.grant_write(self.role)
        if placement is not None:
            self.role.add_to_policy(iam.PolicyStatement(actions=_VPC_ACTIONS, resources=["*"]))
        package: dict = (
            dict(code=image.code(handler, entry))
            if image
            else dict(runtime=RUNTIME, handler=f"lambdas.{handler}.handler.{entry}", code=python_code(handler))
        )
        function_class = lambda_.DockerImageFunction if image else lambda_.Function
        self.function = function_class(
            self,
            "Function",
            function_name=function_name,
            description=description,
            architecture=ARCHITECTURE,
            **package,
            memory_size=settings.memory_mb,
            timeout=Duration.seconds(settings.timeout_s),
            reserved_concurrent_executions=settings.reserved_concurrency,
            role=self.role,
            log_group=self.log_group,
            tracing=lambda_.Tracing.ACTIVE,
            environment_encryption=key,
            environment={
                "RECSYS_STAGE": config.stage,
                "POWERTOOLS_SERVICE_NAME": function_name,
                "POWERTOOLS_METRICS_NAMESPACE": config.names.metrics_namespace,
                "POWERTOOLS_LOG_LEVEL": "INFO",
                **(environment or {}),
            },
            vpc=placement.vpc if placement else None,
            vpc_subnets=placement.subnets if placement else None,
            security_groups=[placement.security_group] if placement else None,
        )
        default_policy = self.role.node.find_child("DefaultPolicy").node.default_child
        unscoped = "X-Ray's PutTraceSegments and PutTelemetryRecords"
        if placement is not None:
            unscoped += " and the EC2 network-interface actions Lambda needs to place the function in the VPC"
        acknowledge(
            default_policy,
            "AwsSolutions-IAM5[Resource::*]",
            f"{unscoped} do not support resource-level permissions; every other statement names its resources.",
        )
        if not image:  # an image brings its own runtime
            acknowledge(
                self.function.node.default_child,
                "AwsSolutions-L1",
                "Pinned to python3.12, the runtime the bundled wheels are resolved for (stacks/constructs/bundling.py) "
                "and the closest to the CPython 3.11 the test suite runs on; moving to a newer runtime is a "
                "deliberate upgrade of RUNTIME there, which re-resolves the wheels.",
            )
