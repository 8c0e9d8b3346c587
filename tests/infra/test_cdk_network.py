"""NetworkStack: subnets, routes, endpoints, flow logs, the platform Lambdas' security group."""

from __future__ import annotations

from typing import Any

from aws_cdk.assertions import Match
from cdk_synth import Synth

from stacks.network import INTERFACE_ENDPOINTS

# The last part of each endpoint's service name (com.amazonaws.<region>.<suffix>).
EXPECTED_INTERFACE_SERVICES = {
    "sqs",
    "sns",
    "sagemaker.api",
    "sagemaker.runtime",
    "secretsmanager",
    "monitoring",
    "logs",
    "kms",
    "sts",
    "kinesis-firehose",
}


def _tag(resource: dict[str, Any], key: str) -> str | None:
    return next((tag["Value"] for tag in resource["Properties"].get("Tags", []) if tag["Key"] == key), None)


def _subnets(synth: Synth, group: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: subnet
        for logical_id, subnet in synth.resources("network", "AWS::EC2::Subnet").items()
        if _tag(subnet, "aws-cdk:subnet-name") == group
    }


def _default_routes(synth: Synth) -> dict[str, dict[str, Any]]:
    """Route table logical id -> its 0.0.0.0/0 route."""
    return {
        route["Properties"]["RouteTableId"]["Ref"]: route["Properties"]
        for route in synth.resources("network", "AWS::EC2::Route").values()
        if route["Properties"].get("DestinationCidrBlock") == "0.0.0.0/0"
    }


def _route_table_of(synth: Synth, subnet_id: str) -> str:
    (table,) = [
        assoc["Properties"]["RouteTableId"]["Ref"]
        for assoc in synth.resources("network", "AWS::EC2::SubnetRouteTableAssociation").values()
        if assoc["Properties"]["SubnetId"] == {"Ref": subnet_id}
    ]
    return table


def test_vpc_cidr_and_nat_gateways_follow_the_stage_config(synth: Synth) -> None:
    network = synth.config.network
    synth.template("network").has_resource_properties(
        "AWS::EC2::VPC", {"CidrBlock": network.cidr, "EnableDnsHostnames": True, "EnableDnsSupport": True}
    )
    synth.template("network").resource_count_is("AWS::EC2::NatGateway", network.nat_gateways)


def test_every_subnet_group_spans_the_configured_availability_zones(synth: Synth) -> None:
    for group in ("public", "app", "data"):
        subnets = _subnets(synth, group)
        azs = sorted(subnet["Properties"]["AvailabilityZone"]["Fn::Select"][0] for subnet in subnets.values())
        assert azs == list(range(synth.config.network.max_azs)), group


def test_app_subnets_are_private_and_leave_the_vpc_only_through_nat(dev: Synth) -> None:
    routes = _default_routes(dev)
    for logical_id, subnet in _subnets(dev, "app").items():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False
        route = routes[_route_table_of(dev, logical_id)]
        assert "NatGatewayId" in route and "GatewayId" not in route


def test_data_subnets_have_no_route_out_of_the_vpc(dev: Synth) -> None:
    routes = _default_routes(dev)
    for logical_id, subnet in _subnets(dev, "data").items():
        assert subnet["Properties"]["MapPublicIpOnLaunch"] is False
        assert _route_table_of(dev, logical_id) not in routes


def test_interface_endpoints_cover_every_service_the_platform_calls(dev: Synth) -> None:
    endpoints = [
        endpoint["Properties"]
        for endpoint in dev.resources("network", "AWS::EC2::VPCEndpoint").values()
        if endpoint["Properties"]["VpcEndpointType"] == "Interface"
    ]
    services = {endpoint["ServiceName"]["Fn::Join"][1][-1].removeprefix(".") for endpoint in endpoints}
    assert services == EXPECTED_INTERFACE_SERVICES
    assert len(endpoints) == len(INTERFACE_ENDPOINTS)
    app_subnets = [{"Ref": logical_id} for logical_id in _subnets(dev, "app")]
    for endpoint in endpoints:
        assert endpoint["PrivateDnsEnabled"] is True
        assert sorted(endpoint["SubnetIds"], key=str) == sorted(app_subnets, key=str)


def test_interface_endpoints_admit_https_from_the_vpc_only(dev: Synth) -> None:
    dev.template("network").has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": Match.string_like_regexp("Interface VPC endpoints"),
            "SecurityGroupIngress": [
                {
                    "CidrIp": dev.config.network.cidr,
                    "FromPort": 443,
                    "ToPort": 443,
                    "IpProtocol": "tcp",
                    "Description": Match.any_value(),
                }
            ],
        },
    )


def test_s3_gateway_endpoint_serves_the_private_subnets(dev: Synth) -> None:
    (gateway,) = [
        endpoint["Properties"]
        for endpoint in dev.resources("network", "AWS::EC2::VPCEndpoint").values()
        if endpoint["Properties"]["VpcEndpointType"] == "Gateway"
    ]
    assert gateway["ServiceName"]["Fn::Join"][1][-1] == ".s3"
    private_tables = {_route_table_of(dev, s) for group in ("app", "data") for s in _subnets(dev, group)}
    assert {table["Ref"] for table in gateway["RouteTableIds"]} == private_tables


def test_flow_logs_capture_all_traffic_into_an_encrypted_log_group_with_retention(synth: Synth) -> None:
    flow_log = synth.one("network", "AWS::EC2::FlowLog")["Properties"]
    assert flow_log["ResourceType"] == "VPC" and flow_log["TrafficType"] == "ALL"
    assert flow_log["LogDestinationType"] == "cloud-watch-logs"
    log_group = synth.templates["network"]["Resources"][flow_log["LogGroupName"]["Ref"]]["Properties"]
    assert log_group["RetentionInDays"] == synth.config.network.flow_log_retention_days
    assert synth.resolve_import(log_group["KmsKeyId"]) == synth.key_arn()


def test_default_security_group_is_stripped_of_its_rules(dev: Synth) -> None:
    dev.template("network").resource_count_is("Custom::VpcRestrictDefaultSG", 1)


def test_lambda_security_group_only_reaches_https_and_memorydb(synth: Synth) -> None:
    (group,) = [
        sg["Properties"]
        for sg in synth.resources("network", "AWS::EC2::SecurityGroup").values()
        if sg["Properties"]["GroupDescription"].startswith("Platform Lambdas")
    ]
    assert "SecurityGroupIngress" not in group
    egress = {(rule["CidrIp"], rule["FromPort"], rule["ToPort"]) for rule in group["SecurityGroupEgress"]}
    assert egress == {("0.0.0.0/0", 443, 443), (synth.config.network.cidr, 6379, 6379)}
