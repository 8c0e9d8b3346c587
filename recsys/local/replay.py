"""Pick a slice of a Personalize-format CSV folder and send it through the local event tracker."""

from __future__ import annotations

import csv
import heapq
from pathlib import Path

from recsys.datasets.importer import event_id_of
from recsys.events import Event
from recsys.local.http_api import post_json


def latest_interactions(dataset_dir: Path, count: int) -> list[Event]:
    """The `count` latest interactions of `dataset_dir/interactions.csv`, oldest first, as canonical events."""
    with open(dataset_dir / "interactions.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        latest = heapq.nlargest(count, reader, key=lambda row: int(row["TIMESTAMP"]))
    latest.sort(key=lambda row: int(row["TIMESTAMP"]))
    return [
        Event(
            event_id=event_id_of(list(row.values())),
            user_id=row["USER_ID"],
            item_id=row["ITEM_ID"],
            event_type=row.get("EVENT_TYPE") or "interaction",
            timestamp=float(row["TIMESTAMP"]),
            event_value=float(row["EVENT_VALUE"]) if row.get("EVENT_VALUE") else None,
        )
        for row in latest
    ]


def upsert_items(api_url: str, dataset_dir: Path, item_ids: set[str], per_call: int = 100) -> int:
    """POST /items the metadata of `item_ids`, so the writer can attribute topics and creators."""
    with open(dataset_dir / "items.csv", newline="") as handle:
        records = [{k: v for k, v in row.items() if v} for row in csv.DictReader(handle) if row["ITEM_ID"] in item_ids]
    for start in range(0, len(records), per_call):
        status, answer = post_json(api_url.rstrip("/") + "/items", {"items": records[start : start + per_call]})
        if status >= 300:
            raise RuntimeError(f"POST /items answered {status}: {answer}")
    return len(records)
