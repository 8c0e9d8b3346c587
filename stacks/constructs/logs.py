"""KMS-encrypted CloudWatch log groups with a retention taken from the stage config."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def retention_days(days: int, field: str) -> logs.RetentionDays:
    """CloudWatch Logs accepts a fixed set of retention periods; anything else is a config error."""
    try:
        return _RETENTION[days]
    except KeyError:
        allowed = ", ".join(str(d) for d in _RETENTION)
        raise ValueError(f"{field}: {days} days is not a CloudWatch Logs retention period (one of {allowed})") from None


def encrypted_log_group(
    scope: Construct,
    id: str,
    *,
    key: kms.IKey,
    days: int,
    field: str,
    retain: bool,
    name: str | None = None,
) -> logs.LogGroup:
    return logs.LogGroup(
        scope,
        id,
        log_group_name=name,
        encryption_key=key,
        retention=retention_days(days, field),
        removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
    )
