"""Spark readers of the data lake (layout in recsys.events): events in a time range, newest user/item imports.

`lake` is a local path or an s3:// URI; s3:// is read as s3a:// (Hadoop's S3 connector, present in the
SageMaker Spark image). Columns the Personalize CSVs leave out come back as nulls, so the feature code
sees one schema whatever the dataset carries.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from recsys.batch.paths import join_uri
from recsys.batch.spec import CATEGORY_COLUMNS, JACCARD_COLUMNS
from recsys.batch.window import TimeRange
from recsys.events import EVENTS_PREFIX, ITEMS_PREFIX, USERS_PREFIX

EVENT_SCHEMA = T.StructType(
    [
        T.StructField("event_id", T.StringType()),
        T.StructField("user_id", T.StringType()),
        T.StructField("event_type", T.StringType()),
        T.StructField("timestamp", T.DoubleType()),
        T.StructField("item_id", T.StringType()),
        T.StructField("event_value", T.DoubleType()),
        T.StructField("session_id", T.StringType()),
        T.StructField("recommendation_id", T.StringType()),
        T.StructField("impression", T.ArrayType(T.StringType())),
        T.StructField("properties", T.MapType(T.StringType(), T.StringType())),
        T.StructField("received_at", T.DoubleType()),
    ]
)
USER_COLUMNS = ("USER_ID", "AGE", "GEO", "ACQUISITION_CHANNEL", "MEMBERSHIP", "TOPICS")
ITEM_COLUMNS = ("ITEM_ID", "PRICE", "IS_PAID", "CREATION_TIMESTAMP", *JACCARD_COLUMNS)


class LakeError(ValueError):
    """The lake lacks something the job needs; the message names the path."""


def spark_uri(uri: str) -> str:
    return "s3a://" + uri[len("s3://") :] if uri.startswith("s3://") else uri


def _hadoop_fs(spark: SparkSession, uri: str):
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(uri)
    return path, path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())


def list_dir(spark: SparkSession, uri: str) -> list[str]:
    """Names of the entries directly under `uri` (any Hadoop filesystem); [] if it does not exist."""
    path, fs = _hadoop_fs(spark, spark_uri(uri))
    if not fs.exists(path):
        return []
    return sorted(status.getPath().getName() for status in fs.listStatus(path))


def newest_import(spark: SparkSession, lake: str, prefix: str) -> str | None:
    """URI of the newest `import_id=<id>` folder (lexicographic) under `prefix`, or None."""
    imports = [name for name in list_dir(spark, join_uri(lake, prefix)) if name.startswith("import_id=")]
    return join_uri(spark_uri(lake), prefix, imports[-1]) if imports else None


def read_events(spark: SparkSession, lake: str, time_range: TimeRange) -> DataFrame:
    """Events with time_range.start <= timestamp < time_range.end, one row per event_id.

    Partition pruning limits the files read to the range's event dates; duplicates (Firehose and
    importer redeliveries share an event_id) are dropped, so no event is counted twice.
    """
    root = join_uri(lake, EVENTS_PREFIX)
    if not list_dir(spark, root):
        raise LakeError(f"events: nothing under {root}")
    first, last = time_range.partition_dates()
    return (
        spark.read.schema(EVENT_SCHEMA)
        .json(spark_uri(root))
        .where(F.col("event_date").between(F.lit(first).cast("date"), F.lit(last).cast("date")))
        .where((F.col("timestamp") >= time_range.start) & (F.col("timestamp") < time_range.end))
        .where(F.col("user_id").isNotNull() & F.col("event_type").isNotNull())
        .drop("event_date")
        .dropDuplicates(["event_id"])
    )


def _read_csv(spark: SparkSession, uri: str | None, columns: tuple[str, ...], schema: T.StructType) -> DataFrame:
    if uri is None:
        return spark.createDataFrame([], schema)
    raw = spark.read.option("header", True).option("multiLine", True).option("escape", '"').csv(uri)
    present = {c.upper(): c for c in raw.columns}
    return raw.select(
        *(
            (F.col(f"`{present[name]}`") if name in present else F.lit(None)).cast(schema[name].dataType).alias(name)
            for name in columns
        )
    )


USERS_SCHEMA = T.StructType([T.StructField(c, T.IntegerType() if c == "AGE" else T.StringType()) for c in USER_COLUMNS])
ITEMS_SCHEMA = T.StructType(
    [T.StructField(c, T.DoubleType() if c in ("PRICE", "CREATION_TIMESTAMP") else T.StringType()) for c in ITEM_COLUMNS]
)


def read_users(spark: SparkSession, lake: str) -> DataFrame:
    """The newest users import (USERS_SCHEMA), empty if there is none; one row per USER_ID."""
    frame = _read_csv(spark, newest_import(spark, lake, USERS_PREFIX), USER_COLUMNS, USERS_SCHEMA)
    return frame.where(F.col("USER_ID").isNotNull()).dropDuplicates(["USER_ID"])


def read_items(spark: SparkSession, lake: str) -> DataFrame:
    """The newest items import (ITEMS_SCHEMA), empty if there is none; one row per ITEM_ID."""
    frame = _read_csv(spark, newest_import(spark, lake, ITEMS_PREFIX), ITEM_COLUMNS, ITEMS_SCHEMA)
    return frame.where(F.col("ITEM_ID").isNotNull()).dropDuplicates(["ITEM_ID"])


def pipe_tokens(column: str) -> F.Column:
    """Trimmed, non-empty, distinct values of a pipe-separated string column (empty array for null)."""
    parts = F.split(F.coalesce(F.col(column), F.lit("")), r"\|")
    return F.array_distinct(F.filter(F.transform(parts, lambda p: F.trim(p)), lambda p: p != F.lit("")))


def item_categories() -> F.Column:
    """Sorted distinct categories over every category-like column of an items frame."""
    return F.array_sort(F.array_distinct(F.flatten(F.array(*(pipe_tokens(c) for c in CATEGORY_COLUMNS)))))
