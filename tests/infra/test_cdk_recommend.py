"""RecommendStack: SigV4 REST API -> recommend Lambda in the VPC, least-privilege role, blender rules parameter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cdk_synth import Synth

from recsys.blender.config import DEFAULT_CONFIG, BlenderConfig
from recsys.config import RecommendApiConfig
from recsys.filters import FilterRegistry
from recsys.recommend.api import _filter_routes
from recsys.recommend.request import ROUTE_FIELDS
from recsys.recommend.wiring import parse_weights
from stacks.recommend import ROUTES


def _function(synth: Synth) -> tuple[str, dict[str, Any]]:
    name = synth.config.names.function("recommend")
    ((logical_id, function),) = [
        (i, f) for i, f in synth.resources("recommend", "AWS::Lambda::Function").items()
        if f["Properties"]["FunctionName"] == name
    ]
    return logical_id, function["Properties"]


def _statements(synth: Synth) -> list[dict[str, Any]]:
    role = _function(synth)[1]["Role"]["Fn::GetAtt"][0]
    (statements,) = [
        policy["Properties"]["PolicyDocument"]["Statement"]
        for policy in synth.resources("recommend", "AWS::IAM::Policy").values()
        if policy["Properties"]["Roles"] == [{"Ref": role}]
    ]
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def _joined(value: Any) -> str:
    if isinstance(value, str):
        return value
    parts = value["Fn::Join"][1]
    return "".join(part if isinstance(part, str) else "${" + part["Ref"] + "}" for part in parts)


def _resource_text(resource: Any) -> str:
    """An IAM resource as text: joins rendered with `${...}` placeholders, other references as JSON."""
    return _joined(resource) if isinstance(resource, str) or "Fn::Join" in resource else json.dumps(resource)


def _path(synth: Synth, resource_id: str) -> str:
    resources = synth.templates["recommend"]["Resources"]
    props = resources[resource_id]["Properties"]
    parent = props["ParentId"]
    prefix = _path(synth, parent["Ref"]) + "/" if "Ref" in parent else ""
    return prefix + props["PathPart"]


# --- API --------------------------------------------------------------------------------------------------------


def test_routes_are_exactly_the_handlers_routes() -> None:
    handler_routes = {path.lstrip("/") for _, path in _filter_routes(FilterRegistry())} | set(ROUTE_FIELDS)
    assert set(ROUTES) == handler_routes
    assert {"recommendations", "showcase", "ranking", "related", "popular", "trending"} <= set(ROUTES)


def test_every_route_is_a_sigv4_validated_post_proxied_to_the_recommend_lambda(synth: Synth) -> None:
    resources = synth.resources("recommend", "AWS::ApiGateway::Resource")
    assert sorted(_path(synth, i) for i in resources) == sorted(ROUTES)
    methods = synth.resources("recommend", "AWS::ApiGateway::Method")
    assert sorted(_path(synth, m["Properties"]["ResourceId"]["Ref"]) for m in methods.values()) == sorted(ROUTES)
    ((validator_id, validator),) = synth.resources("recommend", "AWS::ApiGateway::RequestValidator").items()
    assert validator["Properties"]["ValidateRequestBody"] is True
    function_id, _ = _function(synth)
    for method in methods.values():
        props = method["Properties"]
        assert props["HttpMethod"] == "POST" and props["AuthorizationType"] == "AWS_IAM"
        assert props["RequestValidatorId"] == {"Ref": validator_id}
        assert props["Integration"]["Type"] == "AWS_PROXY"
        assert {"Fn::GetAtt": [function_id, "Arn"]} in props["Integration"]["Uri"]["Fn::Join"][1]
    api = synth.one("recommend", "AWS::ApiGateway::RestApi")["Properties"]
    assert api["Name"] == synth.config.names.recommend_api


def test_stage_throttles_from_config_and_logs_encrypted_without_bodies(synth: Synth) -> None:
    settings = synth.config.recommend_api
    stage = synth.one("recommend", "AWS::ApiGateway::Stage")["Properties"]
    (method_settings,) = stage["MethodSettings"]
    assert method_settings["ThrottlingRateLimit"] == settings.throttle_rate_per_s
    assert method_settings["ThrottlingBurstLimit"] == settings.throttle_burst
    assert method_settings["DataTraceEnabled"] is False and stage["TracingEnabled"] is True
    access_logs = stage["AccessLogSetting"]["DestinationArn"]["Fn::GetAtt"][0]
    group = synth.templates["recommend"]["Resources"][access_logs]["Properties"]
    assert synth.resolve_import(group["KmsKeyId"]) == synth.key_arn()
    assert group["RetentionInDays"] == settings.function.log_retention_days


def test_one_api_gateway_account_role_for_the_whole_platform(synth: Synth) -> None:
    accounts = [kind for kind in synth.templates if synth.resources(kind, "AWS::ApiGateway::Account")]
    assert accounts == ["realtime"]
    manifest = json.loads((synth.outdir / "manifest.json").read_text())["artifacts"]
    dependencies = set(manifest[f"{synth.config.prefix}-recommend"]["dependencies"])
    # The account's log role exists before the recommend API's stage logs; the endpoint before it is scored on.
    for kind in ("realtime", "serving", "batch"):
        assert f"{synth.config.prefix}-{kind}" in dependencies


# --- Lambda -----------------------------------------------------------------------------------------------------


def test_lambda_runs_in_the_app_subnets_with_the_platform_security_group(synth: Synth) -> None:
    _, props = _function(synth)
    vpc_config = props["VpcConfig"]
    assert len(vpc_config["SubnetIds"]) == synth.config.network.max_azs
    for subnet in vpc_config["SubnetIds"]:
        tags = synth.templates["network"]["Resources"][synth.resolve_import(subnet)["Ref"]]["Properties"]["Tags"]
        assert {"Key": "aws-cdk:subnet-name", "Value": "app"} in tags
    (group,) = vpc_config["SecurityGroupIds"]
    group_id = synth.resolve_import(group)["Fn::GetAtt"][0]
    description = synth.templates["network"]["Resources"][group_id]["Properties"]["GroupDescription"]
    assert description.startswith("Platform Lambdas")  # the group MemoryDB admits
    assert props["MemorySize"] == synth.config.recommend_api.function.memory_mb
    assert props["Timeout"] == synth.config.recommend_api.function.timeout_s


def test_lambda_environment_is_what_the_recommend_wiring_reads(synth: Synth) -> None:
    names, serving = synth.config.names, synth.config.serving
    variables = _function(synth)[1]["Environment"]["Variables"]
    assert variables["ENDPOINT_NAME"] == names.endpoint
    assert variables["BLENDER_PARAMETER"] == names.blender_parameter
    assert variables["RECSYS_FEATURE_STORE"] == "sagemaker"
    assert variables["FIREHOSE_STREAM_NAME"] == names.firehose_stream
    assert _joined(variables["RECSYS_MODEL_URI"]) == (
        f"s3://{names.bucket('artifacts', '${AWS::AccountId}')}/models/live/champion/model.tar.gz"
    )
    # The API's sticky assignment splits users with the endpoint's own weights.
    assert dict(parse_weights(variables["RECOMMEND_VARIANT_WEIGHTS"])) == {n: v.weight for n, v in serving.variants}
    realtime = synth.templates["realtime"]["Resources"]
    (topic_id,) = [i for i, r in realtime.items() if r["Type"] == "AWS::SNS::Topic"]
    assert synth.resolve_import(variables["EVENTS_TOPIC_ARN"]) == {"Ref": topic_id}
    (secret_id,) = synth.resources("realtime", "AWS::SecretsManager::Secret")
    assert synth.resolve_import(variables["MEMORYDB_SECRET_ARN"]) == {"Ref": secret_id}
    (cluster_id,) = synth.resources("realtime", "AWS::MemoryDB::Cluster")
    endpoint = {"Fn::GetAtt": [cluster_id, "ClusterEndpoint.Address"]}
    assert synth.resolve_import(variables["MEMORYDB_ENDPOINT"]) == endpoint
    assert variables["MEMORYDB_TLS"] == "true" and variables["MEMORYDB_PORT"] == str(synth.config.memorydb.port)


def test_lambda_role_is_least_privilege(dev: Synth) -> None:
    names = dev.config.names
    statements = _statements(dev)
    resources: dict[str, list[str]] = {}
    for statement in statements:
        listed = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in _actions(statement):
            resources.setdefault(action, []).extend(_resource_text(r) for r in listed)
    def arn(service: str, resource: str) -> str:
        return f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}"

    assert resources["sagemaker:InvokeEndpoint"] == [arn("sagemaker", f"endpoint/{names.endpoint}")]
    groups = [arn("sagemaker", f"feature-group/{names.feature_group(entity)}") for entity in ("user", "item")]
    assert resources["sagemaker:GetRecord"] == groups and resources["sagemaker:BatchGetRecord"] == groups
    artifacts = names.bucket("artifacts", "${AWS::AccountId}")
    assert resources["s3:GetObject"] == [f"arn:${{AWS::Partition}}:s3:::{artifacts}/models/live/champion/model.tar.gz"]
    assert resources["firehose:PutRecordBatch"] == [arn("firehose", f"deliverystream/{names.firehose_stream}")]
    (parameter_id,) = dev.resources("recommend", "AWS::SSM::Parameter")
    assert len(resources["ssm:GetParameter"]) == 1 and parameter_id in resources["ssm:GetParameter"][0]
    by_action = {a: s for s in statements for a in _actions(s)}
    (secret_id,) = dev.resources("realtime", "AWS::SecretsManager::Secret")
    assert dev.resolve_import(by_action["secretsmanager:GetSecretValue"]["Resource"]) == {"Ref": secret_id}
    assert dev.resolve_import(by_action["kms:Decrypt"]["Resource"]) == dev.key_arn()
    assert set(resources) == {
        "logs:CreateLogStream", "logs:PutLogEvents", "xray:PutTraceSegments", "xray:PutTelemetryRecords",
        "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
        "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
        "sagemaker:InvokeEndpoint", "sagemaker:GetRecord", "sagemaker:BatchGetRecord", "ssm:GetParameter",
        "s3:GetObject", "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret", "sns:Publish",
        "firehose:PutRecord", "firehose:PutRecordBatch", "kms:Decrypt", "kms:GenerateDataKey",
    }
    wildcard = {a for s in statements if s["Resource"] == "*" for a in _actions(s)}
    assert all(action.startswith(("xray:", "ec2:")) for action in wildcard)


# --- blender rules ----------------------------------------------------------------------------------------------


def test_blender_rules_parameter_holds_the_default_rules(synth: Synth) -> None:
    parameter = synth.one("recommend", "AWS::SSM::Parameter")["Properties"]
    assert parameter["Name"] == synth.config.names.blender_parameter
    assert parameter["Type"] == "String" and parameter["Tier"] == "Standard"
    assert BlenderConfig.from_json(parameter["Value"]) == DEFAULT_CONFIG
    assert len(parameter["Value"].encode()) <= 4096  # the Standard tier's limit


# --- bundle -----------------------------------------------------------------------------------------------------


def _image_asset_dir(synth: Synth, function_id: str) -> Path:
    """The staged build context of a container-image function (what `cdk deploy` hands to `docker build`)."""
    metadata = json.loads((synth.outdir / f"{synth.config.prefix}-recommend.assets.json").read_text())
    image = synth.templates["recommend"]["Resources"][function_id]["Properties"]["Code"]["ImageUri"]
    tag = image["Fn::Sub"].rsplit(":", 1)[1]
    return synth.outdir / metadata["dockerImages"][tag]["source"]["directory"]


def _pinned(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            assert "==" in line, f"{path}: {line!r} is not pinned"
            names.add(line.split("==", 1)[0].lower().replace("_", "-"))
    return names


def test_both_recommend_functions_run_from_one_arm64_image_with_their_own_command(dev: Synth) -> None:
    commands = {}
    for function_id, function in dev.resources("recommend", "AWS::Lambda::Function").items():
        props = function["Properties"]
        assert props["PackageType"] == "Image" and props["Architectures"] == ["arm64"]
        assert "Runtime" not in props and "Handler" not in props
        commands[props["FunctionName"]] = props["ImageConfig"]["Command"]
        context = _image_asset_dir(dev, function_id)
        assert (context / "lambdas/recommend/Dockerfile").is_file() and (context / "recsys/recommend").is_dir()
        assert not (context / "node_modules").exists() and not (context / ".venv").exists()
        # the image compiles the native decoder for its own Python: the host's build is not staged
        assert (context / "recsys/features/_decode.c").is_file() and not list(context.rglob("*.so"))
    names = dev.config.names
    assert commands == {
        names.function("recommend"): ["lambdas.recommend.handler.handler"],
        names.function("batch_recommendations"): ["lambdas.batch_recommendations.handler.handler"],
    }


# Imported only because the dev environment happens to have them; each library falls back without them.
OPTIONAL_IMPORTS = {
    "pyarrow": "pandas.compat probes it",
    "hiredis": "redis-py's faster parser when present",
    "cryptography": "redis.utils probes it",
    "psutil": "joblib's loky backend probes it",
    "certifi": "botocore uses it for CA bundles when present",
    "charset-normalizer": "numpy.f2py probes it",
}


def test_the_image_installs_every_distribution_the_handlers_import(repo_root: Path) -> None:
    """Import both handlers in a fresh interpreter and map each module they load to its distribution: every one
    must be pinned in a requirements file the Dockerfile installs, or be a dependency pip resolves for those."""
    dockerfile = (repo_root / "lambdas/recommend/Dockerfile").read_text()
    pinned: set[str] = set()
    for requirements in ("requirements.txt", "containers/inference/requirements.txt"):
        assert f"COPY {requirements} " in dockerfile
        pinned |= _pinned(repo_root / requirements)
    script = (
        "import sys; startup = set(sys.modules)\n"
        "import importlib, importlib.metadata as md, json, re\n"
        "importlib.import_module('lambdas.recommend.handler')\n"
        "importlib.import_module('lambdas.batch_recommendations.handler')\n"
        "owners = md.packages_distributions()\n"
        "loaded = {m.split('.')[0] for m in set(sys.modules) - startup}\n"
        "norm = lambda n: re.split(r'[\\s\\[=<>!~;(]', n, maxsplit=1)[0].lower().replace('_', '-')\n"
        "closure, todo = set(), list(json.loads(sys.argv[1]))\n"
        "while todo:\n"
        "    name = todo.pop()\n"
        "    if name in closure: continue\n"
        "    closure.add(name)\n"
        "    try: requires = md.requires(name) or []\n"
        "    except md.PackageNotFoundError: continue  # a dependency for another platform or Python\n"
        "    todo += [norm(r) for r in requires if 'extra ==' not in r]\n"
        "imported = {norm(d) for t in loaded for d in owners.get(t, [])}\n"
        "print(json.dumps({'imported': sorted(imported), 'closure': sorted(closure)}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script, json.dumps(sorted(pinned))], capture_output=True,
                            text=True, cwd=repo_root,
                            env={**os.environ, "AWS_REGION": "us-east-1", "RECSYS_STAGE": "dev"}, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.splitlines()[-1])
    imported, installed = set(found["imported"]), set(found["closure"])
    missing = imported - installed - set(OPTIONAL_IMPORTS)
    assert not missing, f"the recommend image would lack {sorted(missing)}"
    assert {"numpy", "scipy", "pandas", "scikit-learn", "redis", "aws-lambda-powertools"} <= imported


def test_batch_recommendations_run_from_a_state_machine_with_prefix_scoped_s3(dev: Synth) -> None:
    names, settings = dev.config.names, dev.config.recommend_api
    batch_name = names.function("batch_recommendations")
    ((function_id, function),) = [
        (i, f) for i, f in dev.resources("recommend", "AWS::Lambda::Function").items()
        if f["Properties"]["FunctionName"] == batch_name
    ]
    props = function["Properties"]
    assert props["Timeout"] == settings.batch_function.timeout_s
    assert "EVENTS_TOPIC_ARN" not in props["Environment"]["Variables"]  # nothing is shown: no exposures
    role = props["Role"]["Fn::GetAtt"][0]
    (statements,) = [p["Properties"]["PolicyDocument"]["Statement"]
                     for p in dev.resources("recommend", "AWS::IAM::Policy").values()
                     if p["Properties"]["Roles"] == [{"Ref": role}]]
    by_action = {a: s for s in statements for a in _actions(s)}
    artifacts = names.bucket("artifacts", "${AWS::AccountId}")
    assert _joined(by_action["s3:PutObject"]["Resource"]) == (
        f"arn:${{AWS::Partition}}:s3:::{artifacts}/{settings.batch_prefix}*")
    assert "sns:Publish" not in by_action and "firehose:PutRecordBatch" not in by_action
    machine = dev.one("recommend", "AWS::StepFunctions::StateMachine")["Properties"]
    assert machine["StateMachineName"] == f"{dev.config.prefix}-batch-recommendations"
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert function_id in json.dumps(machine["DefinitionString"])


def test_recommend_api_config_rejects_a_rate_above_the_burst() -> None:
    with pytest.raises(ValueError, match="recommend_api.throttle_rate_per_s"):
        RecommendApiConfig(throttle_rate_per_s=100, throttle_burst=50)
    with pytest.raises(ValueError, match="recommend_api.throttle_rate_per_s"):
        RecommendApiConfig(throttle_rate_per_s=0)
