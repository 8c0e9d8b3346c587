"""Reading interaction data into Personalize-shaped frames, for evaluation and for the training job.

Three layouts:
- a Personalize CSV folder: interactions.csv (required), items.csv and users.csv (optional), plain or .gz;
  a local folder is read directly, an s3:// prefix through recsys.datasets.sources;
- a MovieTweetings snapshot folder (ratings.dat, movies.dat), converted first by recsys.datasets.movietweetings;
- a copy of the data lake (recsys.events layout): events/event_date=*/<file>.jsonl.gz (canonical events) and the
  newest datasets/items/import_id=*/items.csv.gz and datasets/users/... — what the training job's
  "interactions" channel receives when it points at the lake.

Ids stay strings (leading zeros matter: MovieTweetings' IMDb ids).
"""

from __future__ import annotations

import gzip
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recsys.events import EVENTS_PREFIX, ITEMS_PREFIX, USERS_PREFIX
from recsys.models.data import DataError

ID_COLUMNS = {"USER_ID": str, "ITEM_ID": str}
INTERACTION_COLUMNS = ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE")


@dataclass(frozen=True)
class DatasetFrames:
    interactions: pd.DataFrame
    items: pd.DataFrame | None
    users: pd.DataFrame | None
    source: str


def _normalize(frame: pd.DataFrame) -> pd.DataFrame:
    frame.columns = [str(c).strip().upper() for c in frame.columns]
    return frame


def _read_csv(path_or_stream) -> pd.DataFrame:
    return _normalize(pd.read_csv(path_or_stream, dtype=ID_COLUMNS))


def _local_file(folder: Path, name: str) -> Path | None:
    found = [folder / f"{name}{suffix}" for suffix in (".csv", ".csv.gz") if (folder / f"{name}{suffix}").is_file()]
    if len(found) > 1:
        raise DataError(f"{folder}: both {name}.csv and {name}.csv.gz; keep one")
    return found[0] if found else None


def _check_interactions(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    for column in ("USER_ID", "ITEM_ID", "TIMESTAMP"):
        if column not in frame.columns:
            raise DataError(f"{where}: column {column} is required")
    return frame


def read_personalize_folder(folder: Path) -> DatasetFrames:
    interactions = _local_file(folder, "interactions")
    if interactions is None:
        raise DataError(f"{folder}: no interactions.csv (or interactions.csv.gz)")
    items, users = _local_file(folder, "items"), _local_file(folder, "users")
    return DatasetFrames(_check_interactions(_read_csv(interactions), str(interactions)),
                         _read_csv(items) if items else None, _read_csv(users) if users else None, str(folder))


def _newest_snapshot(folder: Path, prefix: str, name: str) -> pd.DataFrame | None:
    imports = sorted((folder / prefix).glob("import_id=*"))
    for directory in reversed(imports):
        found = _local_file(directory, name)
        if found:
            return _read_csv(found)
    return None


def read_lake_folder(folder: Path) -> DatasetFrames:
    """Canonical events (with an item) as interactions, plus the newest items and users snapshots."""
    rows = []
    for path in sorted((folder / EVENTS_PREFIX).glob("event_date=*/*")):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as lines:
            for line in lines:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event.get("item_id") is None:
                    continue
                rows.append((event["user_id"], event["item_id"], event["timestamp"], event["event_type"],
                             event.get("event_value")))
    if not rows:
        raise DataError(f"{folder / EVENTS_PREFIX}: no events with an item_id")
    interactions = pd.DataFrame(rows, columns=list(INTERACTION_COLUMNS))
    return DatasetFrames(interactions, _newest_snapshot(folder, ITEMS_PREFIX, "items"),
                         _newest_snapshot(folder, USERS_PREFIX, "users"), str(folder))


def _read_s3(source: str) -> DatasetFrames:
    from recsys.datasets.sources import find_dataset_files, open_text

    files = find_dataset_files(source)

    def read(location: str | None) -> pd.DataFrame | None:
        if location is None:
            return None
        with open_text(location) as (stream, _):
            return _read_csv(stream)

    interactions = _check_interactions(read(files.interactions), files.interactions)
    return DatasetFrames(interactions, read(files.items), read(files.users), source)


def load_dataset(source: str | Path) -> DatasetFrames:
    """Frames from a Personalize CSV folder or s3:// prefix, a MovieTweetings folder, or a lake copy."""
    where = str(source)
    if where.startswith("s3://"):
        return _read_s3(where)
    folder = Path(where)
    if not folder.is_dir():
        raise DataError(f"{where}: not a folder")
    if (folder / "ratings.dat").is_file():
        from recsys.datasets.movietweetings import convert_movietweetings

        with tempfile.TemporaryDirectory(prefix="recsys-eval-") as converted:
            convert_movietweetings(folder, converted)
            frames = read_personalize_folder(Path(converted))
        return DatasetFrames(frames.interactions, frames.items, frames.users, where)
    if (folder / EVENTS_PREFIX).is_dir() and _local_file(folder, "interactions") is None:
        return read_lake_folder(folder)
    return read_personalize_folder(folder)
