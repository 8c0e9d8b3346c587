"""cdk-nag (AwsSolutions) on every synth, and the one way to acknowledge a finding.

cdk-nag v3 is a CDK policy-validation plugin: `app.synth()` fails when any finding (error or warning) is not
acknowledged, and writes `validation-report.json` into the cloud assembly either way. An acknowledgment goes on
exactly one CloudFormation resource, with a written reason; `python -m stacks.nag cdk.out` prints the table of
acknowledgments that docs/infrastructure.md carries (a test keeps the two equal).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # reading a report (python -m stacks.nag) must not start the jsii runtime
    from aws_cdk import App
    from constructs import IConstruct

REPORT_FILE = "validation-report.json"
ACKNOWLEDGED_RULES_METADATA = "aws:cdk:acknowledged-rules"
# CDK matches acknowledgments to a plugin's findings by "<plugin>::<rule>"; an id without the namespace would be
# filtered by cdk-nag itself and never show in the validation report.
NAMESPACE = "AwsSolutions::"
# Long enough to say why, not just "not needed".
MIN_REASON_CHARS = 40


def enable_nag(app: App) -> None:
    """Run the AwsSolutions pack on every synth of `app`."""
    from aws_cdk import Validations
    from cdk_nag import AwsSolutionsChecks

    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(resource: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge finding `rule` (e.g. `AwsSolutions-IAM5[Resource::*]`) on one CloudFormation resource.

    Acknowledging an L2 construct or a stack would silence every resource below it, so only a `CfnResource`
    (an L2's `node.default_child`) is accepted.
    """
    from aws_cdk import Acknowledgment, CfnResource, Validations

    if not isinstance(resource, CfnResource):
        kind = type(resource).__name__
        raise TypeError(f"acknowledge {rule} on one CfnResource, not on {resource.node.path} ({kind})")
    if not rule.startswith("AwsSolutions-"):
        raise ValueError(f"rule {rule!r}: expected an AwsSolutions rule id")
    if len(reason.strip()) < MIN_REASON_CHARS:
        raise ValueError(f"the reason for {rule} on {resource.node.path} must explain it in {MIN_REASON_CHARS}+ chars")
    Validations.of(resource).acknowledge(Acknowledgment(id=NAMESPACE + rule, reason=" ".join(reason.split())))


@dataclass(frozen=True)
class Finding:
    rule: str
    path: str
    severity: str
    description: str
    reason: str | None = None
    acknowledged_at: str | None = None


def load_report(assembly_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(assembly_dir) / REPORT_FILE).read_text())


def _findings(report: dict[str, Any], key: str) -> list[Finding]:
    return [
        Finding(
            rule=violation["ruleName"],
            path=construct["constructPath"],
            severity=violation["severity"],
            description=violation["description"],
            reason=violation.get("reason"),
            acknowledged_at=violation.get("acknowledgedAt"),
        )
        for plugin in report["pluginReports"]
        for violation in plugin.get(key, [])
        for construct in violation["violatingConstructs"]
    ]


def declared_acknowledgments(assembly_dir: str | Path) -> list[tuple[str, str, str]]:
    """Every acknowledgment the app declared, as (construct path, rule, reason), from the assembly's metadata."""
    declared = []
    for metadata_file in sorted(Path(assembly_dir).glob("*.metadata.json")):
        for path, entries in json.loads(metadata_file.read_text()).items():
            for entry in entries:
                if entry["type"] == ACKNOWLEDGED_RULES_METADATA:
                    declared += [
                        (path.lstrip("/"), rule.removeprefix(NAMESPACE), why)
                        for rule, why in entry["data"].items()
                        if rule.startswith(NAMESPACE)
                    ]
    return sorted(declared)


def unacknowledged(report: dict[str, Any]) -> list[Finding]:
    return _findings(report, "violations")


def acknowledged(report: dict[str, Any]) -> list[Finding]:
    return sorted(_findings(report, "suppressedViolations"), key=lambda f: (f.path, f.rule))


def markdown_table(findings: list[Finding], stack_prefix: str) -> str:
    """The acknowledgments as a Markdown table; stack names lose their stage prefix (`recsys-dev-`)."""
    lines = ["| resource | rule | reason |", "| --- | --- | --- |"]
    for finding in findings:
        path = finding.path.removeprefix(stack_prefix).removesuffix("/Resource")
        rule = finding.rule.replace("|", "\\|")
        lines.append(f"| `{path}` | `{rule}` | {finding.reason} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m stacks.nag <cloud-assembly-dir> <stack-prefix, e.g. recsys-dev->", file=sys.stderr)
        return 2
    report = load_report(argv[0])
    print(markdown_table(acknowledged(report), argv[1]))
    return 1 if unacknowledged(report) else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
