"""The diagram's edge extraction on hand-written templates."""

from __future__ import annotations

import pytest

from stacks.diagram import Assembly, mermaid, replace_block

PRODUCER = {
    "Resources": {
        "Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "events"}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "work"}},
        "Sub": {"Type": "AWS::SNS::Subscription",
                "Properties": {"TopicArn": {"Ref": "Topic"}, "Endpoint": {"Fn::GetAtt": ["Queue", "Arn"]}}},
        "Logs": {"Type": "AWS::S3::Bucket", "Properties": {}},
        "Data": {"Type": "AWS::S3::Bucket",
                 "Properties": {"LoggingConfiguration": {"DestinationBucketName": {"Ref": "Logs"}}}},
    },
    "Outputs": {"QueueArn": {"Value": {"Fn::GetAtt": ["Queue", "Arn"]}, "Export": {"Name": "p:QueueArn"}}},
}
CONSUMER = {
    "Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {}},
        "Fn": {"Type": "AWS::Lambda::Function",
               "Properties": {"FunctionName": "worker", "Role": {"Fn::GetAtt": ["Role", "Arn"]}}},
        "Esm": {"Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {"EventSourceArn": {"Fn::ImportValue": "p:QueueArn"}, "FunctionName": {"Ref": "Fn"}}},
        "Out": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": "results"}},
        "Policy": {"Type": "AWS::IAM::Policy", "Properties": {
            "Roles": [{"Ref": "Role"}],
            "PolicyDocument": {"Statement": [
                {"Effect": "Allow", "Action": "sns:Publish", "Resource": {"Ref": "Out"}},
                {"Effect": "Allow", "Action": ["kms:Decrypt"], "Resource": {"Fn::ImportValue": "p:QueueArn"}},
            ]}}},
        "Provider": {"Type": "AWS::Lambda::Function",
                     "Properties": {"Role": {"Fn::GetAtt": ["Role", "Arn"]}}},
    },
}
# "Provider" would be a data-flow user of the policy if it were not CDK plumbing; give it a plumbing id.
CONSUMER["Resources"]["CustomResourceProviderHandlerABCD"] = CONSUMER["Resources"].pop("Provider")


def _labelled(assembly: Assembly) -> set[tuple[str, str]]:
    return {(assembly.nodes[a].label, assembly.nodes[b].label) for a, b in assembly.edges()}


def test_edges_follow_subscriptions_mappings_imports_and_write_grants():
    assembly = Assembly({"p": PRODUCER, "c": CONSUMER})
    assert _labelled(assembly) == {
        ("SNS: events", "SQS: work"),
        ("SQS: work", "Lambda: worker"),
        ("Lambda: worker", "SNS: results"),
    }


def test_plumbing_and_access_logs_are_left_out():
    text = mermaid({"p": PRODUCER, "c": CONSUMER}, "x")
    assert "CustomResourceProvider" not in text and "S3" not in text
    assert 'subgraph p["p stack"]' in text and 'subgraph c["c stack"]' in text


def test_replace_block_needs_its_markers():
    text = "a <!-- ARCHITECTURE -->old<!-- /ARCHITECTURE --> b"
    assert replace_block(text, "NEW") == "a NEW b"
    with pytest.raises(ValueError, match="markers"):
        replace_block("no markers", "NEW")
