"""A MemoryDB cluster locked down: TLS, an ACL user whose password lives in Secrets Manager, KMS at rest,
private subnets, and a security group that admits only the given client security group."""

from __future__ import annotations

import json

from aws_cdk import RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_memorydb as memorydb
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from recsys.config import StageConfig
from stacks.nag import acknowledge


def client_environment(endpoint: str, port: int, secret_arn: str) -> dict[str, str]:
    """What recsys.store.redis_from_env reads to connect a client: TLS, the ACL user's password from the secret."""
    return {
        "MEMORYDB_ENDPOINT": endpoint,
        "MEMORYDB_PORT": str(port),
        "MEMORYDB_SECRET_ARN": secret_arn,
        "MEMORYDB_TLS": "true",
    }


class MemoryDbCluster(Construct):
    """`endpoint`:`port` is the cluster endpoint; clients authenticate with the user and password in `secret`
    (`{"username": ..., "password": ...}`, what `recsys.store.redis_from_env` reads)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        vpc: ec2.IVpc,
        subnets: ec2.SubnetSelection,
        key: kms.IKey,
        clients: ec2.ISecurityGroup,
    ) -> None:
        super().__init__(scope, id)
        names, settings = config.names, config.memorydb
        removal = RemovalPolicy.RETAIN if config.retain_data else RemovalPolicy.DESTROY

        self.secret = secretsmanager.Secret(
            self,
            "UserSecret",
            secret_name=names.memorydb_secret,
            description=f"Password of the MemoryDB ACL user {names.memorydb_user}",
            encryption_key=key,
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"username": names.memorydb_user}),
                generate_string_key="password",
                # MemoryDB passwords: 16-128 printable characters; letters and digits avoid every forbidden one.
                password_length=32,
                exclude_punctuation=True,
            ),
            removal_policy=removal,
        )
        acknowledge(
            self.secret.node.default_child,
            "AwsSolutions-SMG4",
            "No AWS rotation template exists for MemoryDB users: rotating means a custom function that adds the "
            "new password to the user (MemoryDB accepts two at once), then removes the old one. Until the platform "
            "ships it, rotate by putting a new secret value and redeploying; docs/infrastructure.md has the steps.",
        )
        user = memorydb.CfnUser(
            self,
            "User",
            user_name=names.memorydb_user,
            access_string=settings.access_string,
            # A CloudFormation dynamic reference: the password never appears in the template.
            authentication_mode={
                "Type": "password",
                "Passwords": [self.secret.secret_value_from_json("password").unsafe_unwrap()],
            },
        )
        acl = memorydb.CfnACL(self, "Acl", acl_name=names.memorydb_acl, user_names=[names.memorydb_user])
        acl.node.add_dependency(user)

        subnet_group = memorydb.CfnSubnetGroup(
            self,
            "SubnetGroup",
            subnet_group_name=names.memorydb_cluster,
            description=f"Private subnets of {names.memorydb_cluster}",
            subnet_ids=vpc.select_subnets(subnet_group_name=subnets.subnet_group_name).subnet_ids,
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description=f"{names.memorydb_cluster}: Redis protocol from the platform Lambdas only",
            allow_all_outbound=False,
        )
        self.security_group.add_ingress_rule(clients, ec2.Port.tcp(settings.port), "Redis protocol (TLS) from Lambdas")

        self.cluster = memorydb.CfnCluster(
            self,
            "Cluster",
            cluster_name=names.memorydb_cluster,
            description=f"{config.prefix}: point-in-time features",
            node_type=settings.node_type,
            num_shards=settings.num_shards,
            # Replicas land in other AZs than their primary: a node or AZ failure fails over, no data lost.
            num_replicas_per_shard=settings.replicas_per_shard,
            engine_version=settings.engine_version,
            port=settings.port,
            tls_enabled=True,
            kms_key_id=key.key_arn,
            acl_name=acl.acl_name,
            subnet_group_name=subnet_group.subnet_group_name,
            security_group_ids=[self.security_group.security_group_id],
            snapshot_retention_limit=settings.snapshot_retention_days,
            auto_minor_version_upgrade=True,
        )
        self.cluster.node.add_dependency(acl, subnet_group)
        self.cluster.apply_removal_policy(removal)
        self.endpoint = self.cluster.attr_cluster_endpoint_address
        self.port = settings.port
        self.client_environment = client_environment(self.endpoint, self.port, self.secret.secret_arn)
