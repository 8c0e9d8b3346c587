"""Evaluation of the stream's S3 prefix expressions (what the local Firehose writes and the CDK stream is given)."""

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recsys.config import FirehoseConfig, load_stage
from recsys.events import MAX_TIMESTAMP, MIN_TIMESTAMP, event_date
from recsys.lake.catalog import event_columns, projection_parameters
from recsys.lake.delivery import (
    ERRORS_S3_PREFIX,
    EVENTS_S3_PREFIX,
    PrefixError,
    object_name,
    render_prefix,
)

timestamps = st.floats(min_value=MIN_TIMESTAMP, max_value=MAX_TIMESTAMP - 1)


@given(event_time=timestamps, arrival=timestamps)
def test_events_land_in_the_partition_of_their_event_time_whatever_their_arrival(event_time, arrival):
    prefix = render_prefix(EVENTS_S3_PREFIX, arrival=arrival, partition_keys={"event_date": event_date(event_time)})
    assert prefix == f"events/event_date={event_date(event_time)}/"


@given(arrival=timestamps)
def test_timestamp_expressions_use_the_arrival_time_in_utc(arrival):
    prefix = render_prefix("x/!{timestamp:yyyy/MM/dd/HH}/!{timestamp:mm-ss}/", arrival=arrival)
    assert prefix == time.strftime("x/%Y/%m/%d/%H/%M-%S/", time.gmtime(arrival))


def test_error_prefix_names_the_error_type_and_arrival_date():
    prefix = render_prefix(ERRORS_S3_PREFIX, arrival=1_714_564_800.0, error_output_type="processing-failed")
    assert prefix == "events-errors/processing-failed/2024-05-01/"


@pytest.mark.parametrize(
    ("template", "arguments", "message"),
    [
        (EVENTS_S3_PREFIX, {}, "the transform returned no 'event_date' key"),
        (EVENTS_S3_PREFIX, {"partition_keys": {"event_date": ""}}, "no 'event_date' key"),
        (ERRORS_S3_PREFIX, {}, "only error prefixes may use it"),
        ("!{timestamp:yyyy-QQ}/", {}, "only yyyy, MM, dd, HH, mm, ss are supported"),
        ("!{partitionKeyFromQuery:day}/", {}, "not an expression this stand-in evaluates"),
    ],
)
def test_expressions_that_cannot_be_evaluated_fail_with_the_expression_named(template, arguments, message):
    with pytest.raises(PrefixError, match=message):
        render_prefix(template, arrival=1_714_564_800.0, **arguments)


def test_object_names_follow_firehose_and_the_lake_extension():
    name = object_name("recsys-dev-events-to-lake", 1_714_564_800.0, "abc")
    assert name == "recsys-dev-events-to-lake-1-2024-05-01-12-00-00-abc.jsonl.gz"


def test_catalog_columns_cover_every_event_field_with_hive_types():
    columns = dict(event_columns())
    assert columns["timestamp"] == "double" and columns["user_id"] == "string"
    assert columns["properties"] == "map<string,string>" and columns["impression"] == "array<string>"


def test_projected_partition_location_is_the_firehose_prefix():
    template = projection_parameters("lake-bucket")["storage.location.template"]
    day = "2024-05-01"
    assert template.replace("${event_date}", day) == "s3://lake-bucket/" + render_prefix(
        EVENTS_S3_PREFIX, arrival=0.0, partition_keys={"event_date": day}
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"buffer_size_mb": 32}, "firehose.buffer_size_mb: dynamic partitioning needs 64..128"),
        ({"buffer_interval_s": 0}, "firehose.buffer_interval_s: must be 1..900"),
        ({"processor_buffer_size_mb": 4}, "firehose.processor_buffer_size_mb: must be 0.2..3"),
        ({"processor_retries": -1}, "firehose.processor_retries"),
        ({"s3_retry_s": 7201}, "firehose.s3_retry_s"),
    ],
)
def test_firehose_config_refuses_what_firehose_would_with_the_field_named(settings, message):
    with pytest.raises(ValueError, match=message):
        FirehoseConfig(**settings)
    assert FirehoseConfig().buffer_size_mb == 64 and load_stage("prod").firehose.buffer_interval_s == 300
