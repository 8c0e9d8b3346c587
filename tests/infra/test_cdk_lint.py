"""cfn-lint finds no error in any synthesized template, in either stage."""

from __future__ import annotations

import json

from cdk_synth import STACKS, Synth
from cfnlint.api import lint_by_config
from cfnlint.config import ManualArgs


def test_cfn_lint_reports_no_error_in_any_template(synth: Synth) -> None:
    templates = sorted(str(path) for path in synth.outdir.glob("*.template.json"))
    assert len(templates) == len(STACKS)
    matches = lint_by_config(ManualArgs(templates=templates, regions=[synth.config.region]))
    errors = [str(match) for match in matches if match.rule.id.startswith("E")]
    assert errors == []


def test_cfn_lint_does_report_errors(tmp_path) -> None:
    """The check above is only worth something if this API call really lints: a broken template must fail."""
    broken = tmp_path / "broken.template.json"
    queue = {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": "soon"}}
    broken.write_text(json.dumps({"Resources": {"Queue": queue}}))
    matches = lint_by_config(ManualArgs(templates=[str(broken)], regions=["us-east-1"]))
    assert any(match.rule.id.startswith("E") for match in matches)
