"""A tiny hand-checkable lake: events, users and items around one cutoff, in DataFrames or on disk.

The expected feature values in the tests are computed by hand from these rows (see the comments there).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import defaultdict
from pathlib import Path

from recsys.events import Event, event_date

CUTOFF = 1_709_251_200.0  # 2024-03-01T00:00:00Z
DAY = 86_400.0


def ago(days: float, seconds: float = 0.0) -> float:
    return CUTOFF - days * DAY + seconds


def later(days: float, seconds: float = 0.0) -> float:
    return CUTOFF + days * DAY + seconds


def ev(
    event_id: str,
    user: str,
    kind: str,
    ts: float,
    item: str | None = None,
    value: float | None = None,
    session: str | None = None,
    impression: tuple[str, ...] = (),
) -> Event:
    return Event(
        event_id=event_id,
        user_id=user,
        event_type=kind,
        timestamp=float(ts),
        item_id=item,
        event_value=None if value is None else float(value),
        session_id=session,
        impression=impression,
    )


HISTORY = [
    ev("e1", "u1", "view", ago(2), "i1", session="s1"),
    ev("e2", "u1", "click", ago(2, 60), "i1", session="s1"),
    ev("e3", "u1", "listen", ago(2, 120), "i1", 400, session="s1"),
    ev("e4", "u1", "like", ago(10), "i2"),
    ev("e5", "u1", "purchase", ago(10, 100), "i2"),
    ev("e6", "u1", "view", ago(40), "i3"),
    ev("e7", "u1", "impression", ago(1), impression=("i2", "i3", "i7")),
    ev("e8", "u1", "rating", ago(50), "i1", 8),
    ev("e9", "u1", "click", ago(65), "i3"),  # before the 60-day window
    ev("e11", "u2", "watch", ago(5), "i3", 100, session="s9"),
    ev("e12", "u2", "watch", ago(5, 200), "i3", 250, session="s9"),
    ev("e13", "u2", "like", ago(20), "i3"),
    ev("e14", "u2", "view", ago(3), "i5"),
    ev("e15", "u2", "purchase", ago(25), "i1"),
]
# At or after the cutoff: labels for the training set at CUTOFF (horizon 7 days), never features.
FUTURE = [
    ev("e10", "u1", "click", CUTOFF, "i1"),
    ev("e20", "u1", "listen", later(1), "i2", 200),
    ev("e21", "u1", "listen", later(1, 300), "i2", 150),
    ev("e22", "u2", "purchase", later(2), "i3"),
    ev("e23", "u2", "impression", later(2), impression=("i1", "i3", "i5")),
    ev("e24", "u1", "click", later(8), "i5"),  # after the horizon
    ev("e25", "u3", "view", later(3), "i6"),
]
EVENTS = HISTORY + FUTURE

USERS = [
    {
        "USER_ID": "u1",
        "AGE": "30",
        "GEO": "ES",
        "ACQUISITION_CHANNEL": "ads",
        "MEMBERSHIP": "gold",
        "TOPICS": "drama|Comedy",
    },
    {"USER_ID": "u2", "AGE": "", "GEO": "IN", "ACQUISITION_CHANNEL": "", "MEMBERSHIP": "", "TOPICS": ""},
    {"USER_ID": "u3", "AGE": "17", "GEO": "US", "ACQUISITION_CHANNEL": "organic", "MEMBERSHIP": "", "TOPICS": "Horror"},
]
ITEMS = [
    {
        "ITEM_ID": "i1",
        "GENRES": "Comedy|Drama",
        "CREATOR": "c1",
        "FRANCHISE": "f1",
        "PRICE": "10",
        "IS_PAID": "true",
        "CREATION_TIMESTAMP": str(ago(100)),
    },
    {
        "ITEM_ID": "i2",
        "GENRES": "Comedy",
        "CREATOR": "c1",
        "FRANCHISE": "",
        "PRICE": "20",
        "IS_PAID": "0",
        "CREATION_TIMESTAMP": str(ago(10)),
    },
    {
        "ITEM_ID": "i3",
        "GENRES": "Drama|Horror",
        "CREATOR": "c2",
        "FRANCHISE": "f1",
        "PRICE": "30",
        "IS_PAID": "",
        "CREATION_TIMESTAMP": str(ago(1)),
    },
    # Released after the cutoff: not in the catalogue at CUTOFF.
    {
        "ITEM_ID": "i4",
        "GENRES": "Horror",
        "CREATOR": "c3",
        "FRANCHISE": "",
        "PRICE": "",
        "IS_PAID": "",
        "CREATION_TIMESTAMP": str(later(5)),
    },
    {
        "ITEM_ID": "i5",
        "GENRES": "",
        "CREATOR": "",
        "FRANCHISE": "",
        "PRICE": "",
        "IS_PAID": "",
        "CREATION_TIMESTAMP": "",
    },
    {
        "ITEM_ID": "i6",
        "GENRES": "Comedy",
        "CREATOR": "",
        "FRANCHISE": "",
        "PRICE": "",
        "IS_PAID": "no",
        "CREATION_TIMESTAMP": str(ago(300)),
    },
]


def events_frame(spark, events: list[Event]):
    from recsys.batch.lake import EVENT_SCHEMA

    rows = [{**e.to_dict(), "impression": list(e.impression)} for e in events]
    return spark.createDataFrame(rows, EVENT_SCHEMA)


def _csv_frame(spark, rows: list[dict], reader_schema):
    """Rows as the lake reader returns them: Personalize columns typed by `reader_schema`, blanks as nulls."""
    from pyspark.sql import functions as F

    strings = spark.createDataFrame([{k: (v or None) for k, v in row.items()} for row in rows])
    return strings.select(
        *(
            (F.col(field.name) if field.name in strings.columns else F.lit(None)).cast(field.dataType).alias(field.name)
            for field in reader_schema
        )
    )


def users_frame(spark, rows: list[dict] = USERS):
    from recsys.batch.lake import USERS_SCHEMA

    return _csv_frame(spark, rows, USERS_SCHEMA)


def items_frame(spark, rows: list[dict] = ITEMS):
    from recsys.batch.lake import ITEMS_SCHEMA

    return _csv_frame(spark, rows, ITEMS_SCHEMA)


def _gz_csv(rows: list[dict]) -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return gzip.compress(text.getvalue().encode())


def write_lake(
    root: Path,
    events: list[Event] = EVENTS,
    users: list[dict] = USERS,
    items: list[dict] = ITEMS,
    import_id: str = "20240301T000000Z",
) -> Path:
    """The lake layout of recsys.events under `root`: events by event date, one users and one items import."""
    by_date: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_date[event_date(event.timestamp)].append(event)
    for date, day_events in by_date.items():
        folder = root / "events" / f"event_date={date}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "part-0000.jsonl.gz").write_bytes(
            gzip.compress("".join(e.to_json() + "\n" for e in day_events).encode())
        )
    for name, rows in (("users", users), ("items", items)):
        folder = root / "datasets" / name / f"import_id={import_id}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.csv.gz").write_bytes(_gz_csv(rows))
    return root
