"""The architecture picture, drawn from the synthesized templates so that it cannot drift from the stacks.

Nodes are the resources a reader of the architecture cares about (APIs, functions, topics, queues, streams,
stores, jobs, endpoints); edges are how data and control flow between them, read from the templates:

- a property of one node that references another (a function's environment naming a topic, a state machine's
  definition naming a function, a Firehose stream's bucket, a schedule's target);
- wiring resources between two nodes: SNS subscriptions, Lambda event-source mappings, API methods;
- IAM policies: a function whose role may write to / read from a node.

Cross-stack references (`Fn::ImportValue`) are followed to the exporting stack. `python -m stacks.diagram`
synthesizes the dev stage and rewrites the picture in README.md and docs/architecture.md.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ARCHITECTURE_DOC = ROOT / "docs" / "architecture.md"
BEGIN, END = "<!-- ARCHITECTURE -->", "<!-- /ARCHITECTURE -->"

# Resource type -> (short label, the property holding its name, if any).
NODE_TYPES: dict[str, tuple[str, str | None]] = {
    "AWS::ApiGateway::RestApi": ("REST API", "Name"),
    "AWS::Lambda::Function": ("Lambda", "FunctionName"),
    "AWS::SNS::Topic": ("SNS", "TopicName"),
    "AWS::SQS::Queue": ("SQS", "QueueName"),
    "AWS::S3::Bucket": ("S3", "BucketName"),
    "AWS::KinesisFirehose::DeliveryStream": ("Firehose", "DeliveryStreamName"),
    "AWS::Glue::Table": ("Glue table", None),
    "AWS::MemoryDB::Cluster": ("MemoryDB", "ClusterName"),
    "AWS::SecretsManager::Secret": ("Secret", "Name"),
    "AWS::SageMaker::FeatureGroup": ("Feature group", "FeatureGroupName"),
    "AWS::SageMaker::ModelPackageGroup": ("Model registry", "ModelPackageGroupName"),
    "AWS::SageMaker::Endpoint": ("SageMaker endpoint", "EndpointName"),
    "AWS::StepFunctions::StateMachine": ("Step Functions", "StateMachineName"),
    "AWS::Scheduler::Schedule": ("Schedule", "Name"),
    "AWS::SSM::Parameter": ("SSM parameter", "Name"),
    "AWS::CloudWatch::Dashboard": ("Dashboard", "DashboardName"),
}
# CDK's own helper functions (custom-resource providers) are plumbing, not architecture.
PLUMBING = re.compile(r"CustomResourceProvider|^AWS[0-9a-f]{32}|^LogRetention|BucketNotificationsHandler")
# How an ARN or URI names a node of each type, for resources addressed by name rather than by reference
# (cross-stack grants built from config names, environment variables, S3 URIs).
NAMED_BY: dict[str, str] = {
    "AWS::SageMaker::Endpoint": r"endpoint/{name}$",
    "AWS::SageMaker::ModelPackageGroup": r"model-package(-group)?/{name}(/|$)",
    "AWS::SageMaker::FeatureGroup": r"feature-group/{name}$",
    "AWS::KinesisFirehose::DeliveryStream": r"deliverystream/{name}$",
    "AWS::S3::Bucket": r"(:::|s3://){name}(/|$)",
    "AWS::StepFunctions::StateMachine": r"stateMachine:{name}$",
    "AWS::SNS::Topic": r"^arn:.*:sns:.*:{name}$",
    "AWS::SQS::Queue": r"^arn:.*:sqs:.*:{name}$",
    "AWS::Lambda::Function": r"function:{name}(:|$)",
    "AWS::MemoryDB::Cluster": r"cluster/{name}$",
    "AWS::SSM::Parameter": r"parameter{name}$",
}
ACCOUNT = "${AWS::AccountId}"
# Properties whose references are not data flow (a bucket's access-log target).
IGNORED_PROPERTIES = ("LoggingConfiguration",)
# IAM actions that make a data-flow edge (function -> resource it feeds or reads).
FLOW_ACTION = re.compile(
    r"^(sns:Publish|sqs:SendMessage|firehose:PutRecord\w*|s3:PutObject|s3:GetObject|sagemaker:InvokeEndpoint\w*"
    r"|sagemaker:(Put|Get|BatchGet)Record|sagemaker:(Create|Update)Endpoint\w*|sagemaker:CreateModelPackage"
    r"|secretsmanager:GetSecretValue|ssm:GetParameters?|states:StartExecution|memorydb:Connect)$"
)
# Stand-ins the local mode runs for each deployed service (see recsys/local/services.py).
LOCAL_STAND_INS: tuple[tuple[str, str], ...] = (
    ("API Gateway + Lambda", "HTTP servers on localhost calling the same handlers"),
    ("SNS, SQS, S3, Step Functions, SSM, SageMaker control plane", "moto server (or LocalStack)"),
    ("MemoryDB", "Valkey server process"),
    ("Firehose", "in-process buffer + the same transform, writing the lake layout to S3"),
    ("SageMaker Processing (Spark)", "PySpark local[*]"),
    ("SageMaker training", "the training entrypoint in-process"),
    ("SageMaker endpoint", "the inference container's server as a process"),
    ("Feature Store", "online records in Valkey, offline files in S3"),
)


@dataclass(frozen=True)
class Node:
    stack: str
    logical_id: str
    label: str

    @property
    def key(self) -> str:
        return f"{self.stack}.{self.logical_id}"

    @property
    def mermaid_id(self) -> str:
        return re.sub(r"\W", "_", self.key)


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def as_text(value: Any) -> str | None:
    """A name or ARN as text: joins concatenated, references as `${Ref}` / `${Id.Attr}`; None if not renderable."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        if "Ref" in value:
            return "${" + str(value["Ref"]) + "}"
        if "Fn::GetAtt" in value:
            return "${" + ".".join(map(str, value["Fn::GetAtt"])) + "}"
        if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            return value["Fn::Sub"]
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            rendered = [as_text(part) for part in parts] if isinstance(parts, list) else [None]
            return None if None in rendered else separator.join(rendered)  # type: ignore[arg-type]
    return None


class Assembly:
    """The templates of one synthesized stage, with references resolved across stacks."""

    def __init__(self, templates: Mapping[str, Mapping[str, Any]]) -> None:
        self.templates = templates
        self.exports: dict[str, tuple[str, Any]] = {
            output["Export"]["Name"]: (stack, output["Value"])
            for stack, template in templates.items()
            for output in template.get("Outputs", {}).values()
            if isinstance(output.get("Export", {}).get("Name"), str)
        }
        self.nodes: dict[str, Node] = {}
        self.name_patterns: dict[str, re.Pattern[str]] = {}
        for stack, template in templates.items():
            for logical_id, resource in template["Resources"].items():
                if resource["Type"] not in NODE_TYPES or PLUMBING.search(logical_id):
                    continue
                kind, name_property = NODE_TYPES[resource["Type"]]
                name = as_text(resource.get("Properties", {}).get(name_property)) if name_property else None
                label = name.replace(f"-{ACCOUNT}", "") if name else re.sub(r"[0-9A-F]{8}$", "", logical_id)
                node = Node(stack, logical_id, f"{kind}: {label}")
                self.nodes[node.key] = node
                if name and resource["Type"] in NAMED_BY:
                    self.name_patterns[node.key] = re.compile(NAMED_BY[resource["Type"]].format(name=re.escape(name)))

    def references(self, stack: str, value: Any) -> set[str]:
        """Keys (stack.logicalId) of every resource `value` refers to, directly or through an import."""
        found: set[str] = set()
        for item in _walk(value):
            if not isinstance(item, Mapping):
                continue
            if isinstance(item.get("Ref"), str):
                found.add(f"{stack}.{item['Ref']}")
            elif isinstance(item.get("Fn::GetAtt"), list):
                found.add(f"{stack}.{item['Fn::GetAtt'][0]}")
            elif isinstance(item.get("Fn::ImportValue"), str) and item["Fn::ImportValue"] in self.exports:
                exporter, exported = self.exports[item["Fn::ImportValue"]]
                found |= self.references(exporter, exported)
        return found

    def _node_refs(self, stack: str, value: Any) -> set[str]:
        """Nodes `value` refers to by reference, or names in an ARN or URI."""
        named = {key for text in self._texts(stack, value) for key, pattern in self.name_patterns.items()
                 if pattern.search(text)}
        return named | {key for key in self.references(stack, value) if key in self.nodes}

    def _texts(self, stack: str, value: Any) -> Iterator[str]:
        """Every string in `value`, with each `Fn::Join` / `Fn::Sub` / import rendered as one string."""
        if isinstance(value, str):
            yield value
        elif isinstance(value, Mapping):
            if "Fn::ImportValue" in value and value["Fn::ImportValue"] in self.exports:
                exporter, exported = self.exports[value["Fn::ImportValue"]]
                yield from self._texts(exporter, exported)
            elif "Fn::Join" in value or "Fn::Sub" in value:
                text = as_text(value)
                if text:
                    yield text
            else:
                for item in value.values():
                    yield from self._texts(stack, item)
        elif isinstance(value, list):
            for item in value:
                yield from self._texts(stack, item)

    def edges(self) -> set[tuple[str, str]]:
        edges: set[tuple[str, str]] = set()
        role_users: dict[str, set[str]] = {}
        for stack, template in self.templates.items():
            for logical_id, resource in template["Resources"].items():
                if resource["Type"] == "AWS::Lambda::Function" and f"{stack}.{logical_id}" in self.nodes:
                    for role in self.references(stack, resource.get("Properties", {}).get("Role")):
                        role_users.setdefault(role, set()).add(f"{stack}.{logical_id}")
        for stack, template in self.templates.items():
            for logical_id, resource in template["Resources"].items():
                props = resource.get("Properties", {})
                kind = resource["Type"]
                key = f"{stack}.{logical_id}"
                if key in self.nodes:
                    flow = {name: value for name, value in props.items() if name not in IGNORED_PROPERTIES}
                    edges |= {(key, target) for target in self._node_refs(stack, flow) if target != key}
                elif kind == "AWS::SNS::Subscription":
                    edges |= {(topic, endpoint) for topic in self._node_refs(stack, props.get("TopicArn"))
                              for endpoint in self._node_refs(stack, props.get("Endpoint"))}
                elif kind == "AWS::Lambda::EventSourceMapping":
                    edges |= {(source, function) for source in self._node_refs(stack, props.get("EventSourceArn"))
                              for function in self._node_refs(stack, props.get("FunctionName"))}
                elif kind == "AWS::ApiGateway::Method":
                    edges |= {(api, function) for api in self._node_refs(stack, props.get("RestApiId"))
                              for function in self._node_refs(stack, props.get("Integration"))}
                elif kind == "AWS::IAM::Policy":
                    users = set().union(*(role_users.get(r, set()) for r in self.references(stack, props.get("Roles"))))
                    for statement in props.get("PolicyDocument", {}).get("Statement", []):
                        actions = statement.get("Action", [])
                        actions = [actions] if isinstance(actions, str) else actions
                        if statement.get("Effect") == "Allow" and any(FLOW_ACTION.match(a) for a in actions):
                            targets = self._node_refs(stack, statement.get("Resource"))
                            edges |= {(user, target) for user in users for target in targets if user != target}
        return edges


def mermaid(templates: Mapping[str, Mapping[str, Any]], prefix: str) -> str:
    """A Mermaid flowchart of the deployed platform: one box per stack, only the nodes that take part in a flow."""
    assembly = Assembly(templates)
    edges = sorted(assembly.edges())
    used = {key for edge in edges for key in edge}
    lines = ["flowchart LR"]
    for stack in sorted(templates):
        members = sorted((n for n in assembly.nodes.values() if n.stack == stack and n.key in used),
                         key=lambda n: n.label)
        if not members:
            continue
        stack_id = re.sub(r"\W", "_", stack)
        lines.append(f'  subgraph {stack_id}["{stack.removeprefix(prefix + "-")} stack"]')
        lines += [f'    {n.mermaid_id}["{n.label}"]' for n in members]
        lines.append("  end")
    lines += [f"  {assembly.nodes[a].mermaid_id} --> {assembly.nodes[b].mermaid_id}" for a, b in edges]
    return "\n".join(lines)


def local_mode_table() -> str:
    rows = ["| Deployed | Local stand-in |", "|---|---|"]
    rows += [f"| {service} | {stand_in} |" for service, stand_in in LOCAL_STAND_INS]
    return "\n".join(rows)


def render(templates: Mapping[str, Mapping[str, Any]], prefix: str) -> str:
    return "\n".join([
        BEGIN,
        "Generated by `python -m stacks.diagram` from the synthesized dev stage; a test keeps it current.",
        "",
        "```mermaid",
        mermaid(templates, prefix),
        "```",
        "",
        "Local mode runs the same code on these stand-ins:",
        "",
        local_mode_table(),
        END,
    ])


def replace_block(text: str, block: str) -> str:
    if BEGIN not in text or END not in text:
        raise ValueError(f"no {BEGIN} ... {END} markers")
    head, rest = text.split(BEGIN, 1)
    return head + block + rest.split(END, 1)[1]


def synthesized_templates(outdir: Path, stage: str = "dev") -> tuple[dict[str, dict[str, Any]], str]:
    from recsys.config import load_stage
    from stacks.platform import create_app

    app, platform = create_app(outdir=str(outdir), context={"stage": stage}, builtin_validation=False)
    app.synth()
    prefix = platform.config.prefix
    templates = {path.name.removesuffix(".template.json"): json.loads(path.read_text())
                 for path in sorted(outdir.glob(f"{load_stage(stage).prefix}-*.template.json"))}
    return templates, prefix


def main() -> int:
    with tempfile.TemporaryDirectory() as outdir:
        templates, prefix = synthesized_templates(Path(outdir))
    block = render(templates, prefix)
    for path in (README, ARCHITECTURE_DOC):
        path.write_text(replace_block(path.read_text(), block))
        print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
