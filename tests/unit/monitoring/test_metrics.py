"""The metric catalogue is enforced: no name or dimension a dashboard could not rely on."""

import math
from datetime import datetime, timezone

import pytest

from recsys.monitoring.metrics import CATALOGUE, MAX_BATCH, CloudWatchPublisher, InMemoryPublisher, Metric


def test_unknown_names_and_wrong_dimensions_are_refused():
    with pytest.raises(ValueError, match="metric name 'FeatureDrift' is not in the monitoring catalogue"):
        Metric("FeatureDrift", 1.0, {"Feature": "age"})
    with pytest.raises(ValueError, match=r"metric ABCtr: dimensions \[\] differ from the catalogue's \['Variant'\]"):
        Metric("ABCtr", 0.1)
    assert Metric("ABAlwaysValidPValue", 0.5, {"Metric": "ctr", "Variant": "B"}).unit == "None"


def test_catalogue_units_are_cloudwatch_units():
    assert {spec.unit for spec in CATALOGUE.values()} <= {"Count", "None", "Milliseconds"}
    assert all(name.isascii() and name.isalnum() for name in CATALOGUE)


class RecordingClient:
    def __init__(self):
        self.calls = []

    def put_metric_data(self, **request):
        self.calls.append(request)


def test_cloudwatch_publisher_batches_and_drops_non_finite_values():
    client = RecordingClient()
    stamp = datetime(2024, 5, 1, tzinfo=timezone.utc)
    metrics = [Metric("ABCtr", i / 100, {"Variant": f"v{i}"}, stamp) for i in range(5)]
    metrics.append(Metric("ABSampleRatioMismatch", math.nan))
    CloudWatchPublisher("recsys-dev", client, batch_size=2).publish(metrics)
    assert [len(call["MetricData"]) for call in client.calls] == [2, 2, 1]
    first = client.calls[0]
    assert first["Namespace"] == "recsys-dev"
    assert first["MetricData"][0] == {"MetricName": "ABCtr", "Dimensions": [{"Name": "Variant", "Value": "v0"}],
                                      "Value": 0.0, "Unit": "None", "Timestamp": stamp}
    with pytest.raises(ValueError, match=f"batch_size: must lie in \\[1, {MAX_BATCH}\\]"):
        CloudWatchPublisher("x", client, batch_size=MAX_BATCH + 1)


def test_in_memory_publisher_looks_up_by_dimensions():
    publisher = InMemoryPublisher()
    publisher.publish([Metric("ABCtr", 0.1, {"Variant": "A"}), Metric("ABCtr", 0.2, {"Variant": "B"})])
    assert publisher.value("ABCtr", Variant="B") == 0.2
    with pytest.raises(KeyError, match="0 values of ABCtr"):
        publisher.value("ABCtr", Variant="C")
