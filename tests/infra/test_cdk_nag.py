"""cdk-nag: no unacknowledged finding, every acknowledgment on one resource with a reason, synth fails otherwise."""

from __future__ import annotations

import re

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_sqs as sqs
from cdk_synth import Synth

from stacks import nag


def test_no_finding_is_left_unacknowledged(synth: Synth) -> None:
    report = nag.load_report(synth.outdir)
    assert nag.unacknowledged(report) == []


def test_every_acknowledgment_is_on_exactly_the_resource_it_concerns_and_says_why(synth: Synth) -> None:
    acknowledged = nag.acknowledged(nag.load_report(synth.outdir))
    assert acknowledged, "the platform has known, explained exceptions; an empty list means nag did not run"
    for finding in acknowledged:
        assert finding.acknowledged_at == finding.path, f"{finding.rule} acknowledged above {finding.path}"
        assert finding.path.endswith("/Resource")
        assert len(finding.reason or "") >= nag.MIN_REASON_CHARS


def test_no_acknowledgment_is_stale(synth: Synth) -> None:
    """Each declared acknowledgment matched a finding: an exception that no longer applies must be removed."""
    used = {(f.path, f.rule) for f in nag.acknowledged(nag.load_report(synth.outdir))}
    declared = {(path, rule) for path, rule, _ in nag.declared_acknowledgments(synth.outdir)}
    assert declared == used


def test_docs_list_every_acknowledgment_with_its_reason(dev: Synth, repo_root) -> None:
    docs = (repo_root / "docs" / "infrastructure.md").read_text()
    table = re.search(r"<!-- nag-acknowledgments:start -->\n(.*?)\n<!-- nag-acknowledgments:end -->", docs, re.S)
    assert table, "docs/infrastructure.md lost its acknowledgments table markers"
    expected = nag.markdown_table(nag.acknowledged(nag.load_report(dev.outdir)), f"{dev.config.prefix}-")
    assert table.group(1).strip() == expected, "regenerate it: python -m stacks.nag <cdk.out> recsys-dev-"


def test_synth_fails_on_an_unacknowledged_finding(tmp_path) -> None:
    app = App(outdir=str(tmp_path), builtin_cloud_formation_validation=False)
    sqs.Queue(Stack(app, "Insecure"), "Queue")  # no DLQ, no TLS-only policy
    nag.enable_nag(app)
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    rules = {finding.rule for finding in nag.unacknowledged(nag.load_report(tmp_path))}
    assert {"AwsSolutions-SQS3", "AwsSolutions-SQS4"} <= rules


def test_acknowledge_refuses_anything_but_one_resource_with_a_real_reason() -> None:
    stack = Stack(App(), "Stack")
    queue = sqs.Queue(stack, "Queue")
    reason = "a reason long enough to explain why this exception is acceptable"
    with pytest.raises(TypeError, match="one CfnResource"):
        nag.acknowledge(queue, "AwsSolutions-SQS3", reason)
    with pytest.raises(TypeError, match="one CfnResource"):
        nag.acknowledge(stack, "AwsSolutions-SQS3", reason)
    with pytest.raises(ValueError, match="must explain it"):
        nag.acknowledge(queue.node.default_child, "AwsSolutions-SQS3", "not needed")
    with pytest.raises(ValueError, match="AwsSolutions rule id"):
        nag.acknowledge(queue.node.default_child, "SQS3", reason)
