"""Deploy: which production variants the ranking endpoint gets after a model passed the gate. Pure Python.

- No endpoint yet: the new model is the champion with all the traffic, and the endpoint is created.
- An endpoint: its champion keeps serving 1 - challenger_weight of the traffic and the new model becomes the
  challenger with challenger_weight (config.pipeline), on the champion's instance type and count; yesterday's
  challenger is replaced. Variant names are CHAMPION_VARIANT / CHALLENGER_VARIANT, which the A/B analysis, the
  alarms and the autoscaling policies key on. Promotion (shifting weight to a winning challenger) is
  recsys.monitoring.promotion's job, not the daily pipeline's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from recsys.config import CHALLENGER_VARIANT, CHAMPION_VARIANT

# Endpoint states in which UpdateEndpoint is refused; the Deploy state retries them with backoff.
BUSY_STATES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting", "UpdateRollbackFailed"})


class EndpointBusy(RuntimeError):
    """The endpoint is changing; a later attempt can deploy. The state machine retries this error by name."""


class DeployError(ValueError):
    """The current endpoint cannot take a challenger (e.g. it has no variants); the message says why."""


@dataclass(frozen=True)
class Variant:
    name: str
    model: str
    weight: float
    instance_type: str
    instance_count: int

    def production_variant(self) -> dict[str, Any]:
        return {
            "VariantName": self.name,
            "ModelName": self.model,
            "InitialVariantWeight": self.weight,
            "InstanceType": self.instance_type,
            "InitialInstanceCount": self.instance_count,
        }


@dataclass(frozen=True)
class DeployPlan:
    action: str  # "create" or "update"
    variants: tuple[Variant, ...]
    # Carried over from the current endpoint config, so a deploy never drops encryption or data capture.
    kms_key_id: str | None = None
    data_capture: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"action": self.action, "variants": [asdict(variant) for variant in self.variants]}


def champion_variant(variants: list[Mapping[str, Any]]) -> Mapping[str, Any]:
    named = [variant for variant in variants if variant.get("VariantName") == CHAMPION_VARIANT]
    if named:
        return named[0]
    if not variants:
        raise DeployError("endpoint config: no production variants to take the champion from")
    return max(variants, key=lambda variant: float(variant.get("InitialVariantWeight", 1.0)))


def plan_deploy(
    endpoint: Mapping[str, Any] | None,
    endpoint_config: Mapping[str, Any] | None,
    *,
    new_model: str,
    challenger_weight: float,
    instance_type: str,
    instance_count: int,
    kms_key_id: str | None,
) -> DeployPlan:
    """`endpoint` / `endpoint_config`: DescribeEndpoint / DescribeEndpointConfig responses, or None."""
    if not 0.0 < challenger_weight < 1.0:
        raise DeployError(f"challenger_weight: {challenger_weight} must be in (0, 1)")
    if endpoint is None:
        champion = Variant(CHAMPION_VARIANT, new_model, 1.0, instance_type, instance_count)
        return DeployPlan("create", (champion,), kms_key_id=kms_key_id)
    status = endpoint.get("EndpointStatus")
    if status in BUSY_STATES:
        raise EndpointBusy(f"endpoint {endpoint.get('EndpointName')}: {status}, cannot deploy now")
    if endpoint_config is None:
        raise DeployError(f"endpoint {endpoint.get('EndpointName')}: its endpoint config is missing")
    current = champion_variant(list(endpoint_config.get("ProductionVariants", [])))
    if current["ModelName"] == new_model:
        raise DeployError(f"model {new_model} already serves as the champion")
    size = (current.get("InstanceType", instance_type), int(current.get("InitialInstanceCount", instance_count)))
    variants = (
        Variant(CHAMPION_VARIANT, current["ModelName"], round(1.0 - challenger_weight, 6), *size),
        Variant(CHALLENGER_VARIANT, new_model, challenger_weight, *size),
    )
    return DeployPlan(
        "update",
        variants,
        kms_key_id=endpoint_config.get("KmsKeyId") or kms_key_id,
        data_capture=endpoint_config.get("DataCaptureConfig"),
    )


def endpoint_config_request(plan: DeployPlan, name: str, tags: Mapping[str, str]) -> dict[str, Any]:
    request: dict[str, Any] = {
        "EndpointConfigName": name,
        "ProductionVariants": [variant.production_variant() for variant in plan.variants],
        "Tags": [{"Key": key, "Value": value} for key, value in sorted(tags.items())],
    }
    if plan.kms_key_id:
        request["KmsKeyId"] = plan.kms_key_id
    if plan.data_capture:
        request["DataCaptureConfig"] = dict(plan.data_capture)
    return request
