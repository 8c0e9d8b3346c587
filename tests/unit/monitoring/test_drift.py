"""Drift baseline, comparison, statuses and the job on local files."""

import json
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.config import DriftMonitorConfig
from recsys.monitoring.drift import (
    ALARM,
    INSUFFICIENT,
    OK,
    WARN,
    Baseline,
    Reservoir,
    build_baseline,
    compare,
    parse_served_row,
    run_drift_job,
)
from recsys.monitoring.metrics import InMemoryPublisher

THRESHOLDS = DriftMonitorConfig(min_samples=200)


def training_rows(rng, n=5000):
    return {
        "age": rng.normal(35, 8, n),
        "listens_7d": rng.poisson(2.0, n),
        "country": rng.choice(["es", "ru", "in", "br"], n, p=[0.4, 0.3, 0.2, 0.1]),
        "prediction": rng.beta(2, 8, n),
        "label": (rng.random(n) < 0.2).astype(int),
    }


@pytest.fixture(scope="module")
def baseline():
    return build_baseline(training_rows(np.random.default_rng(1)), sample_size=2000)


def test_baseline_has_quantile_bins_shares_and_a_sample(baseline):
    age = baseline.features["age"]
    assert age.kind == "numeric" and len(age.bins) == 9
    assert age.shares[:-1] == pytest.approx([0.1] * 10, abs=1e-3) and age.missing_share == 0.0
    assert len(age.sample) == 2000 and age.summary["mean"] == pytest.approx(35, abs=0.5)
    country = baseline.features["country"]
    assert country.kind == "categorical" and country.bins == ["es", "ru", "in", "br"]
    assert sum(country.shares) == pytest.approx(1.0) and country.shares[-2:] == [0.0, 0.0]  # other, missing
    assert set(baseline.features) == {"age", "listens_7d", "country"}  # prediction and label are not features
    assert baseline.positive_rate == pytest.approx(0.2, abs=0.02)
    assert baseline.prediction is not None and baseline.prediction.summary["mean"] == pytest.approx(0.2, abs=0.01)


def test_baseline_survives_json(tmp_path, baseline):
    path = tmp_path / "model" / "drift-baseline.json"
    baseline.save(str(path))
    assert Baseline.load(str(path)) == baseline
    json.loads(path.read_text())  # strict JSON: no NaN


def test_baseline_rejects_bad_input_with_the_field_named():
    with pytest.raises(ValueError, match="columns differ in length"):
        build_baseline({"a": [1, 2], "b": [1]})
    with pytest.raises(ValueError, match="label: labels must be 0 or 1"):
        build_baseline({"a": [1.0, 2.0], "label": [0, 3]})
    with pytest.raises(ValueError, match="baseline feature 'a': 1 shares for 1 bins"):
        Baseline.from_dict(
            {"format": 1, "features": {"a": {"kind": "numeric", "bins": [1], "shares": [1], "count": 1}}}
        )


def test_same_distribution_is_ok_and_shift_is_an_alarm(baseline):
    rng = np.random.default_rng(2)
    same = compare(baseline, {k: v for k, v in training_rows(rng, 3000).items() if k != "label"}, THRESHOLDS)
    assert [f.status for f in same.features] == [OK, OK, OK]
    assert all(f.psi < 0.02 for f in same.features)
    assert same.prediction.status == OK and same.drifted_features == []

    shifted = training_rows(rng, 3000)
    shifted["age"] = rng.normal(45, 8, 3000)  # a whole standard deviation up
    report = compare(baseline, shifted, THRESHOLDS)
    age = report.feature("age")
    assert age.status == ALARM and age.psi > 0.25 and age.ks_statistic > 0.3 and age.ks_p_value < 1e-10
    assert report.drifted_features == ["age"]


def test_moderate_shift_is_a_warning(baseline):
    rng = np.random.default_rng(3)
    rows = training_rows(rng, 20000)
    rows["age"] = rng.normal(38, 8, 20000)
    age = compare(baseline, rows, THRESHOLDS).feature("age")
    assert 0.1 <= age.psi < 0.25 and age.status == WARN


def test_feature_missing_at_serving_is_an_alarm(baseline):
    rows = training_rows(np.random.default_rng(4), 1000)
    del rows["listens_7d"]
    drift = compare(baseline, rows, THRESHOLDS).feature("listens_7d")
    assert drift.served_missing_share == 1.0 and drift.status == ALARM and drift.ks_statistic is None


def test_unseen_categories_and_wrong_types_are_counted(baseline):
    rows = training_rows(np.random.default_rng(5), 1000)
    rows["country"] = np.array(["us"] * 1000)
    rows["age"] = ["35"] * 500 + list(rows["age"][500:])  # strings in a numeric feature: a serving bug
    report = compare(baseline, rows, THRESHOLDS)
    assert report.feature("country").status == ALARM
    assert report.feature("age").invalid_values == 500 and report.feature("age").served_missing_share == 0.5


def test_too_few_rows_are_not_judged(baseline):
    rows = training_rows(np.random.default_rng(6), 50)
    report = compare(baseline, rows, THRESHOLDS)
    assert {f.status for f in report.features} == {INSUFFICIENT}
    assert {m.name for m in report.metrics()} == {"DriftRowsCompared", "DriftedFeatures"}


def test_prior_shift_of_the_predictions(baseline):
    rng = np.random.default_rng(7)
    rows = training_rows(rng, 3000)
    rows["prediction"] = np.clip(rows["prediction"] * 1.5, 0, 1)  # the model now predicts 50% more positives
    prediction = compare(baseline, rows, THRESHOLDS).prediction
    assert prediction.prior_shift == pytest.approx(0.5, abs=0.06)
    assert prediction.status == ALARM and any("mean prediction" in r for r in prediction.reasons)


def test_metrics_carry_the_catalogue_names_and_feature_dimension(baseline):
    report = compare(baseline, training_rows(np.random.default_rng(8), 1000), THRESHOLDS)
    published = InMemoryPublisher()
    published.publish(report.metrics())
    assert published.value("FeatureDriftPSI", Feature="age") == pytest.approx(report.feature("age").psi)
    assert published.value("FeatureDriftKS", Feature="age") == pytest.approx(report.feature("age").ks_statistic)
    assert published.values("FeatureDriftKS", Feature="country") == []  # no KS for categorical features
    assert published.value("DriftRowsCompared") == 1000
    assert {"PredictionDriftPSI", "PredictionDriftKS", "PredictionPriorShift"} <= {m.name for m in published.metrics}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=300), st.integers(2, 20))
def test_served_rows_equal_to_the_training_rows_have_zero_psi(values, bins):
    rows = {"x": np.array(values)}
    report = compare(build_baseline(rows, bins=bins), rows, replace(THRESHOLDS, min_samples=1))
    assert report.feature("x").psi == pytest.approx(0.0, abs=1e-12)
    assert report.feature("x").ks_statistic == pytest.approx(0.0)


def test_reservoir_is_uniform_over_the_stream():
    rng = np.random.default_rng(0)
    positions = []
    for _ in range(200):
        reservoir = Reservoir(50, rng)
        for chunk in np.array_split(np.arange(1000, dtype=float), 7):
            reservoir.extend(chunk)
        assert reservoir.seen == 1000 and len(set(reservoir.values)) == 50
        positions.append(reservoir.values)
    positions = np.concatenate(positions)
    # Every tenth of the stream gets about a tenth of the sample.
    shares = np.bincount((positions // 100).astype(int), minlength=10) / positions.size
    assert np.all(np.abs(shares - 0.1) < 0.015)


def test_parse_served_row_names_the_bad_field():
    row = {"features": {"a": 1}, "prediction": 0.3, "timestamp": 5}
    assert parse_served_row(row) == ({"a": 1, "prediction": 0.3}, 5.0)
    for record, field in [([], "row"), ({}, "features"), ({"features": {}, "prediction": "x"}, "prediction"),
                          ({"features": {}, "timestamp": "today"}, "timestamp")]:
        with pytest.raises(ValueError, match=f"^{field}:"):
            parse_served_row(record)


def test_drift_job_on_local_files(tmp_path, baseline):
    baseline.save(str(tmp_path / "drift-baseline.json"))
    now = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    rng = np.random.default_rng(9)
    logs = tmp_path / "served"
    logs.mkdir()
    rows = training_rows(rng, 1200)
    with open(logs / "part-0.jsonl", "w") as out:
        for i in range(1200):
            features = {"age": float(rows["age"][i]) + 10, "listens_7d": int(rows["listens_7d"][i]),
                        "country": str(rows["country"][i]), "new_feature": 1}
            # 200 rows are older than the 6-hour window and must be skipped.
            timestamp = now.timestamp() - (8 * 3600 if i < 200 else 60)
            out.write(json.dumps({"timestamp": timestamp, "features": features,
                                  "prediction": float(rows["prediction"][i])}) + "\n")
        out.write("not json\n")
        out.write(json.dumps({"features": "oops"}) + "\n")
    publisher = InMemoryPublisher()
    report = run_drift_job(str(tmp_path / "drift-baseline.json"), str(logs), THRESHOLDS, publisher,
                           report_uri=str(tmp_path / "reports"), now=now)
    assert report.rows == 1000 and report.rejected_rows == 2
    assert report.errors[1].endswith("part-0.jsonl:1202: features: required object of feature values")
    assert report.unknown_features == ["new_feature"]
    assert report.drifted_features == ["age"]
    assert publisher.value("DriftedFeatures") == 1
    written = json.loads((tmp_path / "reports" / "drift-latest.json").read_text())
    assert written["drifted_features"] == ["age"] and written["rows"] == 1000
    assert (tmp_path / "reports" / "drift-20240501T120000Z.html").read_text().count("<tr") >= 4
