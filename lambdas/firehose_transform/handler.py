"""Firehose transform Lambda: thin handler over recsys.lake.transform."""

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from recsys.lake.transform import DROPPED, FAILED, OK, transform_records

logger = Logger()
metrics = Metrics()


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event, context):
    result = transform_records(event.get("records", []))
    metrics.add_metric(name="LakeRecordsOk", unit=MetricUnit.Count, value=result.counts[OK])
    metrics.add_metric(name="LakeRecordsDropped", unit=MetricUnit.Count, value=result.counts[DROPPED])
    metrics.add_metric(name="LakeRecordsFailed", unit=MetricUnit.Count, value=result.counts[FAILED])
    for error in result.errors[:20]:
        logger.warning("record failed", extra={"error": error})
    return result.response()
