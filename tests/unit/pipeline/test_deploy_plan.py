"""Deploy's plan (recsys.pipeline.deploy): champion kept, new model as challenger, stable variant names."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recsys.config import CHALLENGER_VARIANT, CHAMPION_VARIANT
from recsys.pipeline.deploy import DeployError, EndpointBusy, endpoint_config_request, plan_deploy

ENDPOINT = {"EndpointName": "recsys-dev-ranker", "EndpointStatus": "InService", "EndpointConfigName": "cfg-1"}


def config(*variants, **extra):
    return {"EndpointConfigName": "cfg-1", "ProductionVariants": list(variants), **extra}


def variant(name, model, weight, instance_type="ml.c5.xlarge", count=2):
    return {"VariantName": name, "ModelName": model, "InitialVariantWeight": weight, "InstanceType": instance_type,
            "InitialInstanceCount": count}


def plan(endpoint=ENDPOINT, endpoint_config=None, weight=0.1, **kwargs):
    return plan_deploy(endpoint, endpoint_config, new_model=kwargs.pop("new_model", "model-new"),
                       challenger_weight=weight, instance_type="ml.c5.large", instance_count=1,
                       kms_key_id="key-arn", **kwargs)


def test_without_an_endpoint_the_new_model_is_the_champion_with_all_traffic() -> None:
    result = plan(endpoint=None)
    assert result.action == "create"
    assert [(v.name, v.model, v.weight, v.instance_type) for v in result.variants] == [
        (CHAMPION_VARIANT, "model-new", 1.0, "ml.c5.large")]
    assert endpoint_config_request(result, "cfg-2", {"t": "v"})["KmsKeyId"] == "key-arn"


def test_the_champion_keeps_serving_and_yesterdays_challenger_is_replaced() -> None:
    current = config(variant(CHAMPION_VARIANT, "model-a", 0.5), variant(CHALLENGER_VARIANT, "model-b", 0.5),
                     KmsKeyId="stack-key", DataCaptureConfig={"EnableCapture": True, "InitialSamplingPercentage": 20})
    result = plan(endpoint_config=current, weight=0.1)
    assert result.action == "update"
    request = endpoint_config_request(result, "cfg-2", {"recsys:pipeline-run": "r1"})
    assert request["ProductionVariants"] == [
        variant(CHAMPION_VARIANT, "model-a", 0.9), variant(CHALLENGER_VARIANT, "model-new", 0.1)]
    # Encryption and data capture of the current config are carried over.
    assert request["KmsKeyId"] == "stack-key"
    assert request["DataCaptureConfig"] == {"EnableCapture": True, "InitialSamplingPercentage": 20}
    assert request["Tags"] == [{"Key": "recsys:pipeline-run", "Value": "r1"}]


def test_without_a_variant_named_champion_the_heaviest_is_the_champion() -> None:
    current = config(variant("AllTraffic", "model-x", 0.2), variant("Other", "model-y", 0.8))
    (champion, challenger) = plan(endpoint_config=current).variants
    assert (champion.name, champion.model) == (CHAMPION_VARIANT, "model-y")
    assert challenger.name == CHALLENGER_VARIANT


@pytest.mark.parametrize("status", ["Creating", "Updating", "SystemUpdating", "RollingBack"])
def test_a_changing_endpoint_is_retried_later(status: str) -> None:
    with pytest.raises(EndpointBusy, match=status):
        plan(endpoint={**ENDPOINT, "EndpointStatus": status}, endpoint_config=config(variant("champion", "m", 1)))


def test_impossible_deploys_are_refused_with_the_reason() -> None:
    with pytest.raises(DeployError, match="no production variants"):
        plan(endpoint_config=config())
    with pytest.raises(DeployError, match="already serves as the champion"):
        plan(endpoint_config=config(variant(CHAMPION_VARIANT, "model-new", 1.0)))
    with pytest.raises(DeployError, match="challenger_weight"):
        plan(endpoint=None, weight=1.0)


@given(st.floats(min_value=0.001, max_value=0.999), st.floats(min_value=0.0, max_value=1.0))
def test_weights_split_the_traffic_between_champion_and_challenger(weight: float, old: float) -> None:
    current = config(variant(CHAMPION_VARIANT, "model-a", old), variant(CHALLENGER_VARIANT, "model-b", 1 - old))
    champion, challenger = plan(endpoint_config=current, weight=weight).variants
    assert challenger.weight == weight and challenger.model == "model-new"
    assert champion.weight + challenger.weight == pytest.approx(1.0, abs=1e-6)
    assert champion.model == "model-a"
