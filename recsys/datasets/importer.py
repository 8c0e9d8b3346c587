"""Import a Personalize-format dataset (CSV files with a header row, local or on S3) into the data lake.

    report = import_dataset("data/movietweetings-csv", "s3://recsys-dev-lake-123456789012")
    print(report.summary())

What it guarantees:
- every row of every file is checked against its schema; the errors name the file, the row, the column and the
  reason, the first `max_errors_shown` are listed and all are counted;
- all or nothing: if any row is invalid, or the data is below the minimum (50 users, 50 items, 1,500 interactions
  by default: Personalize's), nothing is written (files are staged, then published only on success);
- one streaming pass per file in bounded memory, whatever the file size (no file is loaded whole);
- interactions become canonical events (recsys.events.Event) in gzip JSON lines under
  events/event_date=YYYY-MM-DD/import-<content_id>-<n>.jsonl.gz; the event id is a hash of the row's canonical
  content, and content_id a hash of the file, so importing the same file again writes the same keys with the same
  bytes and the same ids (idempotent);
- users and items are written as canonical CSVs (every schema column, in schema order) to
  datasets/users/import_id=<import_id>/users.csv.gz and datasets/items/import_id=<import_id>/items.csv.gz. These are
  snapshots: import_id starts with the import time, so the newest import sorts last and readers take it.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import hashlib
import io
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from recsys.config import DatasetImportConfig, load_stage
from recsys.datasets.counting import EXACT_LIMIT, DistinctCounter
from recsys.datasets.errors import DatasetImportError, ErrorLog, InvalidRowsError, MinimumDataError
from recsys.datasets.lake import EventPartWriter, LakeWriter, StagedPart, gzip_writer, open_lake
from recsys.datasets.rows import read_records
from recsys.datasets.schema import INTERACTIONS, ITEMS, USERS, DatasetSchema
from recsys.datasets.sources import DatasetFiles, find_dataset_files, open_text
from recsys.events import ITEMS_PREFIX, USERS_PREFIX, Event

# EVENT_TYPE is optional in Personalize; rows without one become events of this type.
DEFAULT_EVENT_TYPE = "interaction"
# Part of every id the importer derives: changing the canonical encoding must change the keys.
FORMAT_VERSION = b"recsys-import-v1"
_MAX_EVENT_TYPES = 100
_EVENT_FIELDS = frozenset(f.name for f in dataclasses.fields(Event))
# Interaction columns that are Event attributes of the same name; the others go to Event.properties.
_PROPERTY_INDEXES = tuple(
    (index, spec.attribute) for index, spec in enumerate(INTERACTIONS.fields) if spec.attribute not in _EVENT_FIELDS
)
_SNAPSHOT_PREFIXES = {"users": USERS_PREFIX, "items": ITEMS_PREFIX}


def event_id_of(cells: list[str]) -> str:
    """A deterministic event id: the hash of a row's canonical cells (equal rows, equal ids)."""
    content = "\x1f".join(cells).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(content, digest_size=16, person=FORMAT_VERSION).hexdigest()


def interaction_event(record: Any) -> Event:
    """The canonical event of an Interaction; context columns (DEVICE, GEO, ...) become properties."""
    cells = record.cells()
    properties = {attribute: cells[index] for index, attribute in _PROPERTY_INDEXES if cells[index]}
    return Event(
        event_id=event_id_of(cells),
        user_id=record.user_id,
        item_id=record.item_id,
        event_type=record.event_type or DEFAULT_EVENT_TYPE,
        timestamp=float(record.timestamp),
        event_value=record.event_value,
        session_id=record.session_id,
        recommendation_id=record.recommendation_id,
        impression=record.impression,
        properties=properties,
    )


@dataclass
class _InteractionStats:
    rows: int = 0
    users: DistinctCounter = field(default_factory=DistinctCounter)
    items: DistinctCounter = field(default_factory=DistinctCounter)
    first: int | None = None
    last: int | None = None
    event_types: Counter[str] = field(default_factory=Counter)

    def add(self, record: Any) -> None:
        self.rows += 1
        self.users.add(record.user_id)
        self.items.add(record.item_id)
        ts = record.timestamp
        if self.first is None or ts < self.first:
            self.first = ts
        if self.last is None or ts > self.last:
            self.last = ts
        event_type = record.event_type or DEFAULT_EVENT_TYPE
        if event_type in self.event_types or len(self.event_types) < _MAX_EVENT_TYPES:
            self.event_types[event_type] += 1
        else:
            self.event_types["(other)"] += 1


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote. `users`/`items` are distinct values in the interactions (estimates if not exact)."""

    import_id: str
    content_id: str
    destination: str
    files: dict[str, str]
    rows: dict[str, int]
    users: int
    items: int
    counts_exact: bool
    first_timestamp: int
    last_timestamp: int
    event_types: dict[str, int]
    keys: tuple[str, ...]

    @property
    def interactions(self) -> int:
        return self.rows["interactions"]

    def summary(self) -> str:
        approx = "" if self.counts_exact else "~"
        first, last = (time.strftime("%Y-%m-%d", time.gmtime(t)) for t in (self.first_timestamp, self.last_timestamp))
        by_count = sorted(self.event_types.items(), key=lambda kv: -kv[1])
        types = ", ".join(f"{name} {count:,}" for name, count in by_count)
        snapshots = "".join(f", {self.rows[name]:,} {name} rows" for name in ("users", "items") if name in self.rows)
        return (
            f"imported {self.interactions:,} interactions ({approx}{self.users:,} users, {approx}{self.items:,} items, "
            f"{first} to {last}; {types}){snapshots} into {self.destination} "
            f"as import {self.import_id}: {len(self.keys):,} files"
        )


@contextmanager
def _source(location: str) -> Iterator[tuple[TextIO, Any]]:
    """open_text, with unreadable content (a broken gzip file, say) turned into a DatasetImportError."""
    try:
        with open_text(location) as opened:
            yield opened
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        message = f"{location}: cannot be read ({type(exc).__name__}: {exc}); nothing was imported"
        raise DatasetImportError(message) from exc


def _stage_interactions(location: str, lake: LakeWriter, log: ErrorLog, config: DatasetImportConfig) \
        -> tuple[_InteractionStats, list[StagedPart], str]:
    stats = _InteractionStats(
        users=DistinctCounter(max(EXACT_LIMIT, config.min_users)),
        items=DistinctCounter(max(EXACT_LIMIT, config.min_items)),
    )
    writer = EventPartWriter(lake, events_per_part=config.events_per_part, buffer_bytes=config.buffer_mb << 20)
    try:
        with _source(location) as (text, digest):
            for record in read_records(text, INTERACTIONS, location, log):
                stats.add(record)
                if not log:  # once a row is invalid nothing will be published: only validate the rest
                    writer.write(interaction_event(record))
        return stats, ([] if log else writer.close()), digest.hexdigest()
    finally:
        writer.discard()


def _stage_snapshot(schema: DatasetSchema, location: str, lake: LakeWriter, log: ErrorLog) -> tuple[int, str]:
    """Stage the canonical CSV of a users or items file; (rows, staged name)."""
    name = f"{schema.dataset}.csv.gz"
    stream, raw = gzip_writer(lake, name)
    rows = 0
    with io.TextIOWrapper(stream, encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(schema.columns)
        with _source(location) as (text, _):
            for record in read_records(text, schema, location, log):
                rows += 1
                if not log:
                    writer.writerow(record.cells())
    raw.close()
    return rows, name


def _content_id(digest: str) -> str:
    return hashlib.blake2b(digest.encode(), digest_size=8, person=FORMAT_VERSION).hexdigest()


def _import_id(now: float, content_id: str) -> str:
    """Sorts by import time (readers take the newest snapshot); ends with the content id for the record."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}Z-{content_id}"


def import_files(files: DatasetFiles, lake: LakeWriter, *, config: DatasetImportConfig | None = None) -> ImportReport:
    """Validate the files and publish them into `lake` together, or raise DatasetImportError and write nothing."""
    config = config or load_stage().datasets
    log = ErrorLog(config.max_errors_shown)
    snapshots: dict[str, tuple[int, str]] = {}
    try:
        for schema in (USERS, ITEMS):
            location = files.of(schema.dataset)
            if location is not None:
                snapshots[schema.dataset] = _stage_snapshot(schema, location, lake, log)
        stats, parts, digest = _stage_interactions(files.interactions, lake, log, config)
        if log:
            raise InvalidRowsError(log)
        users, items = stats.users.count(), stats.items.count()
        if users < config.min_users or items < config.min_items or stats.rows < config.min_interactions:
            raise MinimumDataError(
                users=users, items=items, interactions=stats.rows, config=config, source=files.interactions
            )
        content_id = _content_id(digest)
        import_id = _import_id(time.time(), content_id)
        keys = []
        for part in parts:
            keys.append(part.key(content_id))
            lake.publish(part.name, keys[-1])
        for dataset, (_, name) in snapshots.items():
            keys.append(f"{_SNAPSHOT_PREFIXES[dataset]}/import_id={import_id}/{name}")
            lake.publish(name, keys[-1])
    finally:
        lake.discard()
    return ImportReport(
        import_id=import_id,
        content_id=content_id,
        destination=lake.location,
        files={name: location for name in ("interactions", "users", "items") if (location := files.of(name))},
        rows={"interactions": stats.rows, **{name: rows for name, (rows, _) in snapshots.items()}},
        users=users,
        items=items,
        counts_exact=stats.users.exact and stats.items.exact,
        first_timestamp=stats.first or 0,
        last_timestamp=stats.last or 0,
        event_types=dict(stats.event_types),
        keys=tuple(keys),
    )


def import_dataset(source: str | Path, destination: str | Path | LakeWriter, *,
                   config: DatasetImportConfig | None = None) -> ImportReport:
    """Import the dataset in `source` (a folder or s3:// prefix with interactions.csv and optionally users.csv and
    items.csv, each possibly .csv.gz) into the lake at `destination` (s3://bucket[/prefix] or a local folder).

    Raises DatasetImportError (InvalidRowsError, MinimumDataError) with a message for the user; nothing is written then.
    """
    files = find_dataset_files(source)
    lake = destination if isinstance(destination, LakeWriter) else open_lake(destination)
    return import_files(files, lake, config=config)
