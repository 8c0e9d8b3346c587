"""The serving stack's custom resource: copy the bootstrap model to each live key that is still empty.

Thin: the CDK Provider framework calls it on Create and Update (Delete leaves the keys: they are the pipeline's
by then); recsys.live_models does the work.
"""

from aws_lambda_powertools import Logger

from recsys import aws
from recsys.live_models import seed_missing

logger = Logger()


@logger.inject_lambda_context
def handler(event, context):
    props = event["ResourceProperties"]
    physical_id = f"{props['Bucket']}/live-models"
    if event["RequestType"] == "Delete":
        return {"PhysicalResourceId": physical_id}
    seeded = seed_missing(aws.client("s3"), bucket=props["Bucket"], keys=props["Keys"],
                          source_bucket=props["SourceBucket"], source_key=props["SourceKey"])
    logger.info("live models seeded", extra={"seeded": seeded})
    return {"PhysicalResourceId": physical_id, "Data": {"Seeded": ",".join(seeded)}}
