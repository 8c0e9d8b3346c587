"""RealtimeStack: tracker API -> SNS -> SQS (+DLQ) -> feature writer Lambda -> MemoryDB."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match
from cdk_synth import Synth

from stacks.realtime import TRACKER_ROUTES


def _logical_id(synth: Synth, type_: str, **properties: Any) -> str:
    (logical_id,) = [
        logical_id
        for logical_id, resource in synth.resources("realtime", type_).items()
        if all(resource["Properties"].get(name) == value for name, value in properties.items())
    ]
    return logical_id


def _function(synth: Synth, handler: str) -> dict[str, Any]:
    name = synth.config.names.function(handler)
    logical_id = _logical_id(synth, "AWS::Lambda::Function", FunctionName=name)
    return synth.resources("realtime", "AWS::Lambda::Function")[logical_id]


def _queue_ids(synth: Synth) -> tuple[str, str]:
    names = synth.config.names
    return (
        _logical_id(synth, "AWS::SQS::Queue", QueueName=names.feature_queue),
        _logical_id(synth, "AWS::SQS::Queue", QueueName=names.feature_dlq),
    )


def _network_resource(synth: Synth, imported: dict[str, Any]) -> dict[str, Any]:
    value = synth.resolve_import(imported)
    logical_id = value["Ref"] if "Ref" in value else value["Fn::GetAtt"][0]
    return synth.templates["network"]["Resources"][logical_id]


def _subnet_group(synth: Synth, imported: dict[str, Any]) -> str:
    subnet = _network_resource(synth, imported)
    return next(tag["Value"] for tag in subnet["Properties"]["Tags"] if tag["Key"] == "aws-cdk:subnet-name")


# --- SNS -> SQS ------------------------------------------------------------------------------------------------


def test_events_topic_is_kms_encrypted_and_tls_only(synth: Synth) -> None:
    topic = synth.resources("realtime", "AWS::SNS::Topic")[
        _logical_id(synth, "AWS::SNS::Topic", TopicName=synth.config.names.events_topic)
    ]
    assert synth.resolve_import(topic["Properties"]["KmsMasterKeyId"]) == synth.key_arn()
    synth.template("realtime").has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": [
                    Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})
                ]
            }
        },
    )


def test_feature_queue_subscribes_to_the_events_topic_with_raw_delivery(synth: Synth) -> None:
    queue_id, _ = _queue_ids(synth)
    topic_id = _logical_id(synth, "AWS::SNS::Topic", TopicName=synth.config.names.events_topic)
    subscription = synth.one("realtime", "AWS::SNS::Subscription")["Properties"]
    assert subscription == {
        "Protocol": "sqs",
        "RawMessageDelivery": True,
        "Endpoint": {"Fn::GetAtt": [queue_id, "Arn"]},
        "TopicArn": {"Ref": topic_id},
    }


def test_only_the_events_topic_may_send_to_the_feature_queue(dev: Synth) -> None:
    queue_id, _ = _queue_ids(dev)
    topic_id = _logical_id(dev, "AWS::SNS::Topic", TopicName=dev.config.names.events_topic)
    (policy,) = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in dev.resources("realtime", "AWS::SQS::QueuePolicy").values()
        if p["Properties"]["Queues"] == [{"Ref": queue_id}]
    ]
    allows = [s for s in policy if s["Effect"] == "Allow"]
    assert allows == [
        {
            "Action": "sqs:SendMessage",
            "Condition": {"ArnEquals": {"aws:SourceArn": {"Ref": topic_id}}},
            "Effect": "Allow",
            "Principal": {"Service": "sns.amazonaws.com"},
            "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
        }
    ]


def test_feature_queue_redrives_to_an_encrypted_dlq_after_max_receive_count(synth: Synth) -> None:
    queue_id, dlq_id = _queue_ids(synth)
    resources = synth.templates["realtime"]["Resources"]
    queue, dlq = resources[queue_id]["Properties"], resources[dlq_id]["Properties"]
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": synth.config.queue.max_receive_count,
    }
    for props in (queue, dlq):
        assert synth.resolve_import(props["KmsMasterKeyId"]) == synth.key_arn()
    assert dlq["MessageRetentionPeriod"] == synth.config.queue.dlq_retention_days * 86400
    for logical_id in (queue_id, dlq_id):
        synth.template("realtime").has_resource_properties(
            "AWS::SQS::QueuePolicy",
            {
                "Queues": [{"Ref": logical_id}],
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                    )
                },
            },
        )


def test_visibility_timeout_is_at_least_six_times_the_writer_timeout(synth: Synth) -> None:
    queue_id, _ = _queue_ids(synth)
    timeout = synth.templates["realtime"]["Resources"][queue_id]["Properties"]["VisibilityTimeout"]
    function_timeout = _function(synth, "feature_writer")["Properties"]["Timeout"]
    assert timeout == synth.config.feature_writer.visibility_timeout_s
    assert timeout >= 6 * function_timeout


def test_a_message_in_the_dlq_pages_on_call(synth: Synth) -> None:
    _, dlq_id = _queue_ids(synth)
    alarm = synth.one("realtime", "AWS::CloudWatch::Alarm")["Properties"]
    assert alarm["Namespace"] == "AWS/SQS" and alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq_id, "QueueName"]}}]
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["Threshold"] == synth.config.queue.dlq_alarm_threshold
    (action,) = alarm["AlarmActions"]
    (topic_id,) = synth.resources("foundation", "AWS::SNS::Topic")
    assert synth.resolve_import(action) == {"Ref": topic_id}


# --- feature writer --------------------------------------------------------------------------------------------


def test_feature_writer_consumes_the_queue_with_partial_batch_failures(synth: Synth) -> None:
    queue_id, _ = _queue_ids(synth)
    writer_name = synth.config.names.function("feature_writer")
    writer_id = _logical_id(synth, "AWS::Lambda::Function", FunctionName=writer_name)
    mapping = synth.one("realtime", "AWS::Lambda::EventSourceMapping")["Properties"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    assert mapping["FunctionName"] == {"Ref": writer_id}
    assert mapping["BatchSize"] == synth.config.feature_writer.batch_size
    assert mapping.get("MaximumBatchingWindowInSeconds", 0) == synth.config.feature_writer.batching_window_s
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


@pytest.mark.parametrize("handler", ["feature_writer", "event_tracker"])
def test_lambdas_run_in_the_private_app_subnets_with_the_platform_security_group(synth: Synth, handler: str) -> None:
    vpc_config = _function(synth, handler)["Properties"]["VpcConfig"]
    groups = {_subnet_group(synth, subnet) for subnet in vpc_config["SubnetIds"]}
    assert groups == {"app"} and len(vpc_config["SubnetIds"]) == synth.config.network.max_azs
    (security_group,) = vpc_config["SecurityGroupIds"]
    assert _network_resource(synth, security_group)["Properties"]["GroupDescription"].startswith("Platform Lambdas")


@pytest.mark.parametrize("handler", ["feature_writer", "event_tracker"])
def test_lambdas_get_the_store_settings_they_read(synth: Synth, handler: str) -> None:
    variables = _function(synth, handler)["Properties"]["Environment"]["Variables"]
    cluster_id = _logical_id(synth, "AWS::MemoryDB::Cluster", ClusterName=synth.config.names.memorydb_cluster)
    (secret_id,) = synth.resources("realtime", "AWS::SecretsManager::Secret")
    assert variables["MEMORYDB_ENDPOINT"] == {"Fn::GetAtt": [cluster_id, "ClusterEndpoint.Address"]}
    assert variables["MEMORYDB_PORT"] == str(synth.config.memorydb.port)
    assert variables["MEMORYDB_SECRET_ARN"] == {"Ref": secret_id}
    assert variables["MEMORYDB_TLS"] == "true"
    assert variables["RECSYS_STAGE"] == synth.config.stage


def test_event_tracker_gets_the_topic_and_the_lake_stream(dev: Synth) -> None:
    variables = _function(dev, "event_tracker")["Properties"]["Environment"]["Variables"]
    topic_id = _logical_id(dev, "AWS::SNS::Topic", TopicName=dev.config.names.events_topic)
    assert variables["EVENTS_TOPIC_ARN"] == {"Ref": topic_id}
    assert variables["FIREHOSE_STREAM_NAME"] == dev.config.names.firehose_stream  # tests/infra/test_cdk_batch.py


def _policy_of(synth: Synth, handler: str) -> list[dict[str, Any]]:
    role = _function(synth, handler)["Properties"]["Role"]["Fn::GetAtt"][0]
    (statements,) = [
        policy["Properties"]["PolicyDocument"]["Statement"]
        for policy in synth.resources("realtime", "AWS::IAM::Policy").values()
        if policy["Properties"]["Roles"] == [{"Ref": role}]
    ]
    return statements


def _actions(statement: dict[str, Any]) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


@pytest.mark.parametrize("handler", ["feature_writer", "event_tracker"])
def test_lambda_roles_are_least_privilege(dev: Synth, handler: str) -> None:
    statements = _policy_of(dev, handler)
    (secret_id,) = dev.resources("realtime", "AWS::SecretsManager::Secret")
    by_action = {action: statement["Resource"] for statement in statements for action in _actions(statement)}
    assert by_action["secretsmanager:GetSecretValue"] == {"Ref": secret_id}
    assert not any("*" in action for statement in statements for action in _actions(statement))
    # Only actions without resource-level permissions may name every resource (see the nag acknowledgment).
    wildcard = {action for statement in statements if statement["Resource"] == "*" for action in _actions(statement)}
    assert wildcard and all(action.startswith(("xray:", "ec2:")) for action in wildcard)


def test_only_the_event_tracker_publishes_and_only_the_writer_consumes(dev: Synth) -> None:
    tracker = {action for s in _policy_of(dev, "event_tracker") for action in _actions(s)}
    writer = {action for s in _policy_of(dev, "feature_writer") for action in _actions(s)}
    assert "sns:Publish" in tracker and "sns:Publish" not in writer
    assert "sqs:DeleteMessage" in writer and not any(action.startswith("sqs:") for action in tracker)


# --- MemoryDB --------------------------------------------------------------------------------------------------


def test_memorydb_encrypts_in_transit_and_at_rest_and_sizes_from_config(synth: Synth) -> None:
    settings, names = synth.config.memorydb, synth.config.names
    cluster = synth.one("realtime", "AWS::MemoryDB::Cluster")
    props = cluster["Properties"]
    assert props["TLSEnabled"] is True
    assert synth.resolve_import(props["KmsKeyId"]) == synth.key_arn()
    assert (props["NumShards"], props["NumReplicasPerShard"]) == (settings.num_shards, settings.replicas_per_shard)
    assert props["NumReplicasPerShard"] >= 1, "a replica in another AZ is what makes the store multi-AZ"
    assert props["NodeType"] == settings.node_type and props["EngineVersion"] == settings.engine_version
    assert props["SnapshotRetentionLimit"] == settings.snapshot_retention_days > 0
    assert props["ACLName"] == names.memorydb_acl and props["SubnetGroupName"] == names.memorydb_cluster
    assert cluster["DeletionPolicy"] == ("Retain" if synth.config.retain_data else "Delete")


def test_memorydb_acl_user_password_is_generated_into_an_encrypted_secret(synth: Synth) -> None:
    names = synth.config.names
    ((secret_id, secret),) = synth.resources("realtime", "AWS::SecretsManager::Secret").items()
    assert secret["Properties"]["Name"] == names.memorydb_secret
    assert synth.resolve_import(secret["Properties"]["KmsKeyId"]) == synth.key_arn()
    generate = secret["Properties"]["GenerateSecretString"]
    assert generate["GenerateStringKey"] == "password" and generate["PasswordLength"] >= 16
    user = synth.one("realtime", "AWS::MemoryDB::User")["Properties"]
    assert user["UserName"] == names.memorydb_user
    assert user["AccessString"] == synth.config.memorydb.access_string
    # A dynamic reference resolved by CloudFormation: the template never holds the password.
    assert user["AuthenticationMode"] == {
        "Type": "password",
        "Passwords": [
            {"Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": secret_id}, ":SecretString:password::}}"]]}
        ],
    }
    acl = synth.one("realtime", "AWS::MemoryDB::ACL")["Properties"]
    assert acl["ACLName"] == names.memorydb_acl and acl["UserNames"] == [names.memorydb_user]


def test_memorydb_lives_in_the_isolated_data_subnets(synth: Synth) -> None:
    subnet_ids = synth.one("realtime", "AWS::MemoryDB::SubnetGroup")["Properties"]["SubnetIds"]
    assert {_subnet_group(synth, subnet) for subnet in subnet_ids} == {"data"}
    assert len(subnet_ids) == synth.config.network.max_azs


def test_memorydb_admits_only_the_platform_lambdas_on_its_port(synth: Synth) -> None:
    cluster = synth.one("realtime", "AWS::MemoryDB::Cluster")["Properties"]
    (group_ref,) = cluster["SecurityGroupIds"]
    group_id = group_ref["Fn::GetAtt"][0]
    group = synth.templates["realtime"]["Resources"][group_id]["Properties"]
    assert "SecurityGroupIngress" not in group
    # CDK's placeholder for "no egress at all": ICMP type 252 code 86 to the broadcast address.
    (egress,) = group["SecurityGroupEgress"]
    assert (egress["CidrIp"], egress["IpProtocol"]) == ("255.255.255.255/32", "icmp")
    rules = [
        rule["Properties"]
        for rule in synth.resources("realtime", "AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [group_id, "GroupId"]}
    ]
    (rule,) = rules
    port = synth.config.memorydb.port
    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", port, port)
    source = _network_resource(synth, rule["SourceSecurityGroupId"])
    assert source["Properties"]["GroupDescription"].startswith("Platform Lambdas")


# --- event tracker API -----------------------------------------------------------------------------------------


def test_every_tracker_route_is_a_sigv4_authorized_validated_post(synth: Synth) -> None:
    resources = synth.resources("realtime", "AWS::ApiGateway::Resource")
    assert sorted(r["Properties"]["PathPart"] for r in resources.values()) == sorted(TRACKER_ROUTES)
    methods = synth.resources("realtime", "AWS::ApiGateway::Method")
    assert len(methods) == len(TRACKER_ROUTES)
    ((validator_id, validator),) = synth.resources("realtime", "AWS::ApiGateway::RequestValidator").items()
    assert validator["Properties"]["ValidateRequestBody"] is True
    tracker_name = synth.config.names.function("event_tracker")
    tracker_id = _logical_id(synth, "AWS::Lambda::Function", FunctionName=tracker_name)
    for method in methods.values():
        props = method["Properties"]
        assert props["HttpMethod"] == "POST" and props["AuthorizationType"] == "AWS_IAM"
        assert props["RequestValidatorId"] == {"Ref": validator_id}
        assert props["Integration"]["Type"] == "AWS_PROXY"
        assert {"Fn::GetAtt": [tracker_id, "Arn"]} in props["Integration"]["Uri"]["Fn::Join"][1]


def test_stage_throttles_traces_and_logs_without_bodies(synth: Synth) -> None:
    tracker = synth.config.event_tracker
    stage = synth.one("realtime", "AWS::ApiGateway::Stage")["Properties"]
    assert stage["TracingEnabled"] is True
    (settings,) = stage["MethodSettings"]
    assert settings["ThrottlingRateLimit"] == tracker.throttle_rate_per_s
    assert settings["ThrottlingBurstLimit"] == tracker.throttle_burst
    assert settings["LoggingLevel"] == "ERROR" and settings["DataTraceEnabled"] is False
    access_logs = stage["AccessLogSetting"]["DestinationArn"]["Fn::GetAtt"][0]
    log_group = synth.templates["realtime"]["Resources"][access_logs]["Properties"]
    assert synth.resolve_import(log_group["KmsKeyId"]) == synth.key_arn()
    assert log_group["RetentionInDays"] == tracker.function.log_retention_days


def test_api_gateway_execution_logs_are_precreated_encrypted(dev: Synth) -> None:
    api_id = dev.one("realtime", "AWS::ApiGateway::RestApi")
    groups = [
        group["Properties"]
        for group in dev.resources("realtime", "AWS::Logs::LogGroup").values()
        if "API-Gateway-Execution-Logs_" in str(group["Properties"].get("LogGroupName"))
    ]
    (group,) = groups
    assert dev.resolve_import(group["KmsKeyId"]) == dev.key_arn()
    assert api_id["Properties"]["Name"] == dev.config.names.event_tracker_api


def test_malformed_bodies_get_a_400_in_the_handlers_error_shape(dev: Synth) -> None:
    response = dev.one("realtime", "AWS::ApiGateway::GatewayResponse")["Properties"]
    assert response["ResponseType"] == "BAD_REQUEST_BODY"
    body = json.loads(response["ResponseTemplates"]["application/json"])
    assert body["errors"] == [{"field": "body", "message": "must be a JSON object"}]
    (model,) = dev.resources("realtime", "AWS::ApiGateway::Model").values()
    assert model["Properties"]["Schema"]["type"] == "object"
