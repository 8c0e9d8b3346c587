"""ValidateInput: the daily run's plan, checked before any job starts.

`plan_run` turns the execution input (all optional: `cutoff`, `window_days`) and the execution's name and start
time into every name and S3 URI the later states use, so that the state machine only copies fields
(`$.run.jobs.train`, `$.run.training_set`, ...). `lake_manifest` lists the lake objects of the window: the
SageMaker manifest it writes is the training job's `interactions` channel and the evaluation job's input, so
both read exactly the window, not the whole lake. Pure Python; `recsys.pipeline.aws` does the S3 calls.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from recsys.batch.paths import feature_table_uri, training_set_uri
from recsys.batch.window import DAY_S, TimeRange, cutoff_label, parse_cutoff, utc_date
from recsys.config import StageConfig
from recsys.events import EVENTS_PREFIX, ITEMS_PREFIX, USERS_PREFIX

PIPELINE_PREFIX = "pipeline"
# SageMaker job, model and endpoint-config names: at most 63 of [a-zA-Z0-9-].
MAX_NAME = 63
# A cutoff may lie a little ahead of the start time (clock skew), never a day ahead.
MAX_FUTURE_S = 3600.0
_JOB_KINDS = ("features", "ingest", "trainset", "train", "evaluate")
INPUT_FIELDS = ("cutoff", "window_days", "hyperparameters", "training_image", "source")
_EVENT_DATE = re.compile(rf"^{EVENTS_PREFIX}/event_date=(\d{{4}}-\d{{2}}-\d{{2}})/")


class PipelineInputError(ValueError):
    """The execution input or the lake cannot make a run; the message names the field or the missing data."""


@dataclass(frozen=True)
class RunPlan:
    run_id: str
    cutoff: str
    cutoff_epoch: float
    training_cutoff: str
    snapshot_date: str
    window_days: int
    lake: str
    output: str
    training_set: str
    artifacts: str
    interactions_manifest: str
    evaluation: str
    evaluation_report: str
    model_output: str
    model_name: str
    endpoint_config: str
    jobs: dict[str, str]
    training_image: str
    hyperparameters: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso_z(timestamp: float) -> str:
    label = cutoff_label(timestamp)  # 20240301T220000Z
    return f"{label[0:4]}-{label[4:6]}-{label[6:8]}T{label[9:11]}:{label[11:13]}:{label[13:15]}Z"


def run_id(execution_name: str, cutoff: float) -> str:
    """Unique per execution, readable, and short enough for SageMaker names: <cutoff>-<hash of the execution>."""
    digest = hashlib.sha256(execution_name.encode()).hexdigest()[:8]
    return f"{cutoff_label(cutoff)[:13].lower()}-{digest}"  # 20240301t2200-1a2b3c4d


def _name(prefix: str, kind: str, run: str) -> str:
    name = f"{prefix}-{kind}-{run}"
    if len(name) > MAX_NAME:
        raise PipelineInputError(f"name {name!r} is longer than {MAX_NAME} characters: shorten the stage prefix")
    return name


def _window_days(value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PipelineInputError(f"window_days: {value!r} is not an integer")
    if value < minimum:
        raise PipelineInputError(f"window_days: {value} is shorter than the {minimum}-day activity window")
    return value


def plan_run(
    execution_input: Mapping[str, Any] | None,
    *,
    execution_name: str,
    started_at: str,
    config: StageConfig,
    lake_bucket: str,
    artifacts_bucket: str,
    training_image: str,
) -> RunPlan:
    """The run's plan. The cutoff defaults to the execution's start time, truncated to the hour; the training
    image to the stack's, and the hyperparameters to {"cutoff": the training set's cutoff} plus the input's."""
    given = dict(execution_input or {})
    unknown = sorted(set(given) - set(INPUT_FIELDS))
    if unknown:
        raise PipelineInputError(f"input: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(INPUT_FIELDS)}")
    try:
        start = parse_cutoff(started_at)
    except ValueError:
        raise PipelineInputError(f"started_at: {started_at!r} is not an ISO time") from None
    if given.get("cutoff") is None:
        cutoff = start - start % 3600
    else:
        try:
            cutoff = parse_cutoff(str(given["cutoff"]))
        except ValueError as exc:
            raise PipelineInputError(str(exc)) from None
        if cutoff > start + MAX_FUTURE_S:
            raise PipelineInputError(f"cutoff: {_iso_z(cutoff)} is after the execution's start {_iso_z(start)}")
    batch = config.batch_features
    window = _window_days(given.get("window_days", batch.window_days), 60)
    training_cutoff = cutoff - batch.label_horizon_days * DAY_S
    run = run_id(execution_name, cutoff)
    prefix = config.prefix
    lake = f"s3://{lake_bucket}"
    artifacts = f"s3://{artifacts_bucket}/{PIPELINE_PREFIX}/{run}"
    jobs = {kind: _name(prefix, kind, run) for kind in _JOB_KINDS}
    return RunPlan(
        run_id=run,
        cutoff=_iso_z(cutoff),
        cutoff_epoch=cutoff,
        training_cutoff=_iso_z(training_cutoff),
        snapshot_date=utc_date(cutoff),
        window_days=window,
        lake=lake,
        output=lake,
        training_set=training_set_uri(lake, training_cutoff) + "/",
        artifacts=f"{artifacts}/",
        interactions_manifest=f"{artifacts}/interactions.manifest",
        evaluation=f"{artifacts}/evaluation/",
        evaluation_report=f"{artifacts}/evaluation/report.json",
        model_output=f"{artifacts}/model/",
        model_name=_name(prefix, "model", run),
        endpoint_config=_name(prefix, "endpoint", run),
        jobs=jobs,
        training_image=_training_image(given.get("training_image"), training_image),
        hyperparameters={"cutoff": _iso_z(training_cutoff), **_hyperparameters(given.get("hyperparameters"))},
    )


def _training_image(value: Any, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or ".dkr.ecr." not in value:
        raise PipelineInputError(f"training_image: {value!r} is not an ECR image URI")
    return value


def _hyperparameters(value: Any) -> dict[str, str]:
    """SageMaker takes string values only: objects, numbers and booleans are sent as JSON (train.py decodes)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise PipelineInputError(f"hyperparameters: expected a JSON object, got {type(value).__name__}")
    return {str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in value.items()}


def feature_snapshot(plan: RunPlan, table: str) -> str:
    """Where the batch job writes `table` (user, item, item_pairs) for the run's snapshot date."""
    return feature_table_uri(plan.output, table, plan.snapshot_date) + "/"


def lake_manifest(keys: Iterable[str], *, lake_bucket: str, cutoff: float, window_days: int) -> list[Any]:
    """A SageMaker S3 manifest of the run's inputs: the window's event partitions and the newest imports.

    Files keep their lake-relative paths in the channel, which is the "lake copy" layout recsys.evaluation.data
    reads. No event partition in the window is an error: training on nothing would pass no gate anyway.
    """
    first, last = TimeRange.before(cutoff, window_days).partition_dates()
    events: list[str] = []
    imports: dict[str, dict[str, list[str]]] = {ITEMS_PREFIX: {}, USERS_PREFIX: {}}
    for key in keys:
        match = _EVENT_DATE.match(key)
        if match:
            if first <= match.group(1) <= last and not key.endswith("/"):
                events.append(key)
            continue
        for prefix, found in imports.items():
            if key.startswith(f"{prefix}/import_id=") and not key.endswith("/"):
                import_id = key[len(prefix) + 1 :].split("/", 1)[0]
                found.setdefault(import_id, []).append(key)
    if not events:
        raise PipelineInputError(
            f"lake: no events under s3://{lake_bucket}/{EVENTS_PREFIX}/ between {first} and {last} (the "
            f"{window_days}-day window before the cutoff)"
        )
    newest = [key for found in imports.values() if found for key in sorted(found[max(found)])]
    return [{"prefix": f"s3://{lake_bucket}/"}, *sorted(events), *newest]
