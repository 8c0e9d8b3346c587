"""Listing and staging the lake's S3 objects, with no Spark: what the daily pipeline's jobs read, found the same way
by the local batch job, the local daily pipeline and the pipeline's Lambda steps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from recsys import aws
from recsys.batch.window import DAY_S, parse_cutoff
from recsys.events import EVENTS_PREFIX, ITEMS_PREFIX, USERS_PREFIX


def keys(bucket: str, prefix: str) -> list[str]:
    paginator = aws.client("s3").get_paginator("list_objects_v2")
    return [obj["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for obj in page.get("Contents", [])]


def event_dates(bucket: str) -> list[str]:
    """The lake's event partitions (event_date=YYYY-MM-DD), oldest first."""
    paginator = aws.client("s3").get_paginator("list_objects_v2")
    prefixes = [p["Prefix"] for page in paginator.paginate(Bucket=bucket, Prefix=f"{EVENTS_PREFIX}/", Delimiter="/")
                for p in page.get("CommonPrefixes", [])]
    return sorted(p.rstrip("/").split("event_date=", 1)[1] for p in prefixes if "event_date=" in p)


def latest_cutoff(bucket: str, dates: list[str] | None = None) -> float:
    """Midnight after the newest event date in the lake: a cutoff that sees all of the lake's history. `dates`: the
    bucket's `event_dates`, when already listed."""
    dates = event_dates(bucket) if dates is None else dates
    if not dates:
        raise ValueError(f"lake: no events under s3://{bucket}/{EVENTS_PREFIX}/")
    return parse_cutoff(dates[-1]) + DAY_S


def newest_import(bucket: str, prefix: str) -> list[str]:
    """The objects of the newest import_id under `prefix` (users/ or items/); none if nothing was imported."""
    imports = sorted({key.split("/")[2] for key in keys(bucket, f"{prefix}/") if "/import_id=" in key})
    return keys(bucket, f"{prefix}/{imports[-1]}/") if imports else []


def history_keys(bucket: str, wanted: Callable[[str], bool]) -> list[str]:
    """The event partitions whose date is `wanted`, then the newest users and items imports: what a job reads."""
    found = [key for date in event_dates(bucket) if wanted(date)
             for key in keys(bucket, f"{EVENTS_PREFIX}/event_date={date}/")]
    return found + newest_import(bucket, USERS_PREFIX) + newest_import(bucket, ITEMS_PREFIX)


def download(bucket: str, object_keys: list[str], destination: Path) -> int:
    """Copy the objects under `destination`, at their keys (what a ProcessingInput does); returns the count."""
    s3 = aws.client("s3")
    for key in object_keys:
        target = destination / key
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
    return len(object_keys)
