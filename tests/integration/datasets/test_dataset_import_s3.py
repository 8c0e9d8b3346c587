"""The importer against S3 on the moto server: from a local folder or an s3:// prefix into a lake bucket.

The bucket is created here, without the platform's DenyInsecureTransport policy: moto serves plain HTTP and enforces
bucket policies, so the platform's own lake bucket refuses every request from a local client.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pytest

from recsys.aws import client
from recsys.config import DatasetImportConfig
from recsys.datasets.errors import DatasetImportError, InvalidRowsError, MinimumDataError
from recsys.datasets.importer import import_dataset
from recsys.datasets.synthetic import generate
from recsys.events import Event, event_date


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("s3-synthetic")
    generate(out, n_users=90, n_items=70, n_events=3_000, days=10, seed=5)
    return out


@pytest.fixture
def bucket(aws) -> str:
    name = "recsys-test-lake"
    client("s3").create_bucket(Bucket=name)
    return name


def objects(bucket: str, prefix: str = "") -> dict[str, dict]:
    paginator = client("s3").get_paginator("list_objects_v2")
    return {o["Key"]: o for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for o in page.get("Contents", [])}


def body(bucket: str, key: str) -> bytes:
    return client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def upload(folder: Path, bucket: str, prefix: str) -> None:
    for path in folder.iterdir():
        client("s3").put_object(Bucket=bucket, Key=f"{prefix}/{path.name}", Body=path.read_bytes())


def test_import_from_a_folder_into_the_lake_bucket(bucket, dataset):
    report = import_dataset(dataset, f"s3://{bucket}")
    assert report.destination == f"s3://{bucket}"
    stored = objects(bucket)
    assert set(stored) == set(report.keys)
    events = []
    for key in (k for k in stored if k.startswith("events/")):
        lines = gzip.decompress(body(bucket, key)).decode().splitlines()
        batch = [Event.from_json(line) for line in lines]
        assert {f"event_date={event_date(e.timestamp)}" for e in batch} == {key.split("/")[1]}
        events += batch
    assert len(events) == report.interactions == 3_000
    assert len({e.event_id for e in events}) == 3_000
    users_key = f"datasets/users/import_id={report.import_id}/users.csv.gz"
    users = list(csv.DictReader(io.StringIO(gzip.decompress(body(bucket, users_key)).decode())))
    assert len(users) == report.rows["users"] == 90
    assert report.rows["items"] == 70


def test_import_from_an_s3_prefix_under_a_lake_prefix(bucket, dataset):
    upload(dataset, bucket, "incoming/2025-01")
    report = import_dataset(f"s3://{bucket}/incoming/2025-01", f"s3://{bucket}/tenant-a")
    assert report.files["interactions"] == f"s3://{bucket}/incoming/2025-01/interactions.csv"
    assert all(key in objects(bucket, "tenant-a/") for key in (f"tenant-a/{k}" for k in report.keys))
    assert not objects(bucket, "tenant-a/_staging/")
    local = import_dataset(dataset, f"s3://{bucket}/local-copy")
    assert local.content_id == report.content_id  # same bytes, whether read from S3 or from disk


def test_reimport_into_s3_writes_the_same_keys_and_bytes(bucket, dataset):
    import_dataset(dataset, f"s3://{bucket}")
    first = {k: o["ETag"] for k, o in objects(bucket, "events/").items()}
    import_dataset(dataset, f"s3://{bucket}")
    assert {k: o["ETag"] for k, o in objects(bucket, "events/").items()} == first


def test_a_refused_import_leaves_the_bucket_untouched(bucket, dataset, tmp_path):
    source = tmp_path / "bad"
    source.mkdir()
    lines = (dataset / "interactions.csv").read_text(encoding="utf-8").splitlines()
    lines[2500] = lines[2500].replace(",", ",,", 1)  # one cell too many, far into the file
    (source / "interactions.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = objects(bucket)
    with pytest.raises(InvalidRowsError, match=r"interactions.csv row 2501: \d+ cells, but the header has \d+"):
        import_dataset(source, f"s3://{bucket}")
    tiny = DatasetImportConfig(min_users=1_000, min_items=1, min_interactions=1)
    with pytest.raises(MinimumDataError):
        import_dataset(dataset, f"s3://{bucket}", config=tiny)
    assert objects(bucket) == before


def test_missing_buckets_are_clear_errors(bucket, dataset):
    with pytest.raises(DatasetImportError, match="s3://no-such-bucket: the bucket cannot be reached"):
        import_dataset(dataset, "s3://no-such-bucket")
    with pytest.raises(DatasetImportError, match="s3://no-such-bucket/in: cannot be listed"):
        import_dataset("s3://no-such-bucket/in", f"s3://{bucket}")
    with pytest.raises(DatasetImportError, match=f"s3://{bucket}/empty: no interactions.csv"):
        import_dataset(f"s3://{bucket}/empty", f"s3://{bucket}")
