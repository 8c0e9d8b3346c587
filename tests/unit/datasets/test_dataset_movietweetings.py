"""The MovieTweetings 100K converter, on the real files (100,000 ratings: a few seconds)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from dataset_fixtures import files_under

from recsys.datasets.cli import main
from recsys.datasets.importer import import_dataset
from recsys.datasets.movietweetings import (
    DEFAULT_SOURCE_DIR,
    MovieTweetingsError,
    convert_movietweetings,
    parse_movie,
    parse_rating,
)

pytestmark = pytest.mark.skipif(
    not (DEFAULT_SOURCE_DIR / "ratings.dat").is_file(),
    reason=f"the MovieTweetings snapshot is not at {DEFAULT_SOURCE_DIR}",
)


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("movietweetings")
    summary = convert_movietweetings(DEFAULT_SOURCE_DIR, out)
    assert (summary.interactions, summary.users, summary.items) == (100_000, 16_554, 10_506)
    return out


def read(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def test_interactions_are_the_ratings(converted):
    rows = read(converted / "interactions.csv")
    assert len(rows) == 100_000
    assert rows[0] == {"USER_ID": "1", "ITEM_ID": "1074638", "TIMESTAMP": "1365029107", "EVENT_TYPE": "rating",
                       "EVENT_VALUE": "7.0"}
    assert {row["EVENT_TYPE"] for row in rows} == {"rating"}
    assert {float(row["EVENT_VALUE"]) for row in rows} == set(map(float, range(11)))


def test_items_carry_title_genres_and_release_year(converted):
    items = {row["ITEM_ID"]: row for row in read(converted / "items.csv")}
    assert len(items) == 10_506
    assert items["0002844"] == {
        "ITEM_ID": "0002844", "CREATION_TIMESTAMP": "-1798761600", "GENRES": "Crime|Drama",
        "TITLE": "Fantômas - À l'ombre de la guillotine",
    }
    assert items["0021283"]["GENRES"] == ""  # no genre in the source
    rated = {row["ITEM_ID"] for row in read(converted / "interactions.csv")}
    assert rated <= items.keys()


def test_users_are_every_rater(converted):
    users = read(converted / "users.csv")
    assert len(users) == 16_554 and list(users[0]) == ["USER_ID"]
    assert users[0]["USER_ID"] == "1"


def test_the_converted_dataset_imports(converted, tmp_path):
    report = import_dataset(converted, tmp_path / "lake")
    assert (report.interactions, report.users, report.items) == (100_000, 16_554, 10_506)
    assert report.rows == {"interactions": 100_000, "users": 16_554, "items": 10_506}
    assert report.event_types == {"rating": 100_000}
    assert report.first_timestamp == 1_362_062_307 and report.last_timestamp == 1_378_067_265
    assert len([k for k in files_under(tmp_path / "lake") if k.startswith("events/")]) == 186


def test_parse_lines():
    assert parse_movie(["0110912", "Pulp Fiction (1994)", "Crime|Thriller"]).creation_timestamp == 757_382_400
    assert parse_rating(["14927", "0110912", "9", "1375657563"]).event_value == 9.0
    with pytest.raises(ValueError, match="does not end with ' \\(year\\)'"):
        parse_movie(["1", "Untitled", ""])


def test_malformed_source_lines_are_named(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::0110912::9::1375657563\n2::0110912::nine::1375657563\n")
    (tmp_path / "movies.dat").write_text("0110912::Pulp Fiction (1994)::Crime\n")
    with pytest.raises(MovieTweetingsError, match=r"ratings.dat line 2: could not convert string to float: 'nine'"):
        convert_movietweetings(tmp_path, tmp_path / "out")
    (tmp_path / "ratings.dat").write_text("1::0110912::9\n")
    with pytest.raises(MovieTweetingsError, match=r"ratings.dat line 1: expected 4 fields"):
        convert_movietweetings(tmp_path, tmp_path / "out")
    with pytest.raises(MovieTweetingsError, match="no ratings.dat"):
        convert_movietweetings(tmp_path / "empty", tmp_path / "out")


def test_cli_converts(tmp_path, capsys):
    source = tmp_path / "source"
    source.mkdir()
    (source / "ratings.dat").write_text("1::0110912::9::1375657563\n2::0110912::7::1375657564\n")
    (source / "movies.dat").write_text("0110912::Pulp Fiction (1994)::Crime|Thriller\n")
    assert main(["movietweetings", "--source", str(source), "--out", str(tmp_path / "out")]) == 0
    assert "wrote 2 interactions, 2 users and 1 items" in capsys.readouterr().out
    assert main(["movietweetings", "--source", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "no ratings.dat" in capsys.readouterr().err
