"""The Glue/Athena view of the lake's events: columns derived from `recsys.events.Event`, partition projection on
`event_date` (no crawler, no MSCK REPAIR: a new day's partition is queryable as soon as Firehose writes it).

Used by stacks/constructs/glue_events_table.py.
"""

from __future__ import annotations

from dataclasses import fields

from recsys.events import EVENTS_PREFIX, MIN_TIMESTAMP, Event, event_date
from recsys.lake.delivery import PARTITION_KEY

# Event field annotations (strings: recsys.events uses postponed annotations) as Hive types.
_HIVE_TYPES = {
    "str": "string",
    "str | None": "string",
    "float": "double",
    "float | None": "double",
    "tuple[str, ...]": "array<string>",
    "dict[str, str]": "map<string,string>",
}
# The first day a partition may exist (recsys.events.MIN_TIMESTAMP) up to today.
PROJECTION_RANGE = f"{event_date(MIN_TIMESTAMP)},NOW"


def event_columns() -> list[tuple[str, str]]:
    """(name, Hive type) of every Event field, in declaration order."""
    columns = []
    for event_field in fields(Event):
        annotation = str(event_field.type)
        if annotation not in _HIVE_TYPES:
            raise TypeError(f"Event.{event_field.name}: no Hive type for {annotation!r}; add it to _HIVE_TYPES")
        columns.append((event_field.name, _HIVE_TYPES[annotation]))
    return columns


def events_location(bucket_name: str) -> str:
    return f"s3://{bucket_name}/{EVENTS_PREFIX}/"


def projection_parameters(bucket_name: str) -> dict[str, str]:
    """Athena partition projection: one partition per day, at the prefix Firehose and the importer write."""
    return {
        "projection.enabled": "true",
        f"projection.{PARTITION_KEY}.type": "date",
        f"projection.{PARTITION_KEY}.format": "yyyy-MM-dd",
        f"projection.{PARTITION_KEY}.range": PROJECTION_RANGE,
        f"projection.{PARTITION_KEY}.interval": "1",
        f"projection.{PARTITION_KEY}.interval.unit": "DAYS",
        "storage.location.template": f"{events_location(bucket_name)}{PARTITION_KEY}=${{{PARTITION_KEY}}}/",
    }
