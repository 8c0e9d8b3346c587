"""RegisterModel and the champion's figures. Pure Python: requests and parsing, no AWS calls.

A model that passed the gate is registered in the model package group (config.names.model_package_group) as
Approved, with its evaluation report as model-quality statistics and the gate's figures as customer metadata.
Deploy tags the SageMaker Model it creates with the package ARN (MODEL_PACKAGE_TAG), so the next run's gate can
find the champion's figures: endpoint -> champion variant -> model -> tag -> package -> metadata.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from recsys.pipeline.gate import GateMetrics

MODEL_PACKAGE_TAG = "recsys:model-package"
RUN_TAG = "recsys:pipeline-run"
CONTENT_TYPES = ["application/json"]
_METRIC_FIELDS = ("ndcg", "popularity_ndcg", "auc")


def gate_metadata(metrics: GateMetrics, run_id: str) -> dict[str, str]:
    """CustomerMetadataProperties: SageMaker stores strings only."""
    return {"run_id": run_id, **{name: repr(float(getattr(metrics, name))) for name in _METRIC_FIELDS}}


def metrics_from_metadata(metadata: Mapping[str, str] | None) -> GateMetrics | None:
    """The figures a package was registered with; None when it carries none (e.g. registered by hand)."""
    if not metadata or any(name not in metadata for name in _METRIC_FIELDS):
        return None
    try:
        return GateMetrics(**{name: float(metadata[name]) for name in _METRIC_FIELDS})
    except ValueError:
        return None


def model_package_request(
    *,
    group: str,
    run: Mapping[str, Any],
    model_data: str,
    image: str,
    candidate: Mapping[str, Any],
) -> dict[str, Any]:
    """CreateModelPackage for the run's model; `candidate` is the gate's candidate figures (GateMetrics fields)."""
    metrics = GateMetrics(**{name: float(candidate[name]) for name in _METRIC_FIELDS})
    return {
        "ModelPackageGroupName": group,
        "ModelPackageDescription": f"daily pipeline run {run['run_id']} (cutoff {run['cutoff']})",
        "InferenceSpecification": {
            "Containers": [{"Image": image, "ModelDataUrl": model_data}],
            "SupportedContentTypes": CONTENT_TYPES,
            "SupportedResponseMIMETypes": CONTENT_TYPES,
        },
        "ModelApprovalStatus": "Approved",
        "ModelMetrics": {
            "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": run["evaluation_report"]}}
        },
        "CustomerMetadataProperties": gate_metadata(metrics, str(run["run_id"])),
    }
