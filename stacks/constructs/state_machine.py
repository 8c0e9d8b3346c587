"""Step Functions state machines as the platform runs them, one definition for every stack."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from stacks.constructs.logs import encrypted_log_group


def logged_state_machine(
    scope: Construct,
    id: str,
    *,
    name: str,
    definition: sfn.IChainable,
    timeout: Duration,
    key: kms.IKey,
    logs_id: str,
    log_days: int,
    log_field: str,
    retain: bool,
) -> sfn.StateMachine:
    """A state machine named `name`, traced with X-Ray, its execution history encrypted with `key`, and every
    event logged to a log group encrypted with the same key (without execution data, which may hold user ids).

    `logs_id` is the log group's construct id: a retained log group must keep its logical id across releases.
    """
    logs = encrypted_log_group(scope, logs_id, key=key, days=log_days, field=log_field, retain=retain,
                               name=f"/aws/vendedlogs/states/{name}")
    return sfn.StateMachine(
        scope,
        id,
        state_machine_name=name,
        definition_body=sfn.DefinitionBody.from_chainable(definition),
        timeout=timeout,
        tracing_enabled=True,
        logs=sfn.LogOptions(destination=logs, level=sfn.LogLevel.ALL, include_execution_data=False),
        encryption_configuration=sfn.CustomerManagedEncryptionConfiguration(key),
    )
