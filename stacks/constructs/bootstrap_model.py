"""The bootstrap model (recsys.live_models): built at synth, shipped as an S3 asset, copied at deploy time to each
live model key that is still empty, before the endpoint is created. No Docker and no AWS call at synth."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
import tempfile
from pathlib import Path

from aws_cdk import AssetHashType, Aws, CustomResource, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_assets as s3_assets
from aws_cdk import custom_resources
from constructs import Construct

from recsys.config import StageConfig
from stacks.constructs.bundling import REPO_ROOT
from stacks.constructs.logs import encrypted_log_group
from stacks.constructs.python_lambda import PythonLambda
from stacks.nag import acknowledge

# What the bundle is made from: a change to any of them makes a new bootstrap archive (and asset).
SOURCES = ("recsys/live_models.py", "recsys/models", "recsys/ranking")
ARCHIVE = "model.tar.gz"


def sources_hash(repo_root: Path = REPO_ROOT) -> str:
    digest = hashlib.sha256()
    for source in SOURCES:
        root = repo_root / source
        for path in sorted([root] if root.is_file() else root.rglob("*.py")):
            digest.update(str(path.relative_to(repo_root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _archive(bundle_dir: Path, archive: Path) -> None:
    """model.tar.gz as SageMaker unpacks it into /opt/ml/model: the bundle's files at the root, fixed metadata."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted(p for p in bundle_dir.rglob("*") if p.is_file()):
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(bundle_dir)))
            info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", 0o644
            with open(path, "rb") as data:
                tar.addfile(info, data)
    archive.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))


def bootstrap_archive(repo_root: Path = REPO_ROOT) -> tuple[Path, str]:
    """(model.tar.gz of the bootstrap bundle, its sources hash), built once per hash under build/."""
    from recsys.live_models import bootstrap_bundle

    key = sources_hash(repo_root)
    archive = repo_root / "build" / "bootstrap-model" / key / ARCHIVE
    if not archive.exists():
        archive.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as bundle_dir:
            bootstrap_bundle(bundle_dir)
            partial = archive.with_suffix(".partial")
            _archive(Path(bundle_dir), partial)
            partial.rename(archive)
    return archive, key


class BootstrapModel(Construct):
    """Seeds `keys` of `bucket` with the bootstrap model where they hold nothing; `self.seed` is the custom
    resource the endpoint depends on."""

    def __init__(self, scope: Construct, id: str, *, config: StageConfig, key: kms.IKey, bucket: s3.IBucket,
                 keys: list[str]) -> None:
        super().__init__(scope, id)
        archive, archive_hash = bootstrap_archive()
        self.asset = s3_assets.Asset(self, "Bundle", path=str(archive), asset_hash=archive_hash,
                                     asset_hash_type=AssetHashType.CUSTOM)
        self.function = PythonLambda(
            self, "SeedFunction", config=config, handler="seed_live_models", settings=config.serving.seed_function,
            key=key, description="Deploy time: copies the bootstrap model to the endpoint's empty live model keys",
        )
        role = self.function.role
        # The one asset object, not the bootstrap bucket (Asset.grant_read would grant the bucket's every object).
        asset_object = f"arn:{Aws.PARTITION}:s3:::{self.asset.s3_bucket_name}/{self.asset.s3_object_key}"
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=[asset_object]))
        role.add_to_policy(iam.PolicyStatement(actions=["s3:GetObject", "s3:PutObject"],
                                               resources=[bucket.arn_for_objects(k) for k in keys]))
        # Without ListBucket a missing key reads as 403, not 404; limited to the live keys by prefix.
        role.add_to_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn],
                                               conditions={"StringEquals": {"s3:prefix": keys}}))
        key.grant(role, "kms:Decrypt", "kms:GenerateDataKey")
        provider = custom_resources.Provider(
            self, "Provider", on_event_handler=self.function.function,
            log_group=encrypted_log_group(self, "ProviderLogs", key=key,
                                          days=config.serving.seed_function.log_retention_days,
                                          field="serving.seed_function.log_retention_days",
                                          retain=config.retain_data),
        )
        self.seed = CustomResource(
            self, "Seed", service_token=provider.service_token, resource_type="Custom::SeedLiveModels",
            properties={"Bucket": bucket.bucket_name, "Keys": keys, "SourceBucket": self.asset.s3_bucket_name,
                        "SourceKey": self.asset.s3_object_key},
        )
        framework = provider.node.find_child("framework-onEvent")
        acknowledge(
            framework.node.find_child("ServiceRole").node.default_child,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "The role of CDK's custom-resource Provider framework function, which runs only during deployments; the "
            "managed policy lets it write its own logs, and its other statement invokes the seeding function only.",
        )
        function_id = Stack.of(self).resolve(Stack.of(self).get_logical_id(self.function.function.node.default_child))
        acknowledge(
            framework.node.find_child("ServiceRole").node.find_child("DefaultPolicy").node.default_child,
            f"AwsSolutions-IAM5[Resource::<{function_id}.Arn>:*]",
            "CDK's Provider framework may invoke the seeding function and its versions (ARN:*); it invokes nothing "
            "else.",
        )
