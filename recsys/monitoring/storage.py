"""Reading and writing the monitoring jobs' inputs and outputs at an S3 URI or a local path.

`s3://bucket/prefix` goes through `recsys.aws.client("s3")`; anything else is a
local path, so the same job runs against the deployed lake or a local folder.
Files ending in `.gz` are gzip-compressed (Firehose output).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

# The lake's daily partitions (recsys.events: events/event_date=YYYY-MM-DD/...).
_PARTITION_DAY = re.compile(r"/event_date=(\d{4}-\d{2}-\d{2})/")


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket:
        raise ValueError(f"{uri!r}: an S3 URI needs a bucket, s3://bucket/key")
    return bucket, key


def join(base: str, name: str) -> str:
    if is_s3(base):
        return base.rstrip("/") + "/" + name
    return str(Path(base) / name)


def _s3():
    from recsys import aws

    return aws.client("s3")


def read_bytes(uri: str) -> bytes:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        data = _s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    else:
        data = Path(uri).read_bytes()
    return gzip.decompress(data) if uri.endswith(".gz") else data


def write_bytes(uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
    if is_s3(uri):
        bucket, key = split_s3(uri)
        _s3().put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
    else:
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def exists(uri: str) -> bool:
    if not is_s3(uri):
        return Path(uri).exists()
    from botocore.exceptions import ClientError

    bucket, key = split_s3(uri)
    try:
        _s3().head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def write_json(uri: str, value: Any) -> None:
    write_bytes(uri, json.dumps(value, indent=1, sort_keys=True).encode(), "application/json")


def write_html(uri: str, html: str) -> None:
    write_bytes(uri, html.encode(), "text/html; charset=utf-8")


def list_files(source: str) -> list[str]:
    """Every object under an S3 prefix or file under a local folder (or the one file `source` names), sorted."""
    if is_s3(source):
        bucket, prefix = split_s3(source)
        paginator = _s3().get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=bucket, Prefix=prefix)
        keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
        return [f"s3://{bucket}/{key}" for key in sorted(keys) if not key.endswith("/")]
    path = Path(source)
    if path.is_file():
        return [str(path)]
    if not path.is_dir():
        raise FileNotFoundError(f"{source}: no such file or folder")
    return sorted(str(p) for p in path.rglob("*") if p.is_file())


@dataclass(frozen=True)
class Line:
    """One JSON-lines record and where it came from, so a bad one can be named."""

    location: str
    number: int
    text: str

    @property
    def where(self) -> str:
        return f"{self.location}:{self.number}"


def iter_lines(source: str, since: float | None = None) -> Iterator[Line]:
    """The non-blank lines of every file under `source`.

    With `since` (unix s), files in a lake partition `event_date=YYYY-MM-DD` more than a day before it are skipped:
    every event in them is older (the day of slack covers clients' clock skew at partition boundaries), so a look
    every few minutes reads the recent partitions, not the whole lake.
    """
    first_day = None
    if since is not None:
        first_day = (datetime.fromtimestamp(since, timezone.utc).date() - timedelta(days=1)).isoformat()
    for location in list_files(source):
        day = _PARTITION_DAY.search(location)
        if first_day is not None and day is not None and day.group(1) < first_day:
            continue
        for number, raw in enumerate(read_bytes(location).decode("utf-8", errors="replace").splitlines(), start=1):
            if raw.strip():
                yield Line(location, number, raw)


def write_report(report_uri: str, kind: str, stamp: str, data: Any, html: str) -> list[str]:
    """Write `<kind>-<stamp>.json/.html` (history) and `<kind>-latest.json/.html` (what on-call opens)."""
    written = []
    for name in (stamp, "latest"):
        json_uri, html_uri = join(report_uri, f"{kind}-{name}.json"), join(report_uri, f"{kind}-{name}.html")
        write_json(json_uri, data)
        write_html(html_uri, html)
        written += [json_uri, html_uri]
    return written
