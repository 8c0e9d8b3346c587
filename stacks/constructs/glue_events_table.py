"""The lake's Glue database and its `events` table, so that Athena can query what Firehose and the importer write.

The table reads gzip JSON lines with the OpenX JSON SerDe; its columns come from `recsys.events.Event` and its
`event_date` partitions are projected (recsys.lake.catalog), so no crawler or partition repair is ever needed.
"""

from __future__ import annotations

from aws_cdk import Aws
from aws_cdk import aws_glue as glue
from aws_cdk import aws_s3 as s3
from constructs import Construct

from recsys.config import StageConfig
from recsys.lake.catalog import event_columns, events_location, projection_parameters
from recsys.lake.delivery import PARTITION_KEY

JSON_SERDE = "org.openx.data.jsonserde.JsonSerDe"
TEXT_INPUT = "org.apache.hadoop.mapred.TextInputFormat"
TEXT_OUTPUT = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"


class LakeCatalog(Construct):
    def __init__(self, scope: Construct, id: str, *, config: StageConfig, bucket: s3.IBucket) -> None:
        super().__init__(scope, id)
        names = config.names
        self.database_name = names.glue_database
        self.database = glue.CfnDatabase(
            self,
            "Database",
            catalog_id=Aws.ACCOUNT_ID,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name,
                description=f"{config.prefix}: the data lake (events, feature store offline tables)",
            ),
        )
        self.events_table = glue.CfnTable(
            self,
            "EventsTable",
            catalog_id=Aws.ACCOUNT_ID,
            database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=names.events_table,
                description="Canonical events (recsys.events.Event), one JSON per line, by event date",
                table_type="EXTERNAL_TABLE",
                parameters={
                    "classification": "json",
                    "compressionType": "gzip",
                    **projection_parameters(bucket.bucket_name),
                },
                partition_keys=[glue.CfnTable.ColumnProperty(name=PARTITION_KEY, type="string")],
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    location=events_location(bucket.bucket_name),
                    input_format=TEXT_INPUT,
                    output_format=TEXT_OUTPUT,
                    compressed=True,
                    columns=[glue.CfnTable.ColumnProperty(name=name, type=type_) for name, type_ in event_columns()],
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library=JSON_SERDE,
                        # A malformed line fails the query rather than silently becoming nulls.
                        parameters={"ignore.malformed.json": "FALSE"},
                    ),
                ),
            ),
        )
        self.events_table.add_resource_dependency(self.database)
