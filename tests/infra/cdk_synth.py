"""The cloud assembly of one synthesized stage, and helpers the infra tests read it with."""

from __future__ import annotations

import json
import os
import time
from functools import cached_property
from pathlib import Path
from typing import Any

from aws_cdk.assertions import Template

from recsys.config import StageConfig, load_stage
from stacks.platform import create_app

STACKS = ("foundation", "network", "realtime", "serving", "batch", "monitoring", "recommend", "pipeline")


class Synth:
    """The cloud assembly of one stage: templates by stack kind, plus helpers to read them."""

    def __init__(self, config: StageConfig, outdir: Path, seconds: float) -> None:
        self.config = config
        self.outdir = outdir
        self.seconds = seconds
        self.templates: dict[str, dict[str, Any]] = {
            kind: json.loads((outdir / f"{config.prefix}-{kind}.template.json").read_text()) for kind in STACKS
        }

    @cached_property
    def _assertions(self) -> dict[str, Template]:
        return {kind: Template.from_json(template) for kind, template in self.templates.items()}

    def template(self, kind: str) -> Template:
        return self._assertions[kind]

    def resources(self, kind: str, type_: str) -> dict[str, dict[str, Any]]:
        return {
            logical_id: resource
            for logical_id, resource in self.templates[kind]["Resources"].items()
            if resource["Type"] == type_
        }

    def one(self, kind: str, type_: str) -> dict[str, Any]:
        (resource,) = self.resources(kind, type_).values()
        return resource

    def resolve_import(self, value: Any) -> Any:
        """`{"Fn::ImportValue": name}` -> the exporting stack's output value, e.g. `{"Ref": "VpcappSubnet1..."}`."""
        name = value["Fn::ImportValue"]
        for template in self.templates.values():
            for output in template.get("Outputs", {}).values():
                if output.get("Export", {}).get("Name") == name:
                    return output["Value"]
        raise KeyError(f"no stack exports {name}")

    def key_arn(self) -> dict[str, Any]:
        """How the foundation stack refers to the platform key's ARN (what other stacks import)."""
        (logical_id,) = self.resources("foundation", "AWS::KMS::Key")
        return {"Fn::GetAtt": [logical_id, "Arn"]}

    def dashboards(self) -> dict[str, dict[str, Any]]:
        """Every dashboard of every stack, by name: its body as JSON, with each CloudFormation token as "TOKEN"."""
        bodies = {}
        for kind in STACKS:
            for resource in self.resources(kind, "AWS::CloudWatch::Dashboard").values():
                body = resource["Properties"]["DashboardBody"]
                if isinstance(body, dict):  # {"Fn::Join": ["", [text, token, text, ...]]}
                    body = "".join(part if isinstance(part, str) else "TOKEN" for part in body["Fn::Join"][1])
                bodies[resource["Properties"]["DashboardName"]] = json.loads(body)
        return bodies

    def asset_dir(self, function: dict[str, Any]) -> Path:
        """The bundle directory of a Lambda function's code asset."""
        key = function["Properties"]["Code"]["S3Key"]
        return self.outdir / f"asset.{key.removesuffix('.zip')}"


def synthesize(stage: str, outdir: Path) -> Synth:
    """Synthesize the whole app for `stage` into `outdir`, as `app.py` does, with no account in the environment."""
    saved = {name: os.environ.pop(name, None) for name in ("CDK_DEFAULT_ACCOUNT", "CDK_DEFAULT_REGION")}
    try:
        start = time.perf_counter()
        app, _ = create_app(outdir=str(outdir), context={"stage": stage}, builtin_validation=False)
        app.synth()
        seconds = time.perf_counter() - start
    finally:
        os.environ.update({name: value for name, value in saved.items() if value is not None})
    return Synth(load_stage(stage), outdir, seconds)
