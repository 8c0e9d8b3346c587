"""The deploy smoke: `cdklocal bootstrap` and `cdklocal deploy --all` of the app's LocalStack profile on LocalStack's
CloudFormation, in dependency order, then checks of what it created (`make deploy-smoke`; it also runs in the
LocalStack tier of `make test`). What the profile leaves out, and why, is printed with the results."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import boto3
import pytest

from recsys.blender.config import DEFAULT_CONFIG, BlenderConfig
from recsys.local.localstack import LOCALSTACK_ACCOUNT
from stacks.localstack import LEFT_OUT, REPORT_FILE, left_out_reason

CDKLOCAL = Path("tools/localstack/node_modules/.bin/cdklocal")
STACK_ORDER = ("foundation", "network", "batch", "realtime", "serving", "recommend", "pipeline", "monitoring")


@pytest.fixture(scope="module")
def deployed(local_platform, stage_config, repo_root, tmp_path_factory):
    """Bootstrap, then deploy every stack of the profile; the assembly directory and the CloudFormation client."""
    local_platform.reset_aws()  # the tests before leave resources with the stacks' names
    url = local_platform.localstack.url
    region = stage_config.region
    env = {**os.environ, "AWS_ENDPOINT_URL": url, "AWS_ENDPOINT_URL_S3": url, "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": region, "AWS_DEFAULT_REGION": region}
    outdir = tmp_path_factory.mktemp("cdk-localstack")
    log = outdir / "cdklocal.log"
    context = ["-c", f"stage={stage_config.stage}", "-c", "localstack=true"]
    with open(log, "w") as out:
        for argv in (["bootstrap", f"aws://{LOCALSTACK_ACCOUNT}/{stage_config.region}"],
                     ["deploy", "--all", "--require-approval", "never", "--output", str(outdir / "cdk.out")]):
            started = time.monotonic()
            code = subprocess.run([str(repo_root / CDKLOCAL), *argv, *context], cwd=repo_root, env=env, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=1500).returncode
            out.write(f"\n== cdklocal {argv[0]}: exit {code} in {time.monotonic() - started:.0f} s\n")
            assert code == 0, f"cdklocal {argv[0]} failed; its output: {log}\n" + log.read_text()[-3000:]
    client = boto3.client("cloudformation", endpoint_url=url, region_name=stage_config.region)
    return outdir / "cdk.out", client


def _aws(local_platform, service: str):
    return boto3.client(service, endpoint_url=local_platform.localstack.url, region_name="us-east-1")


def test_every_stack_of_the_profile_deploys_with_every_kept_resource(deployed, stage_config, capsys):
    assembly, cloudformation = deployed
    report = json.loads((assembly / REPORT_FILE).read_text())
    for kind in STACK_ORDER:
        name = f"{stage_config.prefix}-{kind}"
        (stack,) = cloudformation.describe_stacks(StackName=name)["Stacks"]
        assert stack["StackStatus"] == "CREATE_COMPLETE", name
        resources = cloudformation.list_stack_resources(StackName=name)["StackResourceSummaries"]
        template = json.loads((assembly / f"{name}.template.json").read_text())
        assert {r["LogicalResourceId"] for r in resources} == set(template["Resources"])
        assert {r["ResourceStatus"] for r in resources} == {"CREATE_COMPLETE"}
        assert len(resources) == report["kept"][name]
    with capsys.disabled():
        reasons: dict[str, list[str]] = {}
        for item in report["left_out"]:
            reasons.setdefault(item["reason"] if left_out_reason(item["type"]) else "refers to a left-out resource",
                               []).append(f"{item['stack'].removeprefix(stage_config.prefix + '-')}/{item['type']}")
        print(f"\ndeploy smoke: kept {sum(report['kept'].values())} resources in {len(report['kept'])} stacks; "
              f"left out {len(report['left_out'])}:")
        for reason, where in sorted(reasons.items()):
            print(f"  {len(where):3} {reason}: {', '.join(sorted(set(where)))}")
        print(f"  and {len(report['assets_left_out'])} assets (images, and the files of left-out functions)")


def test_the_profile_leaves_out_only_what_localstack_cannot_run(deployed):
    assembly, _ = deployed
    report = json.loads((assembly / REPORT_FILE).read_text())
    for item in report["left_out"]:
        assert left_out_reason(item["type"]) or item["reason"].startswith(("refers to ", "imports ")), item
    left_types = {item["type"] for item in report["left_out"]}
    assert not any(t.startswith(("AWS::SQS::", "AWS::SNS::", "AWS::S3::", "AWS::KMS::", "AWS::SSM::",
                                 "AWS::CloudWatch::")) for t in left_types), left_types
    assert len(LEFT_OUT) >= len({left_out_reason(t) for t in left_types if left_out_reason(t)})
    manifests = [json.loads(path.read_text()) for path in assembly.glob("*.assets.json")]
    assert not any(manifest.get("dockerImages") for manifest in manifests)


def test_an_event_published_to_the_created_topic_reaches_the_created_queue(deployed, stage_config, local_platform):
    names = stage_config.names
    sns, sqs = _aws(local_platform, "sns"), _aws(local_platform, "sqs")
    topic = f"arn:aws:sns:{stage_config.region}:{LOCALSTACK_ACCOUNT}:{names.events_topic}"
    queue_url = sqs.get_queue_url(QueueName=names.feature_queue)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == stage_config.queue.max_receive_count
    assert attributes.get("KmsMasterKeyId")
    body = json.dumps({"event_type": "click", "user_id": "u1", "item_id": "i1", "event_id": "smoke-1"})
    sns.publish(TopicArn=topic, Message=body)
    deadline = time.monotonic() + 20
    received = []
    while not received and time.monotonic() < deadline:
        received = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
    assert [m["Body"] for m in received] == [body]  # raw message delivery: the body is the event


def test_the_created_parameter_buckets_and_alarms_are_the_stacks(deployed, stage_config, local_platform):
    names = stage_config.names
    ssm, s3, cloudwatch = (_aws(local_platform, s) for s in ("ssm", "s3", "cloudwatch"))
    rules = ssm.get_parameter(Name=names.blender_parameter)["Parameter"]["Value"]
    assert BlenderConfig.from_json(rules) == DEFAULT_CONFIG
    # LocalStack's CloudFormation does not apply BucketEncryption (its buckets keep SSE-S3): the infra tests hold
    # the templates to SSE-KMS; here the versioning and the TLS-only policies the stacks set.
    for purpose in ("lake", "artifacts", "access-logs"):
        bucket = names.bucket(purpose, LOCALSTACK_ACCOUNT)
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        statements = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])["Statement"]
        assert any(st["Effect"] == "Deny" and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")
                   == "false" for st in statements), bucket
    alarms = {a["AlarmName"]: a for a in cloudwatch.describe_alarms(MaxRecords=100)["MetricAlarms"]}
    oncall = f"arn:aws:sns:{stage_config.region}:{LOCALSTACK_ACCOUNT}:{names.alarm_topic}"
    for alarm_name in (f"{names.endpoint}-champion-5xx", f"{names.endpoint}-challenger-p99-latency"):
        assert alarms[alarm_name]["AlarmActions"] == [oncall]
    dlq_alarms = [a for a in alarms.values() if {"Name": "QueueName", "Value": names.feature_dlq} in a["Dimensions"]]
    assert dlq_alarms and all(a["AlarmActions"] == [oncall] for a in dlq_alarms)
