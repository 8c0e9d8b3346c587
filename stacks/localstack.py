"""The LocalStack profile of the app (`-c localstack=true`): the same stacks, less what LocalStack cannot run.

    npx cdklocal deploy --all -c stage=dev -c localstack=true      (make deploy-smoke; docs/deploy.md)

The app is built and checked (cdk-nag) exactly as for AWS; after synthesis `apply_profile` rewrites the cloud
assembly it wrote:
- every resource of a type in `LEFT_OUT` is removed, with that type's reason;
- so is every resource, output and export that refers to a removed one (Ref, Fn::GetAtt, Fn::Sub, DependsOn,
  Fn::ImportValue of a removed export), across stacks, until nothing refers to what is gone;
- Docker image assets are dropped from the asset manifests (there is no Docker daemon to build them and no ECR
  to push them to), and so are file assets no remaining template names.
What was left out, and why, is written to `localstack-profile.json` in the assembly, which the deploy smoke prints.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

CONTEXT_KEY = "localstack"
REPORT_FILE = "localstack-profile.json"
NO_LAMBDA = "LocalStack community creates Lambda functions only with a Docker daemon, which this machine lacks"
# Resource type (or a prefix ending in "::") -> why LocalStack community cannot deploy it here.
LEFT_OUT: dict[str, str] = {
    "AWS::Lambda::": NO_LAMBDA,
    "Custom::": f"a custom resource, run by a Lambda function: {NO_LAMBDA}",
    "AWS::CloudFormation::CustomResource": f"a custom resource, run by a Lambda function: {NO_LAMBDA}",
    "AWS::SageMaker::": "LocalStack community has no SageMaker (the LocalStack test tier sends it to moto)",
    "AWS::MemoryDB::": "LocalStack community has no MemoryDB (the local platform runs Valkey instead)",
    "AWS::Glue::": "LocalStack community has no Glue",
    "AWS::ECR::": "LocalStack community has no ECR",
    "AWS::ApplicationAutoScaling::": "LocalStack community has no Application Auto Scaling",
    "AWS::EC2::NatGateway": "LocalStack's NAT gateway routes nothing and holds its Elastic IP; the VPC needs none "
                            "without Lambda functions or SageMaker in it",
    "AWS::EC2::EIP": "only the NAT gateway uses an Elastic IP",
    "AWS::EC2::VPCEndpoint": "interface endpoints serve the Lambda functions and SageMaker in the VPC, which are "
                             "left out; LocalStack's endpoints route nothing",
    "AWS::EC2::FlowLog": "LocalStack records no VPC traffic",
}
_SUB_NAME = re.compile(r"\$\{([A-Za-z0-9]+)(?:\.[A-Za-z0-9.]+)?\}")


def enabled(context_value: Any) -> bool:
    return str(context_value).lower() in ("1", "true", "yes")


def left_out_reason(resource_type: str) -> str | None:
    for pattern, reason in LEFT_OUT.items():
        if resource_type == pattern or (pattern.endswith("::") and resource_type.startswith(pattern)):
            return reason
    return None


def references(node: Any) -> Iterator[tuple[str, str]]:
    """('resource', logical id) and ('export', name) of everything `node` refers to."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and isinstance(value, str):
                yield "resource", value
            elif key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                yield "resource", target
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                yield from (("resource", name) for name in _SUB_NAME.findall(text))
                if isinstance(value, list):
                    yield from references(value[1])
            elif key == "Fn::ImportValue" and isinstance(value, str):
                yield "export", value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


@dataclass(frozen=True)
class LeftOut:
    stack: str
    logical_id: str
    type: str
    reason: str


def prune(templates: dict[str, dict[str, Any]]) -> list[LeftOut]:
    """Remove what LocalStack cannot run from `templates` (stack name -> template, edited in place)."""
    left_out: list[LeftOut] = []
    gone: dict[str, set[str]] = {stack: set() for stack in templates}
    gone_exports: set[str] = set()
    changed = True
    while changed:
        changed = False
        for stack, template in templates.items():
            resources = template.get("Resources", {})
            for logical_id, resource in list(resources.items()):
                reason = left_out_reason(resource["Type"])
                if reason is None:
                    needs = {target for kind, target in references(resource) if kind == "resource"}
                    depends = resource.get("DependsOn", [])
                    needs |= {depends} if isinstance(depends, str) else set(depends)
                    missing = sorted(needs & gone[stack])
                    imports = sorted(t for k, t in references(resource) if k == "export" and t in gone_exports)
                    if missing:
                        reason = f"refers to {', '.join(missing)}, left out"
                    elif imports:
                        reason = f"imports {', '.join(imports)}, whose resource is left out"
                if reason is not None:
                    del resources[logical_id]
                    gone[stack].add(logical_id)
                    left_out.append(LeftOut(stack, logical_id, resource["Type"], reason))
                    changed = True
            for name, output in list(template.get("Outputs", {}).items()):
                refs = list(references(output))
                if any(k == "resource" and t in gone[stack] for k, t in refs) or any(
                        k == "export" and t in gone_exports for k, t in refs):
                    del template["Outputs"][name]
                    export = output.get("Export", {}).get("Name")
                    if isinstance(export, str):
                        gone_exports.add(export)
                    changed = True
    return left_out


def _prune_assets(manifest: dict[str, Any], template_texts: list[str]) -> list[str]:
    """Drop Docker image assets and file assets no template names; the asset descriptions dropped."""
    dropped = []
    for asset_hash, asset in list(manifest.get("dockerImages", {}).items()):
        dropped.append(f"image {asset['source'].get('dockerFile', 'Dockerfile')} ({asset_hash[:12]}): no Docker "
                       "daemon to build it and no ECR to push it to")
        del manifest["dockerImages"][asset_hash]
    for asset_hash, asset in list(manifest.get("files", {}).items()):
        if asset["source"].get("path", "").endswith(".template.json"):
            continue
        if not any(asset_hash in text for text in template_texts):
            dropped.append(f"file {asset['source'].get('path')} ({asset_hash[:12]}): only left-out resources use it")
            del manifest["files"][asset_hash]
    return dropped


def apply_profile(assembly_dir: str | Path) -> dict[str, Any]:
    """Rewrite the cloud assembly in `assembly_dir` for LocalStack; returns (and writes) the report."""
    assembly = Path(assembly_dir)
    paths = {path.name.removesuffix(".template.json"): path for path in sorted(assembly.glob("*.template.json"))}
    templates = {stack: json.loads(path.read_text()) for stack, path in paths.items()}
    left_out = prune(templates)
    texts = []
    for stack, template in templates.items():
        text = json.dumps(template, indent=1)
        paths[stack].write_text(text)
        texts.append(text)
    assets = []
    for path in sorted(assembly.glob("*.assets.json")):
        manifest = json.loads(path.read_text())
        assets += _prune_assets(manifest, texts)
        path.write_text(json.dumps(manifest, indent=1))
    kept = {stack: len(template.get("Resources", {})) for stack, template in templates.items()}
    report = {"kept": kept, "left_out": [asdict(item) for item in left_out], "assets_left_out": assets}
    (assembly / REPORT_FILE).write_text(json.dumps(report, indent=1))
    return report
