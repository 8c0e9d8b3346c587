"""ServingStack: inference image, one unnamed Model per variant, champion/challenger EndpointConfig with data
capture, the named endpoint, per-variant autoscaling and alarms."""

from __future__ import annotations

import fnmatch
import json
import re
import tarfile
from dataclasses import replace
from typing import Any

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from cdk_synth import Synth

from recsys.config import CHALLENGER_VARIANT, CHAMPION_VARIANT, ServingConfig, VariantConfig, load_stage
from recsys.pipeline.run import plan_run
from stacks.constructs.ranker_endpoint import (
    DOCKERFILE,
    INVOCATIONS_PER_INSTANCE,
    SCALABLE_DIMENSION,
    TRAINED_MODELS,
    RankerEndpoint,
)

VARIANTS = (CHAMPION_VARIANT, CHALLENGER_VARIANT)


def _endpoint_config(synth: Synth) -> dict[str, Any]:
    return synth.one("serving", "AWS::SageMaker::EndpointConfig")["Properties"]


def _variants(synth: Synth) -> dict[str, dict[str, Any]]:
    return {v["VariantName"]: v for v in _endpoint_config(synth)["ProductionVariants"]}


def _model_of(synth: Synth, variant: str) -> dict[str, Any]:
    logical_id = _variants(synth)[variant]["ModelName"]["Fn::GetAtt"][0]
    return synth.templates["serving"]["Resources"][logical_id]["Properties"]


def _joined(value: Any) -> str:
    """A `Fn::Join` of literals and pseudo parameters, as one string with `${...}` placeholders."""
    if isinstance(value, str):
        return value
    parts = value["Fn::Join"][1]
    return "".join(part if isinstance(part, str) else "${" + part["Ref"] + "}" for part in parts)


def _artifacts(synth: Synth, key: str) -> str:
    return f"s3://{synth.config.names.bucket('artifacts', '${AWS::AccountId}')}/{key}"


def _role_statements(synth: Synth) -> list[dict[str, Any]]:
    role_id = _model_of(synth, CHAMPION_VARIANT)["ExecutionRoleArn"]["Fn::GetAtt"][0]
    (statements,) = [
        policy["Properties"]["PolicyDocument"]["Statement"]
        for policy in synth.resources("serving", "AWS::IAM::Policy").values()
        if policy["Properties"]["Roles"] == [{"Ref": role_id}]
    ]
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


# --- variants and models -----------------------------------------------------------------------------------------


def test_endpoint_config_has_the_stable_champion_and_challenger_variants_from_config(synth: Synth) -> None:
    variants = _variants(synth)
    assert list(variants) == list(VARIANTS)
    for name, settings in synth.config.serving.variants:
        variant = variants[name]
        assert variant["InitialVariantWeight"] == settings.weight
        assert variant["InstanceType"] == settings.instance_type
        assert variant["InitialInstanceCount"] == settings.initial_instance_count


def test_prod_sends_most_traffic_to_the_champion(prod: Synth) -> None:
    variants = _variants(prod)
    assert variants[CHAMPION_VARIANT]["InitialVariantWeight"] > variants[CHALLENGER_VARIANT]["InitialVariantWeight"]
    assert variants[CHAMPION_VARIANT]["InitialInstanceCount"] >= 2  # one instance per AZ at least


def test_each_variant_has_its_own_unnamed_model_in_the_vpc_without_network(synth: Synth) -> None:
    models = synth.resources("serving", "AWS::SageMaker::Model")
    assert len(models) == 2
    assert {_variants(synth)[v]["ModelName"]["Fn::GetAtt"][0] for v in VARIANTS} == set(models)
    for model in models.values():
        props = model["Properties"]
        # A fixed name would make every replacement fail with "already exists".
        assert "ModelName" not in props
        assert props["EnableNetworkIsolation"] is True
        subnets = props["VpcConfig"]["Subnets"]
        assert len(subnets) == synth.config.network.max_azs
        for subnet in subnets:
            tags = synth.templates["network"]["Resources"][synth.resolve_import(subnet)["Ref"]]["Properties"]["Tags"]
            assert {"Key": "aws-cdk:subnet-name", "Value": "app"} in tags


def test_each_variant_serves_its_live_model_and_ranker(synth: Synth) -> None:
    for name, settings in synth.config.serving.variants:
        container = _model_of(synth, name)["PrimaryContainer"]
        assert _joined(container["ModelDataUrl"]) == _artifacts(synth, f"models/live/{name}/model.tar.gz")
        assert container["Environment"].get("RECSYS_RANKER") == settings.ranker
        assert container["Environment"]["RECSYS_MAX_CANDIDATES"] == str(synth.config.serving.max_candidates)
    assert _model_of(synth, CHALLENGER_VARIANT)["PrimaryContainer"]["Environment"]["RECSYS_RANKER"] == "rf"


def test_models_run_the_inference_image_published_to_the_bootstrap_repository(dev: Synth) -> None:
    assets = json.loads((dev.outdir / "recsys-dev-serving.assets.json").read_text())["dockerImages"]
    ((asset_hash, asset),) = assets.items()
    assert asset["source"]["dockerFile"] == DOCKERFILE
    assert asset["source"]["platform"] == "linux/amd64"  # ml.c5 instances
    (destination,) = asset["destinations"].values()
    image = _model_of(dev, CHAMPION_VARIANT)["PrimaryContainer"]["Image"]["Fn::Sub"]
    assert image.endswith(f"/{destination['repositoryName']}:{asset_hash}")
    assert _model_of(dev, CHALLENGER_VARIANT)["PrimaryContainer"]["Image"]["Fn::Sub"] == image


def test_image_context_holds_exactly_what_the_dockerfile_copies(dev: Synth, repo_root) -> None:
    assets = json.loads((dev.outdir / "recsys-dev-serving.assets.json").read_text())["dockerImages"]
    (asset,) = assets.values()
    context = dev.outdir / asset["source"]["directory"]
    dockerfile = (repo_root / DOCKERFILE).read_text()
    sources = [
        source
        for line in re.findall(r"^COPY\s+(.+)$", dockerfile, re.M)
        for source in line.split()[:-1]
        if not source.startswith("--")
    ]
    assert "recsys/" in sources
    for source in sources:
        assert (context / source).exists(), f"{source} is copied by the Dockerfile but not staged"
    staged = {path.relative_to(context).parts[0] for path in context.iterdir()}
    assert staged == {"recsys", "containers"}
    assert not list(context.rglob("__pycache__"))
    assert (context / "recsys" / "ranking" / "bundle.py").is_file()


def test_dockerfile_runs_as_a_non_root_user_from_a_pinned_slim_base(repo_root) -> None:
    dockerfile = (repo_root / DOCKERFILE).read_text()
    (base,) = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r'^ENTRYPOINT \["serve"\]', dockerfile, re.M)


def test_scan_on_push_is_turned_on_for_the_repository_the_image_goes_to(dev: Synth) -> None:
    (resource,) = [r for r in dev.resources("serving", "Custom::AWS").values()]
    for event in ("Create", "Update"):
        parts = resource["Properties"][event]["Fn::Join"][1]
        call = "".join(part if isinstance(part, str) else "<repository>" for part in parts)
        assert json.loads(call)["action"] == "putImageScanningConfiguration"
        assert json.loads(call)["parameters"]["imageScanningConfiguration"] == {"scanOnPush": True}
        repositories = {part["Fn::Sub"] for part in parts if not isinstance(part, str)}
        assets = json.loads((dev.outdir / "recsys-dev-serving.assets.json").read_text())["dockerImages"]
        (destination,) = next(iter(assets.values()))["destinations"].values()
        assert repositories == {destination["repositoryName"]}
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in dev.resources("serving", "AWS::IAM::Policy").values()
        if "ScanOnPush" in p["Properties"]["PolicyName"]
    ]
    assert [s["Action"] for s in policy] == ["ecr:PutImageScanningConfiguration"]
    # The AwsCustomResource singleton's function (CDK's fixed logical id prefix), not the bootstrap model's.
    (provider,) = [f for i, f in dev.resources("serving", "AWS::Lambda::Function").items()
                   if i.startswith("AWS679f53fac002430cb0da5b7982bd2287")]
    logs = dev.templates["serving"]["Resources"][provider["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]]
    assert dev.resolve_import(logs["Properties"]["KmsKeyId"]) == dev.key_arn()


# --- the first deploy ------------------------------------------------------------------------------------------


def test_the_first_deploy_needs_no_hand_step(synth: Synth) -> None:
    """Every model object the endpoint loads when it is created is put there by the deploy itself: the bootstrap
    model, shipped as an asset of this assembly, is copied to each empty live key before the endpoint exists."""
    ((seed_id, seed),) = synth.resources("serving", "Custom::SeedLiveModels").items()
    (endpoint,) = synth.resources("serving", "AWS::SageMaker::Endpoint").values()
    assert seed_id in endpoint["DependsOn"]
    props = seed["Properties"]
    loaded = {_joined(_model_of(synth, name)["PrimaryContainer"]["ModelDataUrl"]) for name in VARIANTS}
    bucket = synth.config.names.bucket("artifacts", "${AWS::AccountId}")
    assert _joined(props["Bucket"]) == bucket
    assert {f"s3://{bucket}/{key}" for key in props["Keys"]} == loaded
    files = json.loads((synth.outdir / f"{synth.config.prefix}-serving.assets.json").read_text())["files"]
    (asset,) = [a for asset_hash, a in files.items() if props["SourceKey"].startswith(asset_hash)]
    archive = synth.outdir / asset["source"]["path"]
    with tarfile.open(archive) as tar:
        assert json.load(tar.extractfile("bundle.json"))["metrics"] == {"bootstrap": True}
    # The seeding function may read the asset object and write the live keys, nothing else of either bucket.
    function_role = {f["Properties"]["Role"]["Fn::GetAtt"][0] for i, f in
                     synth.resources("serving", "AWS::Lambda::Function").items() if "SeedFunction" in i}
    (statements,) = [p["Properties"]["PolicyDocument"]["Statement"] for p in
                     synth.resources("serving", "AWS::IAM::Policy").values()
                     if p["Properties"]["Roles"] == [{"Ref": role} for role in function_role]]
    s3_statements = [st for st in statements if any(a.startswith("s3:") for a in _actions(st))]
    resources_of = {a: st["Resource"] for st in s3_statements for a in _actions(st)}
    assert set(resources_of) == {"s3:GetObject", "s3:PutObject", "s3:ListBucket"}
    assert "ListBucket" not in json.dumps([st for st in s3_statements if "Condition" not in st])


# --- endpoint and data capture -----------------------------------------------------------------------------------


def test_endpoint_has_the_shared_name_and_the_stacks_config(synth: Synth) -> None:
    endpoint = synth.one("serving", "AWS::SageMaker::Endpoint")["Properties"]
    assert endpoint["EndpointName"] == synth.config.names.endpoint
    (config_id,) = synth.resources("serving", "AWS::SageMaker::EndpointConfig")
    assert endpoint["EndpointConfigName"] == {"Fn::GetAtt": [config_id, "EndpointConfigName"]}
    assert "EndpointConfigName" not in _endpoint_config(synth)  # unnamed: replaced, never edited in place


def test_data_capture_goes_to_the_artifacts_bucket_encrypted_with_the_platform_key(synth: Synth) -> None:
    config = _endpoint_config(synth)
    capture = config["DataCaptureConfig"]
    assert capture["EnableCapture"] is True
    assert capture["InitialSamplingPercentage"] == synth.config.serving.data_capture_percent
    assert _joined(capture["DestinationS3Uri"]) == _artifacts(synth, "data-capture")
    assert synth.resolve_import(capture["KmsKeyId"]) == synth.key_arn()
    assert sorted(option["CaptureMode"] for option in capture["CaptureOptions"]) == ["Input", "Output"]
    # The instances' storage volumes too.
    assert synth.resolve_import(config["KmsKeyId"]) == synth.key_arn()


def test_container_logs_go_to_a_precreated_encrypted_log_group(synth: Synth) -> None:
    name = f"/aws/sagemaker/Endpoints/{synth.config.names.endpoint}"
    ((group_id, group),) = [
        (i, g) for i, g in synth.resources("serving", "AWS::Logs::LogGroup").items()
        if g["Properties"].get("LogGroupName") == name
    ]
    assert synth.resolve_import(group["Properties"]["KmsKeyId"]) == synth.key_arn()
    assert group["Properties"]["RetentionInDays"] == synth.config.serving.log_retention_days
    (endpoint,) = synth.resources("serving", "AWS::SageMaker::Endpoint").values()
    assert group_id in endpoint["DependsOn"]


# --- autoscaling ------------------------------------------------------------------------------------------------


def test_each_variant_scales_on_invocations_per_instance_within_its_bounds(synth: Synth) -> None:
    targets = synth.resources("serving", "AWS::ApplicationAutoScaling::ScalableTarget")
    policies = synth.resources("serving", "AWS::ApplicationAutoScaling::ScalingPolicy")
    (endpoint_id,) = synth.resources("serving", "AWS::SageMaker::Endpoint")
    by_variant = {}
    for target_id, target in targets.items():
        props = target["Properties"]
        parts = props["ResourceId"]["Fn::Join"][1]
        assert parts[0] == "endpoint/" and parts[1] == {"Fn::GetAtt": [endpoint_id, "EndpointName"]}
        by_variant[parts[2].removeprefix("/variant/")] = (target_id, props)
    assert set(by_variant) == set(VARIANTS)
    for name, settings in synth.config.serving.variants:
        target_id, props = by_variant[name]
        assert props["ServiceNamespace"] == "sagemaker" and props["ScalableDimension"] == SCALABLE_DIMENSION
        assert (props["MinCapacity"], props["MaxCapacity"]) == (settings.min_instances, settings.max_instances)
        assert "RoleARN" not in props  # the service-linked role
        (policy,) = [
            p["Properties"] for p in policies.values() if p["Properties"]["ScalingTargetId"] == {"Ref": target_id}
        ]
        assert policy["PolicyType"] == "TargetTrackingScaling"
        tracking = policy["TargetTrackingScalingPolicyConfiguration"]
        assert tracking["PredefinedMetricSpecification"] == {"PredefinedMetricType": INVOCATIONS_PER_INSTANCE}
        assert tracking["TargetValue"] == settings.target_invocations_per_instance
        assert tracking["ScaleInCooldown"] == settings.scale_in_cooldown_s
        assert tracking["ScaleOutCooldown"] == settings.scale_out_cooldown_s


# --- alarms -----------------------------------------------------------------------------------------------------


def _alarms(synth: Synth, variant: str) -> dict[str, dict[str, Any]]:
    return {
        alarm["Properties"]["MetricName"] + ":" + alarm["Properties"]["ComparisonOperator"]: alarm["Properties"]
        for alarm in synth.resources("serving", "AWS::CloudWatch::Alarm").values()
        if {"Name": "VariantName", "Value": variant} in alarm["Properties"]["Dimensions"]
    }


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_variant_alarms_on_5xx_p99_latency_and_instance_count(synth: Synth, variant: str) -> None:
    settings = dict(synth.config.serving.variants)[variant]
    thresholds = synth.config.serving.alarms
    alarms = _alarms(synth, variant)
    errors = alarms["Invocation5XXErrors:GreaterThanOrEqualToThreshold"]
    assert (errors["Namespace"], errors["Statistic"]) == ("AWS/SageMaker", "Sum")
    assert errors["Threshold"] == thresholds.errors_5xx
    latency = alarms["ModelLatency:GreaterThanThreshold"]
    assert latency["ExtendedStatistic"] == "p99"
    assert latency["Threshold"] == thresholds.model_latency_p99_ms * 1000  # microseconds
    below = alarms["CPUUtilization:LessThanThreshold"]
    at_max = alarms["CPUUtilization:GreaterThanOrEqualToThreshold"]
    for alarm in (below, at_max):
        assert alarm["Namespace"] == "/aws/sagemaker/Endpoints"
        assert (alarm["Statistic"], alarm["Period"]) == ("SampleCount", 60)
    assert below["Threshold"] == settings.min_instances and below["TreatMissingData"] == "breaching"
    assert at_max["Threshold"] == settings.max_instances
    (topic_id,) = synth.resources("foundation", "AWS::SNS::Topic")
    for alarm in alarms.values():
        assert {"Name": "EndpointName", "Value": synth.config.names.endpoint} in alarm["Dimensions"]
        assert [synth.resolve_import(a) for a in alarm["AlarmActions"]] == [{"Ref": topic_id}]
        assert [synth.resolve_import(a) for a in alarm["OKActions"]] == [{"Ref": topic_id}]
        assert "Runbook:" in alarm["AlarmDescription"]
        assert alarm["AlarmName"].startswith(f"{synth.config.names.endpoint}-{variant}-")
    assert len(alarms) == 4


# --- IAM --------------------------------------------------------------------------------------------------------


def test_model_execution_role_is_least_privilege(dev: Synth) -> None:
    statements = _role_statements(dev)
    by_action = {action: statement for statement in statements for action in _actions(statement)}
    bucket = "arn:${AWS::Partition}:s3:::" + dev.config.names.bucket("artifacts", "${AWS::AccountId}")
    assert [_joined(r) for r in by_action["s3:GetObject"]["Resource"]] == [
        f"{bucket}/models/*", f"{bucket}/pipeline/*/model/*"
    ]
    assert _joined(by_action["s3:PutObject"]["Resource"]).endswith("/data-capture/*")
    assert not any(a.startswith("s3:") for a in by_action if a not in ("s3:GetObject", "s3:PutObject"))
    assert dev.resolve_import(by_action["kms:Decrypt"]["Resource"]) == dev.key_arn()
    assert {a for a in by_action if a.startswith("kms:")} == {"kms:Decrypt", "kms:GenerateDataKey"}
    assert "repository/" in json.dumps(by_action["ecr:BatchGetImage"]["Resource"])
    assert by_action["cloudwatch:PutMetricData"]["Condition"] == {
        "StringLike": {"cloudwatch:namespace": "/aws/sagemaker/*"}
    }
    assert not any("*" in action for action in by_action)
    wildcard = {a for s in statements if s["Resource"] == "*" for a in _actions(s)}
    assert wildcard and all(a.startswith("ec2:") or a in ("ecr:GetAuthorizationToken", "cloudwatch:PutMetricData")
                            for a in wildcard)


# --- config -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (dict(challenger=VariantConfig(instance_type="ml.m5d.large")), "serving.challenger.instance_type"),
        (dict(champion=VariantConfig(instance_type="c5.large")), "serving.champion.instance_type"),
        (dict(champion=VariantConfig(min_instances=3, max_instances=2)), "serving.champion"),
        (dict(champion=VariantConfig(initial_instance_count=5, max_instances=4)), "serving.champion"),
        (dict(challenger=VariantConfig(weight=-1)), "serving.challenger.weight"),
        (dict(champion=VariantConfig(weight=0), challenger=VariantConfig(weight=0)), "weight"),
        (dict(champion=VariantConfig(instance_type="ml.c7g.large")), "serving.challenger.instance_type"),
        (dict(data_capture_percent=0), "serving.data_capture_percent"),
        (dict(model_prefix="/models/"), "serving.model_prefix"),
        (dict(champion=VariantConfig(target_invocations_per_instance=0)), "target_invocations_per_instance"),
    ],
)
def test_serving_config_rejects_bad_values_naming_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=re.escape(field)):
        replace(ServingConfig(), **change)


def test_graviton_variants_get_an_arm64_image() -> None:
    graviton = VariantConfig(instance_type="ml.c7g.large")
    assert ServingConfig(champion=graviton, challenger=graviton).image_platform == "linux/arm64"
    assert ServingConfig().image_platform == "linux/amd64"


def test_a_fixed_size_variant_has_no_at_max_alarm() -> None:
    fixed = VariantConfig(min_instances=2, initial_instance_count=2, max_instances=2)
    config = replace(load_stage("dev"), serving=ServingConfig(champion=fixed))
    stack = Stack(App(builtin_cloud_formation_validation=False), "Fixed")  # cfn-lint covers the schema
    vpc = ec2.Vpc(stack, "Vpc", subnet_configuration=[
        ec2.SubnetConfiguration(name="app", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
    ])
    RankerEndpoint(
        stack, "Ranker", config=config, vpc=vpc, subnets=ec2.SubnetSelection(subnet_group_name="app"),
        key=kms.Key(stack, "Key"), artifacts_bucket=s3.Bucket(stack, "Bucket"), alarm_topic=sns.Topic(stack, "Topic"),
    )
    alarms = Template.from_stack(stack).find_resources("AWS::CloudWatch::Alarm").values()
    names = {alarm["Properties"]["AlarmName"] for alarm in alarms}
    assert f"{config.names.endpoint}-champion-instances-below-min" in names
    assert f"{config.names.endpoint}-champion-instances-at-max" not in names
    assert f"{config.names.endpoint}-challenger-instances-at-max" in names


def test_the_role_reads_the_models_the_daily_pipeline_trains() -> None:
    config = load_stage("dev")
    plan = plan_run(None, execution_name="exec-1", started_at="2026-01-02T03:04:05Z", config=config,
                    lake_bucket="lake", artifacts_bucket="artifacts", training_image="image")
    # SageMaker training writes <S3OutputPath><job name>/output/model.tar.gz.
    key = plan.model_output.removeprefix("s3://artifacts/") + "ranker-job/output/model.tar.gz"
    assert fnmatch.fnmatchcase(key, TRAINED_MODELS)
    assert fnmatch.fnmatchcase(config.serving.live_model_key(CHALLENGER_VARIANT), f"{config.serving.model_prefix}/*")
