"""Grants on prefixes of the lake bucket, and the one cdk-nag finding each such grant raises.

Services that write the lake (Firehose, Feature Store) name their objects at write time, so their grants end in
`<prefix>/*`; cdk-nag flags each as AwsSolutions-IAM5 and the acknowledgment must name that exact resource.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3

from stacks.nag import acknowledge


def prefix_objects(bucket: s3.IBucket, prefix: str) -> str:
    """The ARN of every object under `prefix/` in `bucket`."""
    return f"{bucket.bucket_arn}/{prefix.strip('/')}/*"


def _as_nag_renders(value: Any) -> str:
    """An ARN as cdk-nag prints it in finding ids: `{"Ref": "AWS::Partition"}` -> `<AWS::Partition>`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::Join" in value and value["Fn::Join"][0] == "":
        return "".join(_as_nag_renders(part) for part in value["Fn::Join"][1])
    raise TypeError(f"cannot render {value!r} as cdk-nag does; name the bucket by a plain or pseudo-parameter name")


def acknowledge_prefix_grant(policy: iam.Policy, bucket: s3.IBucket, prefix: str, reason: str) -> None:
    resource = _as_nag_renders(Stack.of(policy).resolve(prefix_objects(bucket, prefix)))
    acknowledge(policy.node.default_child, f"AwsSolutions-IAM5[Resource::{resource}]", reason)
