"""MovieTweetings to Personalize CSVs: the real development dataset.

MovieTweetings is a dataset of movie ratings (0-10) posted on Twitter through the IMDb apps, by Simon Dooms,
Toon De Pessemier and Luc Martens (Ghent University), published under the MIT licence:

    S. Dooms, T. De Pessemier, L. Martens. "MovieTweetings: a Movie Rating Dataset Collected From Twitter".
    Workshop on Crowdsourcing and Human Computation for Recommender Systems (CrowdRec) at RecSys 2013.

The project uses the 100K snapshot (the first 100,000 ratings, 2013) kept in ../shared/datasets/movietweetings-100k
next to the repository. Its files, fields separated by "::":
- ratings.dat: user_id::movie_id::rating::rating_timestamp (unix seconds)
- movies.dat: movie_id::title (year)::genre|genre|... (genres may be empty)

Conversion:
- interactions.csv: USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE=rating, EVENT_VALUE=the rating (0-10), in file order;
- items.csv: ITEM_ID (the IMDb number, leading zeros kept), TITLE without the year, GENRES,
  CREATION_TIMESTAMP = 1 January of the year, 00:00 UTC;
- users.csv: USER_ID only, for every user who rated (MovieTweetings has no demographics).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from recsys.datasets.csvfiles import DatasetCsvWriter
from recsys.datasets.models import Interaction, InvalidRecord, Item, User
from recsys.datasets.schema import INTERACTIONS, ITEMS, USERS
from recsys.events import RATING

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE_DIR = REPO_ROOT.parent / "shared" / "datasets" / "movietweetings-100k"
SEPARATOR = "::"
_TITLE_YEAR = re.compile(r"^(?P<title>.*) \((?P<year>\d{4})\)$")
INTERACTION_COLUMNS = ("USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE")
ITEM_COLUMNS = ("ITEM_ID", "CREATION_TIMESTAMP", "GENRES", "TITLE")
USER_COLUMNS = ("USER_ID",)


class MovieTweetingsError(ValueError):
    """A line of the source files cannot be converted; the message names the file and line."""


@dataclass(frozen=True)
class ConversionSummary:
    out_dir: Path
    interactions: int
    users: int
    items: int


def _lines(path: Path, fields: int) -> Iterator[tuple[int, list[str]]]:
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            line = line.rstrip("\r\n")
            if not line:
                continue
            parts = line.split(SEPARATOR)
            if len(parts) != fields:
                raise MovieTweetingsError(f"{path} line {number}: expected {fields} fields separated by '::'")
            yield number, parts


def parse_movie(parts: list[str]) -> Item:
    """An Item from the fields of a movies.dat line."""
    movie_id, title_year, genres = parts
    match = _TITLE_YEAR.match(title_year)
    if match is None:
        raise ValueError(f"title {title_year!r} does not end with ' (year)'")
    return Item(
        item_id=movie_id,
        title=match["title"],
        genres=tuple(g for g in genres.split("|") if g),
        creation_timestamp=calendar.timegm((int(match["year"]), 1, 1, 0, 0, 0)),
    )


def parse_rating(parts: list[str]) -> Interaction:
    """An Interaction from the fields of a ratings.dat line."""
    user_id, movie_id, rating, timestamp = parts
    return Interaction(
        user_id=user_id, item_id=movie_id, timestamp=int(timestamp), event_type=RATING, event_value=float(rating)
    )


def convert_movietweetings(source_dir: str | Path, out_dir: str | Path) -> ConversionSummary:
    """Write interactions.csv, users.csv and items.csv for the MovieTweetings snapshot in `source_dir` to `out_dir`."""
    source, out = Path(source_dir), Path(out_dir)
    for name in ("ratings.dat", "movies.dat"):
        if not (source / name).is_file():
            raise MovieTweetingsError(f"{source}: no {name}; expected a MovieTweetings snapshot folder")
    out.mkdir(parents=True, exist_ok=True)
    users: dict[str, None] = {}  # ordered set: users in order of their first rating
    with DatasetCsvWriter(out / INTERACTIONS.file_name, INTERACTIONS, INTERACTION_COLUMNS) as interactions:
        for number, parts in _lines(source / "ratings.dat", 4):
            try:
                record = parse_rating(parts)
            except (ValueError, InvalidRecord) as exc:
                raise MovieTweetingsError(f"{source / 'ratings.dat'} line {number}: {exc}") from exc
            interactions.write(record)
            users.setdefault(record.user_id)
    with DatasetCsvWriter(out / ITEMS.file_name, ITEMS, ITEM_COLUMNS) as items:
        for number, parts in _lines(source / "movies.dat", 3):
            try:
                items.write(parse_movie(parts))
            except (ValueError, InvalidRecord) as exc:
                raise MovieTweetingsError(f"{source / 'movies.dat'} line {number}: {exc}") from exc
    with DatasetCsvWriter(out / USERS.file_name, USERS, USER_COLUMNS) as user_file:
        user_file.write_all(User(user_id=user_id) for user_id in users)
    return ConversionSummary(out, interactions.rows, user_file.rows, items.rows)
