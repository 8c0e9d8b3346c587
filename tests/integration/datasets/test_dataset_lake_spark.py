"""Spark reads what the importer writes: event JSON lines partitioned by event_date, canonical user/item CSVs."""

from __future__ import annotations

import pytest

from recsys.datasets.importer import import_dataset
from recsys.datasets.schema import ITEMS
from recsys.datasets.synthetic import generate
from recsys.events import event_date

pytestmark = pytest.mark.spark


def test_spark_reads_the_imported_lake(spark, tmp_path):
    generate(tmp_path / "csv", n_users=80, n_items=60, n_events=2_000, days=5, seed=9)
    report = import_dataset(tmp_path / "csv", tmp_path / "lake")
    events = spark.read.json(str(tmp_path / "lake" / "events"))
    assert events.count() == 2_000
    assert events.select("event_id").distinct().count() == 2_000
    rows = events.select("event_date", "timestamp", "impression", "properties").collect()
    assert all(str(row.event_date) == event_date(row.timestamp) for row in rows)
    assert any(row.impression for row in rows) and all(row.properties["device"] for row in rows)
    items = spark.read.option("header", True).option("multiLine", True).option("escape", '"').csv(
        str(tmp_path / "lake" / "datasets" / "items" / f"import_id={report.import_id}")
    )
    assert items.columns == list(ITEMS.columns) and items.count() == 60
