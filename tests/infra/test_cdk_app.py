"""The CDK app as a whole: stages from context, env-agnostic stacks, stack layout."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App
from cdk_synth import STACKS, Synth

from stacks.platform import config_from_context


def test_every_stack_is_synthesized_per_stage_without_an_account_or_region(synth: Synth) -> None:
    manifest = json.loads((synth.outdir / "manifest.json").read_text())
    stacks = {
        name: artifact
        for name, artifact in manifest["artifacts"].items()
        if artifact["type"] == "aws:cloudformation:stack"
    }
    assert set(stacks) == {f"{synth.config.prefix}-{kind}" for kind in STACKS}
    for artifact in stacks.values():
        assert artifact["environment"] == "aws://unknown-account/unknown-region"
        assert artifact["properties"]["tags"] == {"project": "recsys", "stage": synth.config.stage}
        # prod stacks hold data: deleting them takes an explicit step.
        assert artifact["properties"]["terminationProtection"] is synth.config.retain_data


def test_stacks_deploy_in_dependency_order(dev: Synth) -> None:
    manifest = json.loads((dev.outdir / "manifest.json").read_text())["artifacts"]

    def depends(stack: str) -> set[str]:
        return {d for d in manifest[f"recsys-dev-{stack}"].get("dependencies", []) if not d.endswith(".assets")}

    assert depends("foundation") == set()
    assert depends("network") == {"recsys-dev-foundation"}
    assert depends("realtime") == {"recsys-dev-foundation", "recsys-dev-network", "recsys-dev-batch"}
    assert depends("batch") == {"recsys-dev-foundation"}


def test_stage_comes_from_context_and_defaults_to_dev() -> None:
    assert config_from_context(App(context={"stage": "prod"})).stage == "prod"
    assert config_from_context(App(context={})).stage == "dev"
    with pytest.raises(ValueError, match="unknown stage 'qa'"):
        config_from_context(App(context={"stage": "qa"}))


def test_alarm_emails_come_from_context() -> None:
    config = config_from_context(App(context={"alarm_emails": "a@example.com, b@example.com,"}))
    assert config.alarm_emails == ("a@example.com", "b@example.com")


def test_feature_flags_are_set_in_code_so_tests_and_cli_build_the_same_app(dev: Synth) -> None:
    # The access-logs bucket is granted to S3 log delivery by policy (the flag), not by a log-delivery ACL.
    for bucket in dev.resources("foundation", "AWS::S3::Bucket").values():
        assert "AccessControl" not in bucket["Properties"]


def test_cdk_json_runs_the_app_with_the_project_venv_and_defaults_to_dev(repo_root) -> None:
    cdk = json.loads((repo_root / "cdk.json").read_text())
    assert cdk["app"] == ".venv/bin/python app.py"
    assert cdk["context"]["stage"] == "dev"
    lock = json.loads((repo_root / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/aws-cdk"]["version"] == "2.1148.1"


def test_every_state_machine_is_traced_logged_and_encrypted_with_the_platform_key(synth: Synth) -> None:
    machines = {(kind, logical_id): machine["Properties"] for kind in STACKS
                for logical_id, machine in synth.resources(kind, "AWS::StepFunctions::StateMachine").items()}
    assert {kind for kind, _ in machines} == {"pipeline", "recommend", "monitoring"}
    for (kind, logical_id), machine in machines.items():
        assert machine["TracingConfiguration"] == {"Enabled": True}, logical_id
        assert machine["LoggingConfiguration"]["Level"] == "ALL", logical_id
        assert machine["LoggingConfiguration"]["IncludeExecutionData"] is False, logical_id
        assert machine["EncryptionConfiguration"]["Type"] == "CUSTOMER_MANAGED_KMS_KEY", logical_id
        assert synth.resolve_import(machine["EncryptionConfiguration"]["KmsKeyId"]) == synth.key_arn(), logical_id
        (destination,) = machine["LoggingConfiguration"]["Destinations"]
        log_group_id = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
        log_group = synth.resources(kind, "AWS::Logs::LogGroup")[log_group_id]["Properties"]
        assert synth.resolve_import(log_group["KmsKeyId"]) == synth.key_arn(), logical_id
