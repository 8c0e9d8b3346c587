"""The LocalStack profile (`-c localstack=true`, stacks/localstack.py): what it leaves out of the synthesized app, and
that what it keeps is whole (every reference resolves, cfn-lint finds no error). The deploy itself is
tests/localstack/test_deploy_smoke.py."""

from __future__ import annotations

import json
import shutil

import pytest
from cdk_synth import Synth
from cfnlint.api import lint_by_config
from cfnlint.config import ManualArgs

from stacks.localstack import references, apply_profile, left_out_reason, prune

PSEUDO = {"AWS::AccountId", "AWS::Region", "AWS::Partition", "AWS::URLSuffix", "AWS::StackName", "AWS::StackId",
          "AWS::NoValue", "AWS::NotificationARNs"}


@pytest.fixture(scope="module")
def profile(dev: Synth, tmp_path_factory):
    assembly = tmp_path_factory.mktemp("localstack-profile")
    for path in list(dev.outdir.glob("*.template.json")) + list(dev.outdir.glob("*.assets.json")):
        shutil.copy(path, assembly)
    report = apply_profile(assembly)
    templates = {path.name.removesuffix(".template.json"): json.loads(path.read_text())
                 for path in assembly.glob("*.template.json")}
    return assembly, report, templates


def test_no_resource_localstack_cannot_run_is_kept(profile):
    _, report, templates = profile
    kept_types = {r["Type"] for t in templates.values() for r in t["Resources"].values()}
    assert not [t for t in kept_types if left_out_reason(t)]
    assert {"AWS::SNS::Topic", "AWS::SQS::Queue", "AWS::S3::Bucket", "AWS::KMS::Key", "AWS::SSM::Parameter",
            "AWS::CloudWatch::Alarm", "AWS::EC2::VPC", "AWS::SNS::Subscription"} <= kept_types
    assert all(item["reason"] for item in report["left_out"])
    left = {item["type"] for item in report["left_out"]}
    assert {"AWS::Lambda::Function", "AWS::SageMaker::Endpoint", "AWS::MemoryDB::Cluster",
            "AWS::EC2::NatGateway"} <= left


def test_every_reference_of_what_is_kept_resolves(profile):
    _, _, templates = profile
    exports = {o["Export"]["Name"] for t in templates.values() for o in t.get("Outputs", {}).values()
               if isinstance(o.get("Export", {}).get("Name"), str)}
    for stack, template in templates.items():
        known = set(template["Resources"]) | set(template.get("Parameters", {})) | PSEUDO
        for logical_id, resource in list(template["Resources"].items()) + list(template.get("Outputs", {}).items()):
            for kind, target in references(resource):
                where = f"{stack}/{logical_id}"
                assert target in (exports if kind == "export" else known), f"{where} refers to missing {target}"
            depends = resource.get("DependsOn", [])
            assert set([depends] if isinstance(depends, str) else depends) <= known


def test_cfn_lint_finds_no_error_in_the_profile(profile):
    assembly, _, _ = profile
    matches = lint_by_config(ManualArgs(templates=sorted(str(p) for p in assembly.glob("*.template.json")),
                                        regions=["us-east-1"]))
    assert [str(m) for m in matches if m.rule.id.startswith("E")] == []


def test_no_image_is_built_and_only_kept_resources_files_are_published(profile):
    assembly, report, templates = profile
    texts = [json.dumps(t) for t in templates.values()]
    for manifest in (json.loads(p.read_text()) for p in assembly.glob("*.assets.json")):
        assert not manifest.get("dockerImages")
        for asset_hash, asset in manifest.get("files", {}).items():
            assert asset["source"]["path"].endswith(".template.json") or any(asset_hash in t for t in texts)
    assert any(line.startswith("image containers/inference/Dockerfile") for line in report["assets_left_out"])


def test_what_refers_to_a_left_out_resource_goes_too_across_stacks():
    function = {"Type": "AWS::Lambda::Function", "Properties": {}}
    templates = {
        "a": {"Resources": {"Fn": function, "Topic": {"Type": "AWS::SNS::Topic"},
                            "Perm": {"Type": "AWS::IAM::Policy", "Properties": {"R": {"Fn::GetAtt": ["Fn", "Arn"]}}}},
              "Outputs": {"FnArn": {"Value": {"Fn::Sub": "${Fn.Arn}"}, "Export": {"Name": "a:fn"}},
                          "TopicArn": {"Value": {"Ref": "Topic"}, "Export": {"Name": "a:topic"}}}},
        "b": {"Resources": {"Uses": {"Type": "AWS::SQS::Queue", "Properties": {"X": {"Fn::ImportValue": "a:fn"}}},
                            "After": {"Type": "AWS::SQS::Queue", "DependsOn": ["Uses"]},
                            "Keeps": {"Type": "AWS::SQS::Queue", "Properties": {"X": {"Fn::ImportValue": "a:topic"}}}}},
    }
    left = {(item.stack, item.logical_id): item.reason for item in prune(templates)}
    assert set(left) == {("a", "Fn"), ("a", "Perm"), ("b", "Uses"), ("b", "After")}
    assert left[("b", "Uses")] == "imports a:fn, whose resource is left out"
    assert left[("b", "After")] == "refers to Uses, left out"
    assert set(templates["a"]["Outputs"]) == {"TopicArn"} and set(templates["b"]["Resources"]) == {"Keeps"}
