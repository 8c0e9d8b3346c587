"""A REST API in front of one Lambda handler: IAM (SigV4) auth, throttling, request validation, X-Ray, and
KMS-encrypted access and execution logs with retention."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Fn, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from recsys.config import StageConfig
from stacks.constructs.logs import encrypted_log_group
from stacks.nag import acknowledge

STAGE_NAME = "v1"
_JSON = "application/json"
_API_LOGS_POLICY = "AmazonAPIGatewayPushToCloudWatchLogs"
BAD_BODY_RESPONSE = (
    '{"message": "invalid request body", "errors": [{"field": "body", "message": "must be a JSON object"}]}'
)


class LambdaRestApi(Construct):
    """`POST /<route>` for each route (nested paths such as `filters/list` too), all proxied to `handler`.

    Callers sign requests with SigV4 (IAM auth) and need `execute-api:Invoke` on `api.arn_for_execute_api()`.
    API Gateway checks that a JSON body is an object and answers 400 in the handler's error shape
    (`{"message", "errors": [{"field", "message"}]}`); every other check (content type, size, fields, counts) is
    the handler's, which answers 4xx errors that name the field.

    Access and execution logs are kept `log_retention_days` (default: the event tracker's function setting).
    API Gateway logs through one role per account and region: exactly one API of the platform creates it
    (`cloud_watch_role=True`, the event tracker's); the others rely on that account setting.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        api_name: str,
        description: str,
        handler: lambda_.IFunction,
        routes: Sequence[str],
        key: kms.IKey,
        throttle_rate_per_s: int,
        throttle_burst: int,
        log_retention_days: int,
        log_retention_field: str,
        cloud_watch_role: bool = True,
    ) -> None:
        super().__init__(scope, id)
        retention = dict(key=key, days=log_retention_days, retain=config.retain_data)
        access_logs = encrypted_log_group(self, "AccessLogs", field=log_retention_field, **retention)
        self.api = apigw.RestApi(
            self,
            "Api",
            rest_api_name=api_name,
            description=description,
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # API Gateway logs through one account-wide role; CDK creates it and sets the account setting.
            cloud_watch_role=cloud_watch_role,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN if cloud_watch_role else None,
            default_method_options=apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM),
            deploy_options=apigw.StageOptions(
                stage_name=STAGE_NAME,
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                # Request and response bodies hold user ids: never write them to logs.
                data_trace_enabled=False,
                throttling_rate_limit=throttle_rate_per_s,
                throttling_burst_limit=throttle_burst,
                access_log_destination=apigw.LogGroupLogDestination(access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
            ),
        )
        # API Gateway would create the execution log group itself, unencrypted and kept forever.
        execution_logs = encrypted_log_group(
            self,
            "ExecutionLogs",
            name=Fn.join("", ["API-Gateway-Execution-Logs_", self.api.rest_api_id, f"/{STAGE_NAME}"]),
            field=log_retention_field,
            **retention,
        )
        self.api.deployment_stage.node.add_dependency(execution_logs)

        validator = self.api.add_request_validator(
            "Validator", validate_request_body=True, validate_request_parameters=True
        )
        body = self.api.add_model(
            "JsonObject",
            content_type=_JSON,
            schema=apigw.JsonSchema(schema=apigw.JsonSchemaVersion.DRAFT4, type=apigw.JsonSchemaType.OBJECT),
        )
        # The handler's error shape; API Gateway's own validation message may hold quotes, so it is not embedded.
        self.api.add_gateway_response(
            "BadRequestBody",
            type=apigw.ResponseType.BAD_REQUEST_BODY,
            templates={_JSON: BAD_BODY_RESPONSE},
        )
        integration = apigw.LambdaIntegration(handler, proxy=True, allow_test_invoke=False)
        for route in routes:
            method = self.api.root.resource_for_path(route).add_method(
                "POST", integration, request_validator=validator, request_models={_JSON: body}
            )
            acknowledge(
                method.node.default_child,
                "AwsSolutions-COG4",
                "Authorized with IAM (SigV4), not a Cognito user pool: the callers are the app's back-end services "
                "holding AWS credentials, not end users with user-pool tokens.",
            )
        acknowledge(
            self.api.deployment_stage.node.default_child,
            "AwsSolutions-APIG3",
            "No WAF web ACL by default: only SigV4-signed calls from the account's own services get through, and "
            "stage throttling caps the rate; attach a WAFv2 web ACL to the stage if the API is exposed wider.",
        )
        if not cloud_watch_role:
            return
        role = self.api.node.find_child("CloudWatchRole").node.default_child
        acknowledge(
            role,
            f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/{_API_LOGS_POLICY}]",
            "The account-wide role API Gateway writes its logs with; AWS documents this managed policy for it, "
            "because API Gateway creates and names log groups of any API in the account.",
        )
