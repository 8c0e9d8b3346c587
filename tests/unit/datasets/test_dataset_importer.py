"""The importer into a local lake: all or nothing, the minimum, idempotence, the lake layout and its content."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

import pytest
from dataset_fixtures import synthetic_dir  # noqa: F401 (a fixture)
from dataset_fixtures import NO_MINIMUM, T0, files_under, good_rows, interactions, write_csv

from recsys.config import DatasetImportConfig
from recsys.datasets.cli import main
from recsys.datasets.counting import DistinctCounter
from recsys.datasets.errors import InvalidRowsError, MinimumDataError
from recsys.datasets.importer import DEFAULT_EVENT_TYPE, import_dataset
from recsys.datasets.lake import EventPartWriter, LocalLake
from recsys.datasets.schema import ITEMS, USERS
from recsys.events import Event, event_date


def lake_events(root: Path) -> list[Event]:
    events = []
    for path in sorted((root / "events").rglob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            events += [Event.from_json(line) for line in lines]
    return events


def snapshot_rows(root: Path, dataset: str) -> list[dict[str, str]]:
    (path,) = (root / "datasets" / dataset).glob("import_id=*/*.csv.gz")
    with gzip.open(path, "rt", encoding="utf-8", newline="") as file:
        return list(csv.DictReader(file))


def test_synthetic_dataset_imports_with_personalize_minimum(synthetic_dir, tmp_path):
    report = import_dataset(synthetic_dir, tmp_path / "lake")  # the default config: Personalize's minimum
    assert report.rows == {"interactions": 4_000, "users": 120, "items": 80}
    assert report.counts_exact and 50 <= report.users <= 120 and 50 <= report.items <= 80
    events = lake_events(tmp_path / "lake")
    assert len(events) == 4_000 and len({e.event_id for e in events}) == 4_000
    assert sum(report.event_types.values()) == 4_000
    assert report.first_timestamp == min(e.timestamp for e in events)
    assert report.last_timestamp == max(e.timestamp for e in events)
    keys = set(files_under(tmp_path / "lake"))
    assert keys == set(report.keys)
    assert "_staging" not in {Path(k).parts[0] for k in keys} and not (tmp_path / "lake" / "_staging").exists()
    assert f"imported 4,000 interactions ({report.users:,} users" in report.summary()


def test_events_are_partitioned_by_their_date(synthetic_dir, tmp_path):
    report = import_dataset(synthetic_dir, tmp_path / "lake")
    for key in report.keys:
        if not key.startswith("events/"):
            continue
        folder, name = key.split("/")[1:]
        assert name == f"import-{report.content_id}-00000.jsonl.gz"
        with gzip.open(tmp_path / "lake" / key, "rt") as lines:
            assert {f"event_date={event_date(Event.from_json(line).timestamp)}" for line in lines} == {folder}


def test_rows_become_canonical_events(tmp_path):
    header = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE", "IMPRESSION", "RECOMMENDATION_ID",
              "SESSION_ID", "DEVICE", "GEO"]
    rows = [["u1", "i1", T0, "watch", "1260", "i1|i2|i3", "r9", "s1", "tv", "BR"], ["u2", "i2", T0 + 1, "", "", "", "",
                                                                                     "", "", ""]]
    source = interactions(tmp_path / "in", rows, header)
    import_dataset(source, tmp_path / "lake", config=NO_MINIMUM)
    first, second = sorted(lake_events(tmp_path / "lake"), key=lambda e: e.timestamp)
    assert first.to_dict() | {"event_id": "-"} == {
        "event_id": "-", "user_id": "u1", "item_id": "i1", "event_type": "watch", "timestamp": float(T0),
        "event_value": 1260.0, "impression": ["i1", "i2", "i3"], "recommendation_id": "r9", "session_id": "s1",
        "properties": {"device": "tv", "geo": "BR"}, "received_at": None,
    }
    assert len(first.event_id) == 32
    assert second.event_type == DEFAULT_EVENT_TYPE and second.properties == {} and second.impression == ()


def test_users_and_items_land_as_canonical_snapshots(tmp_path):
    source = interactions(tmp_path / "in", good_rows(4))
    write_csv(source / "users.csv", ["topics", "USER_ID"], [["news|comedy", "u1"], ["", "u2"]])
    write_csv(source / "items.csv", ["ITEM_ID", "CREATION_TIMESTAMP", "IS_PAID", "PRICE"], [["i1", "0", "TRUE", "4"]])
    report = import_dataset(source, tmp_path / "lake", config=NO_MINIMUM)
    assert f"datasets/users/import_id={report.import_id}/users.csv.gz" in report.keys
    assert f"datasets/items/import_id={report.import_id}/items.csv.gz" in report.keys
    users = snapshot_rows(tmp_path / "lake", "users")
    assert [list(row) for row in users] == [list(USERS.columns)] * 2
    assert [(u["USER_ID"], u["TOPICS"], u["AGE"]) for u in users] == [("u1", "news|comedy", ""), ("u2", "", "")]
    (item,) = snapshot_rows(tmp_path / "lake", "items")
    assert list(item) == list(ITEMS.columns)
    assert (item["IS_PAID"], item["PRICE"], item["GENRES"]) == ("true", "4.0", "")


def test_a_bad_row_anywhere_imports_nothing(synthetic_dir, tmp_path):
    source = tmp_path / "in"
    shutil.copytree(synthetic_dir, source)
    with open(source / "items.csv", "a", encoding="utf-8") as items:
        items.write("i-late,not-a-time" + "," * (len(ITEMS.columns) - 2) + "\n")
    lake = tmp_path / "lake"
    lake.mkdir()
    (lake / "keep.txt").write_text("already here")
    with pytest.raises(InvalidRowsError) as caught:
        import_dataset(source, lake)
    assert caught.value.total == 1 and caught.value.errors[0].row == 82
    assert files_under(lake) == {"keep.txt": b"already here"}  # no events, no snapshots, no staging left


def test_the_minimum_is_personalizes_by_default(tmp_path):
    source = interactions(tmp_path / "in", [[f"u{i % 40}", f"i{i % 60}", T0 + i, "click", ""] for i in range(1_499)])
    with pytest.raises(MinimumDataError) as caught:
        import_dataset(source, tmp_path / "lake")
    message = str(caught.value)
    assert message == (
        f"not enough data to train on in {source}/interactions.csv: distinct users 40 (minimum 50); "
        "interactions 1,499 (minimum 1,500). A dataset needs at least 50 users, 50 items and 1,500 interactions "
        "(Amazon Personalize's minimum); nothing was imported."
    )
    assert (caught.value.users, caught.value.items, caught.value.interactions) == (40, 60, 1_499)
    assert files_under(tmp_path / "lake") == {}


def test_the_minimum_comes_from_the_config(tmp_path):
    source = interactions(tmp_path / "in", good_rows(10))  # 4 users, 3 items
    config = DatasetImportConfig(min_users=5, min_items=1, min_interactions=1)
    with pytest.raises(MinimumDataError, match=r"distinct users 4 \(minimum 5\)\. .*\(the configured minimum\)"):
        import_dataset(source, tmp_path / "lake", config=config)
    assert import_dataset(source, tmp_path / "lake", config=NO_MINIMUM).users == 4


def test_the_import_config_refuses_non_positive_values():
    with pytest.raises(ValueError, match="datasets.min_users: must be at least 1"):
        DatasetImportConfig(min_users=0)
    with pytest.raises(ValueError, match="datasets.buffer_mb"):
        DatasetImportConfig(buffer_mb=0)


def test_reimporting_the_same_file_is_idempotent(synthetic_dir, tmp_path):
    lake = tmp_path / "lake"
    first = import_dataset(synthetic_dir, lake)
    events_before = {k: v for k, v in files_under(lake).items() if k.startswith("events/")}
    copy = tmp_path / "copy"
    shutil.copytree(synthetic_dir, copy)  # same content elsewhere: same ids
    second = import_dataset(copy, lake)
    after = files_under(lake)
    assert second.content_id == first.content_id
    assert {k: v for k, v in after.items() if k.startswith("events/")} == events_before
    assert second.import_id > first.import_id  # a newer snapshot of users and items, with the same content
    snapshots = sorted(k for k in after if k.startswith("datasets/users/"))
    assert len(snapshots) == 2 and after[snapshots[0]] == after[snapshots[1]]


def test_an_edited_file_keeps_the_ids_of_unchanged_rows(tmp_path):
    first = import_dataset(interactions(tmp_path / "a", good_rows(6)), tmp_path / "lake-a", config=NO_MINIMUM)
    rows = good_rows(6)
    rows[2][3] = "like"
    second = import_dataset(interactions(tmp_path / "b", rows), tmp_path / "lake-b", config=NO_MINIMUM)
    assert first.content_id != second.content_id
    ids_a = {e.event_id for e in lake_events(tmp_path / "lake-a")}
    ids_b = {e.event_id for e in lake_events(tmp_path / "lake-b")}
    assert len(ids_a & ids_b) == 5


def test_gzip_input_is_read(tmp_path):
    plain = interactions(tmp_path / "plain", good_rows(5))
    packed = tmp_path / "packed"
    packed.mkdir()
    (packed / "interactions.csv.gz").write_bytes(gzip.compress((plain / "interactions.csv").read_bytes()))
    import_dataset(plain, tmp_path / "lake-plain", config=NO_MINIMUM)
    import_dataset(packed, tmp_path / "lake-packed", config=NO_MINIMUM)
    assert lake_events(tmp_path / "lake-plain") == lake_events(tmp_path / "lake-packed")


def _events(n: int, days: int) -> list[Event]:
    # User-sorted, like MovieTweetings: dates interleave all the way through.
    return [Event(event_id=f"e{i}", user_id=f"u{i % 7}", event_type="click", item_id="i", timestamp=T0 + (i * 7919 %
                  days) * 86_400 + i) for i in range(n)]


@pytest.mark.parametrize(("buffer_bytes", "events_per_part"), [(1 << 30, 1_000), (2_000, 1_000), (2_000, 7)])
def test_spilling_and_part_size_do_not_change_the_events(tmp_path, buffer_bytes, events_per_part):
    events = _events(600, days=9)
    lake = LocalLake(tmp_path / "lake")
    writer = EventPartWriter(lake, events_per_part=events_per_part, buffer_bytes=buffer_bytes)
    for event in events:
        writer.write(event)
    assert (writer.spills > 0) == (buffer_bytes < 1 << 30)
    parts = writer.close()
    for part in parts:
        lake.publish(part.name, part.key("cid"))
    assert all(part.events <= events_per_part for part in parts)
    by_date: dict[str, list[Event]] = {}
    for part in parts:  # parts come by date, then number: reading them in order gives each date's input order
        with gzip.open(tmp_path / "lake" / part.key("cid"), "rt") as lines:
            by_date.setdefault(part.date, []).extend(Event.from_json(line) for line in lines)
    for date, got in by_date.items():
        assert got == [e for e in events if event_date(e.timestamp) == date]
    assert sum(len(v) for v in by_date.values()) == 600


def test_spilling_gives_the_same_bytes(tmp_path):
    outputs = []
    for name, buffer_bytes in (("memory", 1 << 30), ("spill", 3_000)):
        lake = LocalLake(tmp_path / name)
        writer = EventPartWriter(lake, events_per_part=10_000, buffer_bytes=buffer_bytes)
        for event in _events(500, days=5):
            writer.write(event)
        for part in writer.close():
            lake.publish(part.name, part.key("cid"))
        outputs.append(files_under(tmp_path / name))
    assert outputs[0] == outputs[1] and len(outputs[0]) == 5


def test_distinct_counter_is_exact_then_estimates():
    counter = DistinctCounter(exact_limit=1_000)
    for i in range(3_000):
        counter.add(f"user-{i % 1_000}")
    assert counter.exact and counter.count() == 1_000
    for i in range(50_000):
        counter.add(f"user-{i}")
    assert not counter.exact
    assert abs(counter.count() - 50_000) / 50_000 < 0.03


def test_cli_imports_and_reports_errors(tmp_path, capsys):
    source = interactions(tmp_path / "in", good_rows(10))
    assert main(["import", str(source), "--to", str(tmp_path / "lake")]) == 2
    assert "distinct users 4 (minimum 50)" in capsys.readouterr().err
    argv = ["import", str(source), "--to", str(tmp_path / "lake"), "--min-users", "1", "--min-items", "1",
            "--min-interactions", "1"]
    assert main(argv) == 0
    assert "imported 10 interactions (4 users, 3 items" in capsys.readouterr().out
    assert main(["schema", "items"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "Items"


def test_cli_generates_a_synthetic_dataset(tmp_path, capsys):
    argv = ["synthetic", "--out", str(tmp_path), "--users", "30", "--items", "20", "--events", "500", "--days", "3"]
    assert main(argv) == 0
    assert "wrote 500 interactions" in capsys.readouterr().out
    assert len((tmp_path / "interactions.csv").read_text(encoding="utf-8").splitlines()) == 501
