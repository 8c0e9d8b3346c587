"""Writing to the data lake, all or nothing: files are staged, then published under their final keys together.

One abstraction, two backends with the same layout (recsys.events): `S3Lake` (s3://bucket[/prefix]) and
`LocalLake` (a folder; what Spark local mode and the tests read). Staged files live under `_staging/<id>/`, which
readers ignore (Spark skips names starting with "_"); `discard` removes them, `publish` moves one to its final key.
Publishing is per file, so a crash mid-publish can leave some final files of an import: re-running the same import
writes the same keys with the same bytes, so it converges.

`EventPartWriter` sorts canonical events into gzip JSON-lines files by event date, in bounded memory.
"""

from __future__ import annotations

import gzip
import itertools
import os
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from botocore.exceptions import ClientError

from recsys import aws
from recsys.datasets.errors import DatasetImportError
from recsys.datasets.sources import split_s3_uri
from recsys.events import EVENTS_PREFIX, Event, event_date

STAGING_PREFIX = "_staging"
GZIP_LEVEL = 6


class LakeWriter(ABC):
    """Staged writes into a lake, published together at the end."""

    def __init__(self) -> None:
        self.staging_id = uuid.uuid4().hex

    @property
    @abstractmethod
    def location(self) -> str:
        """The lake's root, as the user wrote it: s3://bucket[/prefix] or a folder path."""

    @abstractmethod
    def create(self, name: str) -> StagedFile:
        """A new staged file `name`, open for writing; closing it finishes it."""

    @abstractmethod
    def publish(self, name: str, key: str) -> None:
        """Move the staged file `name` to its final `key` (replacing what is there)."""

    @abstractmethod
    def discard(self) -> None:
        """Remove every staged file that was not published."""


class LocalLake(LakeWriter):
    """A lake in a local folder: staged files are renamed into place (atomic per file)."""

    def __init__(self, root: str | Path) -> None:
        super().__init__()
        self.root = Path(root)
        self._staging = self.root / STAGING_PREFIX / self.staging_id

    @property
    def location(self) -> str:
        return str(self.root)

    def create(self, name: str) -> StagedFile:
        path = self._staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "wb")

    def publish(self, name: str, key: str) -> None:
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._staging / name, target)

    def discard(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)
        try:
            self._staging.parent.rmdir()
        except OSError:
            pass  # another import is staging next to us, or it is gone already


class StagedFile(Protocol):
    """A staged file open for writing (what gzip needs of it)."""

    def write(self, data: bytes) -> int: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class _S3StagedFile:
    """A local temporary file that uploads itself to S3 when closed (multipart for large files)."""

    def __init__(self, bucket: str, key: str) -> None:
        self._file = tempfile.TemporaryFile()
        self._bucket, self._key = bucket, key

    def write(self, data: bytes) -> int:
        return self._file.write(data)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            self._file.seek(0)
            aws.client("s3", read_timeout=120.0).upload_fileobj(self._file, self._bucket, self._key)
        finally:
            self._file.close()


class S3Lake(LakeWriter):
    """A lake in an S3 bucket (under an optional prefix): staged objects are copied into place server-side."""

    def __init__(self, bucket: str, prefix: str = "") -> None:
        super().__init__()
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _staged_key(self, name: str) -> str:
        return self._key(f"{STAGING_PREFIX}/{self.staging_id}/{name}")

    def create(self, name: str) -> StagedFile:
        return _S3StagedFile(self.bucket, self._staged_key(name))

    def publish(self, name: str, key: str) -> None:
        s3 = aws.client("s3", read_timeout=120.0)
        staged = self._staged_key(name)
        s3.copy({"Bucket": self.bucket, "Key": staged}, self.bucket, self._key(key))
        s3.delete_object(Bucket=self.bucket, Key=staged)

    def discard(self) -> None:
        s3 = aws.client("s3")
        paginator = s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._staged_key("")):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                s3.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})


def open_lake(destination: str | Path) -> LakeWriter:
    """The lake at `destination`: s3://bucket[/prefix] or a local folder (created if missing)."""
    text = str(destination)
    if text.startswith("s3://"):
        bucket, prefix = split_s3_uri(text)
        try:
            aws.client("s3").head_bucket(Bucket=bucket)
        except ClientError as exc:
            raise DatasetImportError(f"{text}: the bucket cannot be reached ({exc})") from exc
        return S3Lake(bucket, prefix)
    Path(text).mkdir(parents=True, exist_ok=True)
    return LocalLake(text)


def gzip_writer(lake: LakeWriter, name: str) -> tuple[gzip.GzipFile, StagedFile]:
    """A gzip stream into the staged file `name`, and the file itself (close both, stream first).

    The gzip header carries no time or name, so the same content always gives the same bytes.
    """
    raw = lake.create(name)
    return gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=raw, mtime=0), raw


@dataclass(frozen=True)
class StagedPart:
    """A finished staged events file: its staged name, event date and number within the date."""

    name: str
    date: str
    number: int
    events: int

    def key(self, content_id: str) -> str:
        """Final key: events/event_date=YYYY-MM-DD/import-<content_id>-<n>.jsonl.gz."""
        return f"{EVENTS_PREFIX}/event_date={self.date}/import-{content_id}-{self.number:05d}.jsonl.gz"


class EventPartWriter:
    """Canonical events into gzip JSON-lines files, by event date, in bounded memory, whatever the input order.

    Input is often not in time order (MovieTweetings is sorted by user), so events of any date can come at any
    time. They wait in memory, grouped by date, up to `buffer_bytes`; then every group is appended to its date's
    spill file on local disk (as a fast gzip member). `close` writes each date's events, spilled then buffered, in
    input order, into files of at most `events_per_part` events. The files depend only on the events and their
    order, so the same input always gives the same bytes.
    """

    _SPILL_LEVEL = 1
    _WRITE_BATCH = 1024

    def __init__(self, lake: LakeWriter, *, events_per_part: int, buffer_bytes: int) -> None:
        if events_per_part < 1 or buffer_bytes < 1:
            raise ValueError("events_per_part and buffer_bytes must be positive")
        self._lake = lake
        self._events_per_part = events_per_part
        self._buffer_bytes = buffer_bytes
        self._buffers: dict[str, list[bytes]] = {}
        self._buffered = 0
        self._spilled: set[str] = set()
        self._spill_dir: tempfile.TemporaryDirectory[str] | None = None
        self._dates: dict[int, str] = {}
        self.spills = 0

    def _date(self, timestamp: float) -> str:
        day = int(timestamp // 86400)
        date = self._dates.get(day)
        if date is None:
            date = self._dates[day] = event_date(timestamp)
        return date

    def write(self, event: Event) -> None:
        line = event.to_json().encode() + b"\n"
        date = self._date(event.timestamp)
        buffer = self._buffers.get(date)
        if buffer is None:
            buffer = self._buffers[date] = []
        buffer.append(line)
        self._buffered += len(line)
        if self._buffered >= self._buffer_bytes:
            self._spill()

    def _spill_path(self, date: str) -> Path:
        if self._spill_dir is None:
            self._spill_dir = tempfile.TemporaryDirectory(prefix="recsys-import-spill-")
        return Path(self._spill_dir.name) / f"{date}.jsonl.gz"

    def _spill(self) -> None:
        for date, lines in self._buffers.items():
            with open(self._spill_path(date), "ab") as spill:
                spill.write(gzip.compress(b"".join(lines), compresslevel=self._SPILL_LEVEL, mtime=0))
            self._spilled.add(date)
        self._buffers.clear()
        self._buffered = 0
        self.spills += 1

    def _lines(self, date: str) -> Iterator[bytes]:
        if date in self._spilled:
            with gzip.open(self._spill_path(date), "rb") as spill:
                yield from spill
        yield from self._buffers.get(date, ())

    def close(self) -> list[StagedPart]:
        """Write every date's files into the lake's staging area; the staged parts, by date and number."""
        parts: list[StagedPart] = []
        try:
            for date in sorted(self._spilled | self._buffers.keys()):
                parts += self._write_date(date)
        finally:
            self.discard()
        return parts

    def _write_date(self, date: str) -> list[StagedPart]:
        parts: list[StagedPart] = []
        lines = self._lines(date)
        while True:
            batch = list(itertools.islice(lines, min(self._WRITE_BATCH, self._events_per_part)))
            if not batch:
                return parts
            name = f"{EVENTS_PREFIX}/{date}/{len(parts):05d}.jsonl.gz"
            stream, raw = gzip_writer(self._lake, name)
            events = 0
            while batch:
                stream.write(b"".join(batch))
                events += len(batch)
                batch = list(itertools.islice(lines, min(self._WRITE_BATCH, self._events_per_part - events)))
            stream.close()
            raw.close()
            parts.append(StagedPart(name, date, len(parts), events))

    def discard(self) -> None:
        """Drop buffered and spilled events (after close, or when the import is abandoned)."""
        self._buffers.clear()
        self._buffered = 0
        self._spilled.clear()
        if self._spill_dir is not None:
            self._spill_dir.cleanup()
            self._spill_dir = None
