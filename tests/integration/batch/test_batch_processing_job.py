"""The processing job end to end on a lake on disk, and the local run (moto S3 lake, Valkey + S3 Feature Store).

Both reuse the session's Spark; the job runs once per module and the tests read its outputs.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from recsys.batch.window import DAY_S
from tests.unit.batch.lake_fixture import CUTOFF, EVENTS, ev, later, write_lake

pytestmark = pytest.mark.spark
JOB = Path(__file__).resolve().parents[3] / "containers" / "processing" / "job.py"
RUN_CUTOFF = CUTOFF + 7 * DAY_S  # 2024-03-08: features there, the training set at 2024-03-01
# A redelivered copy of e14 (same event_id), and an event exactly at the run's cutoff: neither may count.
EXTRA = [EVENTS[[e.event_id for e in EVENTS].index("e14")], ev("e30", "u2", "click", later(7), "i5")]


def _job():
    spec = importlib.util.spec_from_file_location("processing_job", JOB)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def job_output(spark, tmp_path_factory):
    lake = write_lake(tmp_path_factory.mktemp("lake"), EVENTS + EXTRA)
    output = tmp_path_factory.mktemp("output")
    code = _job().main(["--lake", str(lake), "--output", str(output), "--cutoff", "2024-03-08"], spark=spark)
    assert code == 0
    return lake, output


def _rows(spark, path: Path, key: str) -> dict:
    return {row[key]: row.asDict() for row in spark.read.parquet(str(path)).collect()}


def test_writes_versioned_tables_and_the_training_set(job_output):
    _, output = job_output
    for table in ("user", "item", "item_pairs"):
        assert list((output / "features" / table / "snapshot_date=2024-03-08").glob("part-*.parquet")), table
    assert list((output / "training" / "cutoff=20240301T000000Z").glob("part-*.parquet"))


def test_reads_strictly_before_the_cutoff_once_per_event(spark, job_output):
    _, output = job_output
    items = _rows(spark, output / "features" / "item" / "snapshot_date=2024-03-08", "item_id")
    # i5: e14 viewed it once (its copy is dropped); e30 clicks at exactly the cutoff and e24 after it.
    assert (items["i5"]["item_view_count"], items["i5"]["item_click_count"]) == (1, 0)
    # i1: e1 e2 e3 e10 e15 plus the rating e8 are all within 60 days of 2024-03-08.
    assert (items["i1"]["item_click_count"], items["i1"]["item_distinct_users"], items["i1"]["event_time"]) == (
        2,
        2,
        RUN_CUTOFF,
    )


def test_training_set_matches_the_hand_checked_labels(spark, job_output):
    _, output = job_output
    table = spark.read.parquet(str(output / "training" / "cutoff=20240301T000000Z"))
    rows = {
        (r["user_id"], r["item_id"]): (r["label_click"], r["label_play"], r["label_purchase"], r["row_source"])
        for r in table.collect()
    }
    assert rows[("u1", "i1")] == (1, 0, 0, "interaction")
    assert rows[("u1", "i2")] == (0, 1, 0, "interaction")
    assert rows[("u2", "i3")] == (0, 0, 1, "interaction")
    assert rows[("u2", "i5")] == (0, 0, 0, "impression")
    # The stage default asks 4 negatives per positive: u1's 2 positives want 8, and only i5 i6 i7 are untouched.
    assert {key for key, (*_, source) in rows.items() if source == "sampled"} == {
        ("u1", "i5"),
        ("u1", "i6"),
        ("u1", "i7"),
    }


def test_a_rerun_replaces_its_snapshot_and_keeps_the_others(spark, job_output):
    lake, output = job_output
    job = _job()
    args = ["--lake", str(lake), "--output", str(output), "--cutoff", "2024-03-08", "--mode", "features"]
    assert job.main([*args, "--snapshot-date", "2024-03-09"], spark=spark) == 0
    snapshots = sorted(p.name for p in (output / "features" / "user").iterdir())
    assert snapshots == ["snapshot_date=2024-03-08", "snapshot_date=2024-03-09"]
    users = spark.read.parquet(str(output / "features" / "user"))
    assert (
        users.where("snapshot_date = '2024-03-09'").count() == users.where("snapshot_date = '2024-03-08'").count() == 3
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cutoff", "soon"], "cutoff: 'soon' is neither an ISO date/datetime nor unix seconds"),
        (
            ["--cutoff", "2024-03-08", "--training-cutoff", "2024-03-05"],
            "training_cutoff: its label horizon would reach past",
        ),
        (
            ["--cutoff", "2024-03-08", "--window-days", "10"],
            "window_days: 10 is shorter than the 60-day activity window",
        ),
        (["--cutoff", "2024-03-08", "--snapshot-date", "08/03/2024"], "snapshot_date: '08/03/2024' is not YYYY-MM-DD"),
        (["--cutoff", "2024-03-08", "--ingest", "local"], "redis_url: required for the local feature store"),
    ],
)
def test_bad_arguments_are_named(tmp_path, capsys, args, message):
    job = _job()
    try:
        code = job.main(["--lake", str(tmp_path), "--output", str(tmp_path / "out"), *args])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_lake_without_events_is_a_clear_error(spark, tmp_path, capsys):
    code = _job().main(
        ["--lake", str(tmp_path), "--output", str(tmp_path / "out"), "--cutoff", "2024-03-08"], spark=spark
    )
    assert code == 2
    assert f"events: nothing under {tmp_path}/events" in capsys.readouterr().err


def test_local_run_stages_the_s3_lake_publishes_outputs_and_ingests(spark, aws, redis_client, tmp_path, stage_config):
    from recsys import aws as clients
    from recsys.batch.local_run import latest_cutoff, run_local_batch

    lake = write_lake(tmp_path / "lake")
    s3 = clients.client("s3")
    s3.create_bucket(Bucket="demo-lake")
    for path in lake.rglob("*.gz"):
        s3.upload_file(str(path), "demo-lake", path.relative_to(lake).as_posix())
    # The newest events are e24 at 2024-03-09; the default cutoff is the midnight after.
    assert latest_cutoff("demo-lake") == CUTOFF + 9 * DAY_S
    report = run_local_batch(
        stage_config, lake_bucket="demo-lake", redis_url=aws.valkey.url, cutoff=CUTOFF, mode="features", spark=spark
    )
    assert report.result.rows == {"features/user": 3, "features/item": 6, "features/item_pairs": 8}
    assert report.result.ingested == {"recsys-dev-user-batch-features": 3, "recsys-dev-item-batch-features": 6}
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="demo-lake", Prefix="features/")["Contents"]}
    assert any(k.startswith("features/user/snapshot_date=2024-03-01/part-") for k in keys)
    assert report.result.outputs["features/user"] == "s3://demo-lake/features/user/snapshot_date=2024-03-01"
    offline = s3.list_objects_v2(
        Bucket="demo-lake", Prefix="feature-store/123456789012/sagemaker/us-east-1/offline-store/"
    )
    assert {k["Key"].split("/")[5].rsplit("-", 1)[0] for k in offline["Contents"]} == {
        "recsys-dev-user-batch-features",
        "recsys-dev-item-batch-features",
    }
    online = redis_client.hgetall("fs:recsys-dev-user-batch-features:u1")
    assert (online[b"user_top_category"], online[b"user_click_count_7d"]) == (b"Comedy", b"1")
    assert "recsys-dev-user-batch-features u1: user_distinct_items=3" in report.preview
    json.loads(report.result.to_json())
