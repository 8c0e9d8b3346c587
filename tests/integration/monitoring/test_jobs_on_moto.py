"""The drift and A/B jobs reading from and writing to S3, publishing to CloudWatch (moto server)."""

import gzip
import json
import uuid
from datetime import datetime, timezone

import numpy as np
import pytest

from recsys import aws as clients
from recsys.config import ABTestConfig, DriftMonitorConfig
from recsys.events import Event
from recsys.monitoring import storage
from recsys.monitoring.abtest import Exposure, run_ab_job
from recsys.monitoring.drift import BASELINE_FILE, build_baseline, run_drift_job
from recsys.monitoring.metrics import CATALOGUE, CloudWatchPublisher, Metric

NOW = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)


@pytest.fixture
def namespace(aws):
    """A namespace of the test's own: no API deletes CloudWatch metric data, so on LocalStack another test's stays."""
    return f"recsys-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def bucket(aws):
    clients.client("s3").create_bucket(Bucket="recsys-monitoring-it")
    return "recsys-monitoring-it"


def listed(namespace, name=None):
    cloudwatch = clients.client("cloudwatch")
    metrics = []
    query = {"Namespace": namespace} | ({"MetricName": name} if name else {})
    for page in cloudwatch.get_paginator("list_metrics").paginate(**query):
        metrics += page["Metrics"]
    return metrics


def test_cloudwatch_publisher_sends_more_than_one_batch(namespace):
    metrics = [Metric("FeatureDriftPSI", i / 1000, {"Feature": f"f{i}"}) for i in range(1500)]
    metrics.append(Metric("PredictionDriftPSI", float("nan")))  # not computable: left out, not an error
    CloudWatchPublisher(namespace).publish(metrics)
    found = listed(namespace, "FeatureDriftPSI")
    assert len(found) == 1500
    assert {d["Name"] for m in found for d in m["Dimensions"]} == {"Feature"}
    assert listed(namespace, "PredictionDriftPSI") == []


def test_drift_job_with_s3_and_cloudwatch(bucket, namespace):
    rng = np.random.default_rng(0)
    training = {"age": rng.normal(35, 8, 4000), "device": rng.choice(["ios", "android"], 4000),
                "prediction": rng.beta(2, 8, 4000), "label": (rng.random(4000) < 0.2).astype(int)}
    baseline_uri = f"s3://{bucket}/models/ranker/v7/{BASELINE_FILE}"
    build_baseline(training).save(baseline_uri)
    rows = [json.dumps({"timestamp": NOW.timestamp() - 60, "prediction": float(rng.beta(2, 8)),
                        "features": {"age": float(rng.normal(50, 8)), "device": str(rng.choice(["ios", "android"]))}})
            for _ in range(800)]
    storage.write_bytes(f"s3://{bucket}/served/dt=2024-05-01/part-0.jsonl.gz", gzip.compress("\n".join(rows).encode()))
    report = run_drift_job(baseline_uri, f"s3://{bucket}/served/dt=2024-05-01/", DriftMonitorConfig(),
                           CloudWatchPublisher(namespace), report_uri=f"s3://{bucket}/reports/drift", now=NOW)
    assert report.rows == 800 and report.drifted_features == ["age"]
    names = {m["MetricName"] for m in listed(namespace)}
    assert {"FeatureDriftPSI", "FeatureDriftKS", "PredictionDriftPSI", "DriftedFeatures", "DriftRowsCompared"} <= names
    assert names <= set(CATALOGUE)
    stored = storage.read_json(f"s3://{bucket}/reports/drift/drift-latest.json")
    assert stored["drifted_features"] == ["age"]
    assert storage.exists(f"s3://{bucket}/reports/drift/drift-20240501T120000Z.html")


def test_ab_job_with_s3_and_cloudwatch(bucket, namespace):
    rng = np.random.default_rng(1)
    t0 = NOW.timestamp() - 3600
    exposures, events = [], []
    for variant, ctr in (("champion", 0.1), ("B", 0.2)):
        for u in range(200):
            rid = f"{variant}-{u}"
            exposures.append(Exposure(rid, variant, f"{variant}-u{u}", t0, latency_ms=25.0).to_dict())
            if rng.random() < ctr:
                events.append(Event(f"e-{rid}", f"{variant}-u{u}", "click", t0 + 5, item_id="i", recommendation_id=rid))
    storage.write_bytes(f"s3://{bucket}/exposures/part-0.jsonl", "\n".join(map(json.dumps, exposures)).encode())
    lake = f"s3://{bucket}/events/event_date=2024-05-01/"
    storage.write_bytes(lake + "part-0.jsonl.gz", gzip.compress("\n".join(e.to_json() for e in events).encode()))
    report_uri = f"s3://{bucket}/reports/ab"
    config = ABTestConfig(min_users_per_variant=100)
    report = run_ab_job(f"s3://{bucket}/exposures/", lake, {"champion": 1, "B": 1}, config,
                        CloudWatchPublisher(namespace), qualified_play_s=300, window_start=t0, report_uri=report_uri,
                        now=NOW)
    assert report.variant("B").users == 200
    assert report.variant("B").clicks == len([e for e in events if e.event_id.startswith("e-B-")])
    for name in ("ABCtr", "ABCvr", "ABEngagement", "ABLatencyP99"):
        assert {d["Value"] for m in listed(namespace, name) for d in m["Dimensions"]} == {"champion", "B"}
    assert listed(namespace, "ABSampleRatioMismatch")
    # The next look reads this one back: the always-valid p-value is a running minimum, so a look that on
    # its own shows nothing (the clicks vanished) keeps the earlier evidence.
    first_p = report.comparison("B", "ctr").always_valid_p
    assert first_p < 0.5
    storage.write_bytes(lake + "part-0.jsonl.gz", gzip.compress(b""))
    again = run_ab_job(f"s3://{bucket}/exposures/", lake, {"champion": 1, "B": 1}, config,
                       CloudWatchPublisher(namespace), qualified_play_s=300, window_start=t0, report_uri=report_uri,
                       now=NOW)
    assert again.variant("B").clicks == 0
    assert again.comparison("B", "ctr").always_valid_p == first_p
