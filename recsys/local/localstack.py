"""LocalStack community as a second local AWS target, run on the host (no Docker).

It runs in its own virtualenv (`.localstack/venv`, Python 3.13, pinned by `tools/localstack/requirements.txt` and
`constraints.txt`; `make localstack-install` builds it) and serves S3, SQS, SNS, KMS, SSM, Secrets Manager, Step
Functions, Scheduler, CloudWatch, Logs, Firehose, API Gateway v1, IAM, EC2, Events, STS and CloudFormation. It
does not serve SageMaker, MemoryDB, Glue or ECR, and creates no Lambda function without Docker: `MOTO_SERVICES`
stay on a moto server through botocore's per-service endpoint variables (`recsys.aws`).

Its state is reset between tests by deleting what exists (`reset_localstack`): the community edition has no
reset call, and a sweep of a few resources costs milliseconds where a restart costs seconds.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.request
from dataclasses import asdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recsys.config import LOCAL_REGION
from recsys.local.services import Service, ServiceError, free_port, spawn, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PYTHON = REPO_ROOT / ".localstack" / "venv" / "bin" / "python"
# LocalStack's default account (moto's is recsys.config.LOCAL_ACCOUNT).
LOCALSTACK_ACCOUNT = "000000000000"
# Client names whose calls go to moto: LocalStack community has no such service, or (lambda) needs Docker for it.
MOTO_SERVICES = ("sagemaker", "sagemaker-runtime", "sagemaker-featurestore-runtime", "memorydb", "glue", "ecr",
                 "lambda")
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": LOCAL_REGION,
               "AWS_REGION": LOCAL_REGION}


def localstack_python() -> Path:
    python = Path(os.environ.get("RECSYS_LOCALSTACK_PYTHON") or DEFAULT_PYTHON)
    if not python.exists():
        raise ServiceError(f"no LocalStack at {python}: run `make localstack-install` (or set "
                           "RECSYS_LOCALSTACK_PYTHON to a Python that has localstack-core)")
    return python


def server_env(port: int, data_dir: Path) -> dict[str, str]:
    """How LocalStack runs here: on the host, loopback only, nothing persisted or phoned home."""
    return {
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        "GATEWAY_SERVER": "hypercorn",
        "OVERRIDE_IN_DOCKER": "0",
        "DNS_ADDRESS": "0",
        "DISABLE_EVENTS": "1",
        "PERSISTENCE": "0",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        "FILESYSTEM_ROOT": str(data_dir),
        "TMPDIR": str(data_dir / "tmp"),
        **CREDENTIALS,
    }


def start_localstack(log_dir: Path, port: int | None = None, timeout_s: float = 90.0) -> Service:
    """A LocalStack process on 127.0.0.1:`port` (a free one by default), ready when it answers its health call."""
    port = port or free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="localstack-", dir=log_dir))
    (data_dir / "tmp").mkdir()
    proc, log = spawn("localstack", [str(localstack_python()), "-m", "localstack.runtime.main"], log_dir,
                       env=server_env(port, data_dir))
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        with urllib.request.urlopen(f"{url}/_localstack/health", timeout=2) as response:
            return response.status == 200 and "services" in json.loads(response.read())

    wait_until(ready, f"LocalStack (log {log})", timeout_s, proc)
    return Service("localstack", proc.pid, port, url, log)


def client_env(localstack_url: str, moto_url: str) -> dict[str, str]:
    """Environment that sends every AWS call to LocalStack but `MOTO_SERVICES`'s, which go to moto.

    `AWS_ENDPOINT_URL` names LocalStack too, so a client built outside `recsys.aws` lands there as well.
    """
    from recsys import aws

    host = localstack_url.split("://", 1)[1]
    overrides = {aws.service_variable(service): moto_url for service in MOTO_SERVICES}
    return {**CREDENTIALS, aws.TARGET_VARIABLE: aws.LOCALSTACK, "LOCALSTACK_HOST": host,
            "AWS_ENDPOINT_URL": localstack_url, **overrides}


def _each(pages: Any, key: str) -> list[Any]:
    return [item for page in pages for item in page.get(key, [])]


def _sweep(client: Any, operation: str, key: str) -> list[Any]:
    if client.can_paginate(operation):
        return _each(client.get_paginator(operation).paginate(), key)
    return getattr(client, operation)().get(key, [])


def _empty_and_delete_bucket(s3: Any, name: str) -> None:
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=name):
        objects = [{"Key": o["Key"], "VersionId": o["VersionId"]}
                   for o in page.get("Versions", []) + page.get("DeleteMarkers", [])]
        if objects:
            s3.delete_objects(Bucket=name, Delete={"Objects": objects, "Quiet": True})
    s3.delete_bucket(Bucket=name)


def _resets(client: Callable[[str], Any]) -> list[tuple[str, Callable[[], None]]]:
    """(what, how) for every kind of resource the platform and its tests create."""
    s3, sqs, sns, ssm, secrets = (client(s) for s in ("s3", "sqs", "sns", "ssm", "secretsmanager"))
    sfn, logs, firehose, cloudwatch, scheduler = (client(s) for s in ("stepfunctions", "logs", "firehose",
                                                                        "cloudwatch", "scheduler"))
    events, kms = client("events"), client("kms")
    return [
        ("buckets", lambda: [_empty_and_delete_bucket(s3, b["Name"]) for b in s3.list_buckets().get("Buckets", [])]),
        ("queues", lambda: [sqs.delete_queue(QueueUrl=url) for url in _sweep(sqs, "list_queues", "QueueUrls")]),
        ("subscriptions", lambda: [sns.unsubscribe(SubscriptionArn=s["SubscriptionArn"])
                                   for s in _sweep(sns, "list_subscriptions", "Subscriptions")
                                   if s["SubscriptionArn"].startswith("arn:")]),
        ("topics", lambda: [sns.delete_topic(TopicArn=t["TopicArn"]) for t in _sweep(sns, "list_topics", "Topics")]),
        ("parameters", lambda: [ssm.delete_parameter(Name=p["Name"])
                                for p in _sweep(ssm, "describe_parameters", "Parameters")]),
        ("secrets", lambda: [secrets.delete_secret(SecretId=s["ARN"], ForceDeleteWithoutRecovery=True)
                             for s in _sweep(secrets, "list_secrets", "SecretList")]),
        ("state machines", lambda: [sfn.delete_state_machine(stateMachineArn=m["stateMachineArn"])
                                    for m in _sweep(sfn, "list_state_machines", "stateMachines")]),
        ("schedules", lambda: [scheduler.delete_schedule(Name=s["Name"], GroupName=s["GroupName"])
                               for s in _sweep(scheduler, "list_schedules", "Schedules")]),
        ("alarms", lambda: [cloudwatch.delete_alarms(AlarmNames=[a["AlarmName"]])
                            for a in _sweep(cloudwatch, "describe_alarms", "MetricAlarms")]),
        ("log groups", lambda: [logs.delete_log_group(logGroupName=g["logGroupName"])
                                for g in _sweep(logs, "describe_log_groups", "logGroups")]),
        ("delivery streams", lambda: [firehose.delete_delivery_stream(DeliveryStreamName=name)
                                      for name in firehose.list_delivery_streams().get("DeliveryStreamNames", [])]),
        ("rules", lambda: [events.delete_rule(Name=r["Name"], Force=True) for r in _sweep(events, "list_rules", "Rules")
                           if not r.get("ManagedBy")]),
        ("aliases", lambda: [kms.delete_alias(AliasName=a["AliasName"]) for a in _sweep(kms, "list_aliases", "Aliases")
                             if not a["AliasName"].startswith("alias/aws/")]),
    ]


def reset_localstack(url: str) -> None:
    """Delete every resource of the kinds the platform creates. KMS keys are only unaliased (LocalStack, like AWS,
    schedules their deletion) and CloudWatch metric data stays (no API deletes it): tests read back metrics by
    names or dimensions of their own."""
    import boto3
    from botocore.config import Config

    session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=LOCAL_REGION)
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, read_timeout=30)

    def client(service: str) -> Any:
        return session.client(service, endpoint_url=url, config=config)

    for _, reset in _resets(client):
        reset()


def up(state_file: Path) -> Service:
    """The LocalStack recorded in `state_file` if it still runs, else a new one on port 4566 (LocalStack's and the
    `localstack-client` package's default), recorded there; prints how to point the platform at it."""
    service = None
    if state_file.exists():
        service = Service(**json.loads(state_file.read_text()))
    if service is None or not service.alive():
        service = start_localstack(state_file.parent / "logs", port=int(os.environ.get("LOCALSTACK_PORT", "4566")))
        state_file.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(json.dumps(asdict(service), indent=2))
    host = service.url.split("://", 1)[1]
    print(f"LocalStack {service.url}   pid {service.pid}   log {service.log}\nUse it from a shell:")
    for name, value in {**CREDENTIALS, "RECSYS_AWS_TARGET": "localstack", "LOCALSTACK_HOST": host}.items():
        print(f"  export {name}={value}")
    return service


def down(state_file: Path) -> None:
    if not state_file.exists():
        print("LocalStack: nothing running")
        return
    service = Service(**json.loads(state_file.read_text()))
    service.stop()
    state_file.unlink()
    print(f"stopped LocalStack (pid {service.pid})")
