"""The VPC the platform runs in: private subnets, VPC endpoints for the AWS services it calls, flow logs."""

from __future__ import annotations

from aws_cdk import Fn, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from constructs import Construct

from recsys.config import StageConfig
from stacks.constructs.logs import encrypted_log_group
from stacks.foundation import shared_key

# Subnet groups: NAT gateways live in `public`; Lambdas and SageMaker in `app` (egress through NAT for
# services without an endpoint); MemoryDB in `data`, which has no route out of the VPC at all.
PUBLIC, APP, DATA = "public", "app", "data"

INTERFACE_ENDPOINTS = {
    "Sqs": ec2.InterfaceVpcEndpointAwsService.SQS,
    "Sns": ec2.InterfaceVpcEndpointAwsService.SNS,
    "SageMakerApi": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_API,
    "SageMakerRuntime": ec2.InterfaceVpcEndpointAwsService.SAGEMAKER_RUNTIME,
    "SecretsManager": ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
    "CloudWatchMonitoring": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
    "CloudWatchLogs": ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
    "Kms": ec2.InterfaceVpcEndpointAwsService.KMS,
    "Sts": ec2.InterfaceVpcEndpointAwsService.STS,
    "Firehose": ec2.InterfaceVpcEndpointAwsService.KINESIS_FIREHOSE,
}


class NetworkStack(Stack):
    """Changes rarely and outlives everything in it."""

    def __init__(self, scope: Construct, id: str, *, config: StageConfig, key: kms.IKey, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        key = shared_key(self, key)
        self._max_azs = config.network.max_azs
        network = config.network
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr(network.cidr),
            max_azs=network.max_azs,
            nat_gateways=network.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name=PUBLIC, subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name=APP, subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20),
                ec2.SubnetConfiguration(name=DATA, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24),
            ],
            # Strip the default security group of its rules: nothing may use it by accident.
            restrict_default_security_group=True,
        )
        self.app_subnets = ec2.SubnetSelection(subnet_group_name=APP)
        self.data_subnets = ec2.SubnetSelection(subnet_group_name=DATA)

        flow_logs = encrypted_log_group(
            self,
            "FlowLogs",
            key=key,
            days=network.flow_log_retention_days,
            field="network.flow_log_retention_days",
            retain=config.retain_data,
        )
        self.vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )

        self.vpc.add_gateway_endpoint(
            "S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[self.app_subnets, self.data_subnets]
        )
        # One security group for every interface endpoint: HTTPS from inside the VPC only.
        endpoint_sg = ec2.SecurityGroup(
            self,
            "EndpointSecurityGroup",
            vpc=self.vpc,
            description="Interface VPC endpoints: HTTPS from inside the VPC",
            allow_all_outbound=False,
        )
        endpoint_sg.add_ingress_rule(ec2.Peer.ipv4(network.cidr), ec2.Port.tcp(443), "HTTPS from the VPC")
        for name, service in INTERFACE_ENDPOINTS.items():
            self.vpc.add_interface_endpoint(
                name,
                service=service,
                subnets=self.app_subnets,
                security_groups=[endpoint_sg],
                private_dns_enabled=True,
                open=False,
            )

        # The platform's Lambdas share one security group; data stores admit exactly this group.
        self.lambda_security_group = ec2.SecurityGroup(
            self,
            "LambdaSecurityGroup",
            vpc=self.vpc,
            description="Platform Lambdas: HTTPS to AWS APIs, Redis protocol to MemoryDB inside the VPC",
            allow_all_outbound=False,
        )
        self.lambda_security_group.add_egress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(443), "HTTPS to AWS APIs")
        self.lambda_security_group.add_egress_rule(
            ec2.Peer.ipv4(network.cidr), ec2.Port.tcp(config.memorydb.port), "MemoryDB"
        )

    @property
    def availability_zones(self) -> list[str]:
        # Env-agnostic stacks get only 2 AZs from CDK; choosing them at deploy time (Fn::GetAZs) gives the
        # configured count with no AZ lookup, i.e. no AWS call at synth time.
        return [Fn.select(index, Fn.get_azs()) for index in range(self._max_azs)]
