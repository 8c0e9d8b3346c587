"""PythonLambda and its local (Docker-free) bundling."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_kms as kms
from aws_cdk.assertions import Template
from cdk_synth import Synth

from recsys.config import LambdaConfig, load_stage
from stacks.constructs import bundling
from stacks.constructs.python_lambda import PythonLambda

HANDLERS = ["feature_writer", "event_tracker"]
# What the Lambda Python runtime provides besides the standard library (boto3 and what it needs).
RUNTIME_PACKAGES = ["boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py"]


def _function(synth: Synth, handler: str) -> dict[str, Any]:
    (function,) = [
        f
        for f in synth.resources("realtime", "AWS::Lambda::Function").values()
        if f["Properties"]["FunctionName"] == synth.config.names.function(handler)
    ]
    return function


@pytest.mark.parametrize("handler", HANDLERS)
def test_function_runtime_tracing_and_powertools_settings(dev: Synth, handler: str) -> None:
    props = _function(dev, handler)["Properties"]
    assert props["Runtime"] == "python3.12" and props["Architectures"] == ["arm64"]
    assert props["Handler"] == f"lambdas.{handler}.handler.handler"
    assert props["TracingConfig"] == {"Mode": "Active"}
    variables = props["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == dev.config.names.function(handler)
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == dev.config.names.metrics_namespace
    assert dev.resolve_import(props["KmsKeyArn"]) == dev.key_arn()
    assert "ReservedConcurrentExecutions" not in props  # None in the config: not reserved


@pytest.mark.parametrize("handler", HANDLERS)
def test_function_logs_to_its_own_encrypted_log_group_with_retention(dev: Synth, handler: str) -> None:
    props = _function(dev, handler)["Properties"]
    log_group_id = props["LoggingConfig"]["LogGroup"]["Ref"]
    log_group = dev.templates["realtime"]["Resources"][log_group_id]["Properties"]
    assert log_group["LogGroupName"] == f"/aws/lambda/{dev.config.names.function(handler)}"
    assert log_group["RetentionInDays"] == getattr(dev.config, handler).function.log_retention_days
    assert dev.resolve_import(log_group["KmsKeyId"]) == dev.key_arn()


@pytest.mark.parametrize("handler", HANDLERS)
def test_bundle_holds_recsys_the_handler_and_pinned_dependencies_but_not_boto3(dev: Synth, handler: str) -> None:
    bundle = dev.asset_dir(_function(dev, handler))
    assert (bundle / "recsys" / "config.py").is_file()
    assert (bundle / "lambdas" / handler / "handler.py").is_file()
    assert sorted(p.name for p in (bundle / "lambdas").iterdir() if p.is_dir()) == [handler]
    for package in ("aws_lambda_powertools", "redis", "aws_xray_sdk"):
        assert (bundle / package).is_dir(), package
    assert (bundle / "redis-8.1.0.dist-info").is_dir(), "the pin of requirements.txt"
    assert not (bundle / "boto3").exists() and not (bundle / "botocore").exists()
    assert not list(bundle.rglob("__pycache__"))


@pytest.mark.parametrize("handler", HANDLERS)
def test_bundle_imports_its_handler_with_nothing_but_the_lambda_runtime(dev: Synth, handler: str, tmp_path) -> None:
    """What the Lambda runtime will do at cold start: import the handler from the bundle alone."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    site_packages = Path(bundling.__file__).parents[2] / ".venv" / "lib"
    (boto3_init,) = site_packages.glob("python3*/site-packages/boto3/__init__.py")
    for package in RUNTIME_PACKAGES:
        (runtime / package).symlink_to(boto3_init.parents[1] / package)
    bundle = dev.asset_dir(_function(dev, handler))
    script = f"import importlib; importlib.import_module('lambdas.{handler}.handler'); print('imported')"
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {[str(bundle), str(runtime)]!r}; {script}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "AWS_REGION": "us-east-1", "RECSYS_STAGE": "dev"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "imported"


def test_bundled_requirements_leave_out_what_the_runtime_provides(tmp_path) -> None:
    requirements = tmp_path / "requirements.txt"
    lines = ["# comment", "boto3==1.0", "Botocore==1.0  # pinned", "redis==8.1.0", "aws_lambda_powertools==3.0", ""]
    requirements.write_text("\n".join(lines))
    assert bundling.bundled_requirements(requirements) == ["redis==8.1.0", "aws_lambda_powertools==3.0"]


def _fake_repo(root: Path) -> Path:
    (root / "recsys").mkdir(parents=True)
    (root / "recsys" / "core.py").write_text("X = 1\n")
    (root / "lambdas" / "demo").mkdir(parents=True)
    (root / "lambdas" / "demo" / "handler.py").write_text("def handler(event, context):\n    return event\n")
    (root / "requirements.txt").write_text("redis==8.1.0\n")
    return root


def test_bundle_hash_changes_exactly_when_the_bundle_would(tmp_path) -> None:
    repo = _fake_repo(tmp_path / "repo")
    before = bundling.bundle_hash("demo", repo)
    (repo / "recsys" / "__pycache__").mkdir()
    (repo / "recsys" / "__pycache__" / "core.cpython-311.pyc").write_bytes(b"\0")
    assert bundling.bundle_hash("demo", repo) == before, "caches are not part of the bundle"
    (repo / "lambdas" / "demo" / "handler.py").write_text("def handler(event, context):\n    return None\n")
    after_handler = bundling.bundle_hash("demo", repo)
    assert after_handler != before
    bundling._shared_hash.cache_clear()
    (repo / "requirements.txt").write_text("redis==8.0.0\n")
    assert bundling.bundle_hash("demo", repo) != after_handler


def test_dependencies_are_installed_once_then_reused_from_the_cache(tmp_path, monkeypatch) -> None:
    repo = _fake_repo(tmp_path / "repo")
    cached = repo / "build" / "lambda-deps" / bundling.dependencies_key(repo)
    (cached / "redis").mkdir(parents=True)

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("pip must not run when the dependency set is cached")

    monkeypatch.setattr(bundling.subprocess, "run", no_network)
    assert bundling.dependencies_dir(repo) == cached


def test_local_bundler_writes_the_repo_layout_without_docker(tmp_path) -> None:
    repo = _fake_repo(tmp_path / "repo")
    deps = repo / "build" / "lambda-deps" / bundling.dependencies_key(repo)
    (deps / "redis").mkdir(parents=True)
    (deps / "redis" / "__init__.py").write_text("")
    out = tmp_path / "out"
    out.mkdir()
    assert bundling.LocalPythonBundler("demo", repo).try_bundle(str(out)) is True
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["lambdas/demo/handler.py", "recsys/core.py", "redis/__init__.py"]


def test_a_missing_handler_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="Lambda handler 'nope'"):
        bundling.python_code("nope", _fake_repo(tmp_path / "repo"))


def test_reserved_concurrency_and_no_vpc_when_not_asked() -> None:
    stack = Stack(App(builtin_cloud_formation_validation=False), "Probe")
    PythonLambda(
        stack,
        "Probe",
        config=load_stage("dev"),
        handler="feature_writer",
        settings=LambdaConfig(reserved_concurrency=5, log_retention_days=14),
        key=kms.Key(stack, "Key"),
        description="probe",
    )
    template = Template.from_stack(stack).to_json()
    (function,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"]
    assert function["Properties"]["ReservedConcurrentExecutions"] == 5
    assert "VpcConfig" not in function["Properties"]
    (log_group,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::Logs::LogGroup"]
    assert log_group["Properties"]["RetentionInDays"] == 14
    (policy,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::IAM::Policy"]
    actions = {a for s in policy["Properties"]["PolicyDocument"]["Statement"] for a in s["Action"]}
    assert not any(action.startswith("ec2:") for action in actions)


def test_an_unsupported_log_retention_is_a_config_error() -> None:
    stack = Stack(App(builtin_cloud_formation_validation=False), "Probe")
    with pytest.raises(ValueError, match=r"feature_writer.log_retention_days: 10 days"):
        PythonLambda(
            stack,
            "Probe",
            config=load_stage("dev"),
            handler="feature_writer",
            settings=LambdaConfig(log_retention_days=10),
            key=kms.Key(stack, "Key"),
            description="probe",
        )
