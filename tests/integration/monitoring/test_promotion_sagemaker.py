"""apply_promotion against moto's SageMaker (UpdateEndpointWeightsAndCapacities) and a decision log in S3."""

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from recsys import aws as clients
from recsys.config import ABTestConfig, MonitoringConfig, PromotionConfig
from recsys.events import Event
from recsys.monitoring.abtest import Exposure
from recsys.monitoring.metrics import InMemoryPublisher
from recsys.monitoring.promotion import (
    Decision,
    StaleDecision,
    apply_promotion,
    latest_promotion,
    load_promotions,
    run_ab_cycle,
)

ENDPOINT = "recsys-dev-ranker"
VARIANTS = {"champion": "current-model", "B": "candidate-model"}


@pytest.fixture
def log_uri(aws):
    clients.client("s3").create_bucket(Bucket="monitoring-test")
    return "s3://monitoring-test/promotions"


@pytest.fixture
def endpoint(aws):
    sagemaker = clients.client("sagemaker")
    role = "arn:aws:iam::123456789012:role/recsys-dev-sagemaker"
    for model in VARIANTS.values():
        sagemaker.create_model(ModelName=model, ExecutionRoleArn=role,
                               PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/ranker:1"})
    sagemaker.create_endpoint_config(
        EndpointConfigName=f"{ENDPOINT}-config",
        ProductionVariants=[
            {"VariantName": name, "ModelName": name, "InitialInstanceCount": 1, "InstanceType": "ml.m5.large",
             "InitialVariantWeight": 1.0}
            for name in VARIANTS.values()
        ],
    )
    sagemaker.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName=f"{ENDPOINT}-config")
    return sagemaker


def weights(sagemaker):
    variants = sagemaker.describe_endpoint(EndpointName=ENDPOINT)["ProductionVariants"]
    return {v["VariantName"]: v["CurrentWeight"] for v in variants}


def test_apply_promotion_updates_weights_and_records_the_decision(endpoint, log_uri):
    decision = Decision(True, "B beats champion on ctr", "B", {"champion": 1.0, "B": 1.0}, {"champion": 0.75, "B": 1.25},
                        {"users": {"champion": 3000, "B": 3000}})
    record = apply_promotion(decision, ENDPOINT, VARIANTS, endpoint, log_uri=log_uri)
    assert weights(endpoint) == {"current-model": 0.75, "candidate-model": 1.25}
    assert record["new_weights"] == {"champion": 0.75, "B": 1.25} and record["endpoint"] == ENDPOINT

    stored = load_promotions(log_uri)
    assert len(stored) == 1 and stored[0]["winner"] == "B" and stored[0]["report"]["users"]["B"] == 3000
    assert latest_promotion(log_uri)["time"] == record["time"]

    # The same decision again is stale: the endpoint no longer has the weights it was based on.
    with pytest.raises(StaleDecision, match="the decision assumed"):
        apply_promotion(decision, ENDPOINT, VARIANTS, endpoint, log_uri=log_uri)
    assert weights(endpoint) == {"current-model": 0.75, "candidate-model": 1.25}
    assert len(load_promotions(log_uri)) == 1


def test_no_promotions_recorded_yet(log_uri, tmp_path):
    assert latest_promotion(log_uri) is None
    assert latest_promotion(str(tmp_path / "nothing-here")) is None


def write_experiment(tmp_path, t0):
    """Exposures and lake click events where B clearly beats the control."""
    rng = np.random.default_rng(3)
    exposures, events = [], []
    for variant, ctr in (("champion", 0.10), ("B", 0.18)):
        for u in range(1200):
            rid = f"{variant}-{u}"
            exposures.append(json.dumps(Exposure(rid, variant, f"{variant}-u{u}", t0, latency_ms=20.0).to_dict()))
            if rng.random() < ctr:
                events.append(Event(f"e-{rid}", f"{variant}-u{u}", "click", t0 + 1, recommendation_id=rid).to_json())
    (tmp_path / "exposures.jsonl").write_text("\n".join(exposures))
    (tmp_path / "events.jsonl").write_text("\n".join(events))


def test_ab_cycle_promotes_then_restarts_the_window(endpoint, log_uri, tmp_path):
    now = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    write_experiment(tmp_path, now.timestamp() - 3600)
    config = MonitoringConfig(ab=ABTestConfig(min_users_per_variant=500),
                              promotion=PromotionConfig(enabled=True, step=0.5, min_users_per_variant=1000))
    publisher = InMemoryPublisher()
    args = dict(endpoint_name=ENDPOINT, variant_names=VARIANTS, sagemaker_client=endpoint, log_uri=log_uri,
                report_uri=str(tmp_path / "reports"), qualified_play_s=300)
    report, decision = run_ab_cycle(str(tmp_path / "exposures.jsonl"), str(tmp_path / "events.jsonl"), config,
                                    publisher, now=now, **args)
    assert decision.act and decision.winner == "B" and report.decision["applied"]
    assert weights(endpoint) == {"current-model": 0.5, "candidate-model": 1.5}
    assert publisher.value("ABPromotions") == 1.0
    assert "Promoted" in (tmp_path / "reports" / "ab-latest.html").read_text()

    # Five minutes later: the split changed, so the window starts at the promotion and the old exposures drop out.
    later = now + timedelta(minutes=5)
    report, decision = run_ab_cycle(str(tmp_path / "exposures.jsonl"), str(tmp_path / "events.jsonl"), config,
                                    publisher, now=later, **args)
    assert report.window_start == now.timestamp() and report.weights == {"B": 1.5, "champion": 0.5}
    assert not decision.act and decision.reason.startswith("below 1000 users per variant")
    assert weights(endpoint) == {"current-model": 0.5, "candidate-model": 1.5}
    assert publisher.values("ABPromotions") == [1.0, 0.0]
    assert len(load_promotions(log_uri)) == 1


def test_ab_cycle_names_unknown_production_variants(endpoint, log_uri, tmp_path):
    with pytest.raises(ValueError, match=r"has no production variants \['typo'\]"):
        run_ab_cycle("unused", "unused", MonitoringConfig(), InMemoryPublisher(), endpoint_name=ENDPOINT,
                     variant_names={"champion": "current-model", "B": "typo"}, sagemaker_client=endpoint,
                     log_uri=log_uri, report_uri=str(tmp_path), qualified_play_s=300)
