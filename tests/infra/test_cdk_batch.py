"""BatchStack: Firehose -> the lake (dynamic partitioning, transform Lambda, KMS, error prefix), Glue catalog,
Feature Store groups; and the event tracker's access to the stream."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from cdk_synth import Synth

from recsys.batch.feature_store import feature_groups
from recsys.events import EVENTS_ERROR_PREFIX, Event, event_date
from recsys.lake.catalog import event_columns
from recsys.lake.delivery import ERRORS_S3_PREFIX, EVENTS_S3_PREFIX, FILE_EXTENSION, render_prefix
from stacks.constructs import bundling

DAY = 1_714_564_800.0  # 2024-05-01T12:00:00Z


def _stream(synth: Synth) -> dict[str, Any]:
    return synth.one("batch", "AWS::KinesisFirehose::DeliveryStream")["Properties"]


def _destination(synth: Synth) -> dict[str, Any]:
    return _stream(synth)["ExtendedS3DestinationConfiguration"]


def _lake_arn(synth: Synth) -> dict[str, Any]:
    bucket = synth.config.names.bucket("lake", "")
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, f":s3:::{bucket}", {"Ref": "AWS::AccountId"}]]}


def _statements(synth: Synth, kind: str, role_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in synth.resources(kind, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def _resources(statement: dict[str, Any]) -> list[Any]:
    return statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]


def _under(bucket_arn: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {"Fn::Join": ["", [*bucket_arn["Fn::Join"][1], f"/{prefix}/*"]]}


def _function(synth: Synth, kind: str, handler: str) -> tuple[str, dict[str, Any]]:
    name = synth.config.names.function(handler)
    ((logical_id, function),) = [
        (logical_id, resource)
        for logical_id, resource in synth.resources(kind, "AWS::Lambda::Function").items()
        if resource["Properties"].get("FunctionName") == name
    ]
    return logical_id, function


# --- Firehose ----------------------------------------------------------------------------------------------------


def test_stream_is_direct_put_and_encrypted_with_the_platform_key(synth: Synth) -> None:
    stream = _stream(synth)
    assert stream["DeliveryStreamName"] == synth.config.names.firehose_stream
    assert stream["DeliveryStreamType"] == "DirectPut"
    sse = stream["DeliveryStreamEncryptionConfigurationInput"]
    assert sse["KeyType"] == "CUSTOMER_MANAGED_CMK" and synth.resolve_import(sse["KeyARN"]) == synth.key_arn()
    destination = _destination(synth)
    assert destination["BucketARN"] == _lake_arn(synth)
    objects_key = destination["EncryptionConfiguration"]["KMSEncryptionConfig"]["AWSKMSKeyARN"]
    assert synth.resolve_import(objects_key) == synth.key_arn()
    assert destination["CompressionFormat"] == "GZIP" and destination["FileExtension"] == FILE_EXTENSION == ".jsonl.gz"


def test_objects_are_partitioned_by_the_event_date_the_transform_returns(synth: Synth) -> None:
    destination = _destination(synth)
    assert destination["DynamicPartitioningConfiguration"] == {
        "Enabled": True,
        "RetryOptions": {"DurationInSeconds": synth.config.firehose.s3_retry_s},
    }
    assert destination["Prefix"] == EVENTS_S3_PREFIX
    # The prefix Firehose evaluates is the lake layout recsys.events documents, for the event's (not arrival) date.
    late_event = DAY - 3 * 86_400
    prefix = render_prefix(destination["Prefix"], arrival=DAY, partition_keys={"event_date": event_date(late_event)})
    assert prefix == "events/event_date=2024-04-28/"


def test_failed_records_go_to_the_error_prefix_by_error_type(synth: Synth) -> None:
    destination = _destination(synth)
    assert destination["ErrorOutputPrefix"] == ERRORS_S3_PREFIX
    rendered = render_prefix(destination["ErrorOutputPrefix"], arrival=DAY, error_output_type="processing-failed")
    assert rendered == f"{EVENTS_ERROR_PREFIX}/processing-failed/2024-05-01/"
    assert not rendered.startswith(destination["Prefix"].split("=")[0] + "/"), "errors must not land among events"


def test_buffering_hints_come_from_the_stage_config(synth: Synth) -> None:
    settings = synth.config.firehose
    assert _destination(synth)["BufferingHints"] == {
        "SizeInMBs": settings.buffer_size_mb,
        "IntervalInSeconds": settings.buffer_interval_s,
    }
    assert settings.buffer_size_mb >= 64, "dynamic partitioning refuses smaller buffers"


def test_the_transform_lambda_is_the_processor(synth: Synth) -> None:
    settings = synth.config.firehose
    function_id, function = _function(synth, "batch", "firehose_transform")
    assert function["Properties"]["Handler"] == "lambdas.firehose_transform.handler.handler"
    assert function["Properties"]["Timeout"] == settings.transform.timeout_s
    processing = _destination(synth)["ProcessingConfiguration"]
    assert processing["Enabled"] is True
    (processor,) = processing["Processors"]
    assert processor["Type"] == "Lambda"
    assert {p["ParameterName"]: p["ParameterValue"] for p in processor["Parameters"]} == {
        "LambdaArn": {"Fn::GetAtt": [function_id, "Arn"]},
        "BufferSizeInMBs": f"{settings.processor_buffer_size_mb:g}",
        "BufferIntervalInSeconds": str(settings.processor_buffer_interval_s),
        "NumberOfRetries": str(settings.processor_retries),
    }


def test_delivery_errors_are_logged_to_an_encrypted_log_group(synth: Synth) -> None:
    logging = _destination(synth)["CloudWatchLoggingOptions"]
    assert logging["Enabled"] is True
    group = synth.resources("batch", "AWS::Logs::LogGroup")[logging["LogGroupName"]["Ref"]]["Properties"]
    assert group["LogGroupName"] == f"/aws/kinesisfirehose/{synth.config.names.firehose_stream}"
    assert synth.resolve_import(group["KmsKeyId"]) == synth.key_arn()
    assert group["RetentionInDays"] == synth.config.firehose.log_retention_days
    stream = synth.one("batch", "AWS::Logs::LogStream")["Properties"]
    assert stream["LogStreamName"] == logging["LogStreamName"]


def test_delivery_role_is_least_privilege(dev: Synth) -> None:
    role_id = _destination(dev)["RoleARN"]["Fn::GetAtt"][0]
    trust = dev.resources("batch", "AWS::IAM::Role")[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert trust == [
        {
            "Action": "sts:AssumeRole",
            "Effect": "Allow",
            "Principal": {"Service": "firehose.amazonaws.com"},
            "Condition": {"StringEquals": {"sts:ExternalId": {"Ref": "AWS::AccountId"}}},
        }
    ]
    statements = _statements(dev, "batch", role_id)
    by_action = {action: statement for statement in statements for action in _actions(statement)}
    lake = _lake_arn(dev)
    assert _resources(by_action["s3:PutObject"]) == [_under(lake, "events"), _under(lake, "events-errors")]
    assert _resources(by_action["s3:ListBucket"]) == [lake]
    assert by_action["kms:GenerateDataKey"]["Condition"]["StringEquals"] == {
        "kms:ViaService": {"Fn::Join": ["", ["s3.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}
    }
    function_id, _ = _function(dev, "batch", "firehose_transform")
    assert _resources(by_action["lambda:InvokeFunction"]) == [{"Fn::GetAtt": [function_id, "Arn"]}]
    assert set(by_action) == {
        "s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:AbortMultipartUpload",
        "s3:GetObject", "s3:PutObject", "kms:GenerateDataKey", "kms:Decrypt", "lambda:InvokeFunction",
        "lambda:GetFunctionConfiguration", "logs:PutLogEvents",
    }
    assert not any(resource == "*" for statement in statements for resource in _resources(statement))


# --- Glue --------------------------------------------------------------------------------------------------------


def test_glue_table_reads_the_events_prefix_with_projected_event_date_partitions(synth: Synth) -> None:
    names = synth.config.names
    database = synth.one("batch", "AWS::Glue::Database")["Properties"]
    assert database["DatabaseInput"]["Name"] == names.glue_database
    table = synth.one("batch", "AWS::Glue::Table")["Properties"]
    assert table["DatabaseName"] == names.glue_database
    table_input = table["TableInput"]
    assert table_input["Name"] == names.events_table
    storage = table_input["StorageDescriptor"]
    assert [column["Name"] for column in storage["Columns"]] == [name for name, _ in event_columns()]
    assert [name for name, _ in event_columns()] == list(Event.__dataclass_fields__)
    assert {column["Name"]: column["Type"] for column in storage["Columns"]}["impression"] == "array<string>"
    assert storage["SerdeInfo"]["SerializationLibrary"] == "org.openx.data.jsonserde.JsonSerDe"
    assert storage["Compressed"] is True
    assert table_input["PartitionKeys"] == [{"Name": "event_date", "Type": "string"}]
    parameters = table_input["Parameters"]
    assert parameters["projection.enabled"] == "true"
    assert parameters["projection.event_date.type"] == "date"
    assert parameters["projection.event_date.format"] == "yyyy-MM-dd"
    # The projected location of a day is where Firehose writes that day's events.
    template = json.dumps(parameters["storage.location.template"])
    assert template.endswith('"/events/event_date=${event_date}/"]]}')
    assert render_prefix(EVENTS_S3_PREFIX, arrival=DAY, partition_keys={"event_date": "${event_date}"}) in template


# --- Feature Store -----------------------------------------------------------------------------------------------


def test_feature_groups_have_kms_online_and_offline_stores_from_the_spec(synth: Synth) -> None:
    expected = feature_groups(synth.config.names)
    resources = synth.resources("batch", "AWS::SageMaker::FeatureGroup")
    by_name = {resource["Properties"]["FeatureGroupName"]: resource["Properties"] for resource in resources.values()}
    assert set(by_name) == set(expected) and len(by_name) == 2
    bucket = synth.config.names.bucket("lake", "")
    for name, group in expected.items():
        props = by_name[name]
        assert props["RecordIdentifierFeatureName"] == group.record_identifier
        assert props["EventTimeFeatureName"] == group.event_time
        assert props["FeatureDefinitions"] == group.definitions()
        online = props["OnlineStoreConfig"]
        assert online["EnableOnlineStore"] is True
        assert synth.resolve_import(online["SecurityConfig"]["KmsKeyId"]) == synth.key_arn()
        offline = props["OfflineStoreConfig"]
        assert synth.resolve_import(offline["S3StorageConfig"]["KmsKeyId"]) == synth.key_arn()
        assert offline["S3StorageConfig"]["S3Uri"] == {
            "Fn::Join": [
                "",
                [f"s3://{bucket}", {"Ref": "AWS::AccountId"}, f"/{synth.config.batch_features.offline_store_prefix}"],
            ]
        }
        assert offline["DisableGlueTableCreation"] is False
        assert offline["DataCatalogConfig"]["Database"] == synth.config.names.glue_database


def test_feature_store_role_writes_only_the_offline_store(dev: Synth) -> None:
    (props, *_) = [r["Properties"] for r in dev.resources("batch", "AWS::SageMaker::FeatureGroup").values()]
    role_id = props["RoleArn"]["Fn::GetAtt"][0]
    trust = dev.resources("batch", "AWS::IAM::Role")[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [statement["Principal"] for statement in trust] == [{"Service": "sagemaker.amazonaws.com"}]
    statements = _statements(dev, "batch", role_id)
    by_action = {action: statement for statement in statements for action in _actions(statement)}
    prefix = dev.config.batch_features.offline_store_prefix
    assert _resources(by_action["s3:PutObject"]) == [_under(_lake_arn(dev), prefix)]
    tables = [json.dumps(resource) for resource in _resources(by_action["glue:CreateTable"])]
    assert sum(f"table/{dev.config.names.glue_database}/" in table for table in tables) == 2
    assert not any(resource == "*" for statement in statements for resource in _resources(statement))


# --- the event tracker -------------------------------------------------------------------------------------------


def test_event_tracker_sends_to_the_stream_by_name_without_a_cross_stack_reference(synth: Synth) -> None:
    names = synth.config.names
    _, function = _function(synth, "realtime", "event_tracker")
    assert function["Properties"]["Environment"]["Variables"]["FIREHOSE_STREAM_NAME"] == names.firehose_stream
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = _statements(synth, "realtime", role_id)
    statements = [s for s in statements if any(action.startswith("firehose:") for action in _actions(s))]
    (statement,) = statements
    assert sorted(_actions(statement)) == ["firehose:PutRecord", "firehose:PutRecordBatch"]
    assert _resources(statement) == [
        {
            "Fn::Join": [
                "",
                [
                    "arn:", {"Ref": "AWS::Partition"}, ":firehose:", {"Ref": "AWS::Region"}, ":",
                    {"Ref": "AWS::AccountId"}, f":deliverystream/{names.firehose_stream}",
                ],
            ]
        }
    ]
    assert f"{synth.config.prefix}-batch" not in json.dumps(synth.templates["realtime"])


def test_transform_bundle_answers_a_firehose_invocation_with_nothing_but_the_lambda_runtime(dev: Synth, tmp_path):
    """Cold start from the bundle alone, then one invocation in Firehose's event shape."""
    site_packages = Path(bundling.__file__).parents[2] / ".venv" / "lib"
    (boto3_init,) = site_packages.glob("python3*/site-packages/boto3/__init__.py")
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    for package in ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py"):
        (runtime / package).symlink_to(boto3_init.parents[1] / package)
    bundle = dev.asset_dir(_function(dev, "batch", "firehose_transform")[1])
    record = {"event_id": "e1", "user_id": "u1", "event_type": "like", "timestamp": DAY}
    event = {"records": [{"recordId": "r1", "data": base64.b64encode(json.dumps(record).encode()).decode()}]}
    script = (
        "import json, types; from lambdas.firehose_transform.handler import handler; "
        "context = types.SimpleNamespace(function_name='f', memory_limit_in_mb=256, aws_request_id='1', "
        "invoked_function_arn='arn:aws:lambda:us-east-1:123456789012:function:f'); "
        f"print(json.dumps(handler({event!r}, context)))"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", f"import sys; sys.path[:0] = {[str(bundle), str(runtime)]!r}; {script}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"PATH": os.environ["PATH"], "AWS_REGION": "us-east-1", "RECSYS_STAGE": "dev",
             "POWERTOOLS_METRICS_NAMESPACE": "recsys-dev", "POWERTOOLS_SERVICE_NAME": "firehose-transform"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (answer,) = json.loads(result.stdout.strip().splitlines()[-1])["records"]
    assert answer["result"] == "Ok" and answer["metadata"] == {"partitionKeys": {"event_date": "2024-05-01"}}
