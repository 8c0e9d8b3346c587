"""The daily pipeline on the local platform: the state machine's steps (recsys.pipeline.steps), in its order.

    run = DailyRun(config, resources, redis_url, state_dir=Path(".local/pipeline/dev"), cutoff=cutoff)
    try:
        run_daily_pipeline(run, StepPrinter(total=len(PIPELINE_STEPS)))
        run.decision.passed, run.endpoint.variants          # the gate's decision, the served variants
    finally:
        run.close()                                         # stops the inference servers and Spark

What each step does locally (and what it stands for in AWS):

- ValidateInput: the lake has events in the feature window and in the label horizon, and an items import (Lambda);
- BatchFeatures: the history before the cutoff downloaded from moto S3 (the ProcessingInput), the Spark job's
  features on local[*], the tables published to the lake bucket (SageMaker Processing);
- IngestFeatures: the user and item tables into the Feature Store, Valkey online and moto S3 offline;
- BuildTrainingSet: the point-in-time training set at T = cutoff - label horizon, labels from [T, cutoff);
- Train: containers/training/train.py on the /opt/ml layout under the run folder, the model under
  state_dir/models (SageMaker training job);
- Evaluate: recsys.evaluation on the same history, report.json + HTML (the gate's input);
- QualityGate: recsys.pipeline.gate against the deployed champion's figures (state_dir/deployment.json);
- RegisterModel: model.tar.gz in the artifacts bucket, a model package in moto's SageMaker model registry;
- Deploy: the inference container's server as a process per variant (endpoint update): the champion stays, the new
  model is the challenger with config.pipeline.challenger_weight, or the champion when there is none;
- Notify: the outcome on the on-call SNS topic (moto).

Evaluate backtests the training recipe on a time split of the same history (the model the Train step fits has
seen all of it, so it has no held-out future to be scored on); the Train step's own held-out validation metrics
are kept in the bundle. A gate rejection skips RegisterModel and Deploy and Notify says why. A failing step
publishes a failure notification on the on-call topic and the `PipelineFailures` metric, then raises
PipelineFailed naming the step.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recsys import aws
from recsys.config import CHALLENGER_VARIANT, CHAMPION_VARIANT, LOCAL_ACCOUNT, StageConfig
from recsys.batch.window import DAY_S, utc_date
from recsys.evaluation.pipeline import EvalConfig
from recsys.events import EVENTS_PREFIX, ITEMS_PREFIX
from recsys.local.resources import LocalResources
from recsys.local.steps import StepPrinter
from recsys.lake.listing import download, event_dates, history_keys, keys, latest_cutoff, newest_import
from recsys.pipeline.gate import GateDecision, GateMetrics, decide
from recsys.pipeline.run import PipelineInputError
from recsys.pipeline.steps import PIPELINE_STEPS, Step

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENT_FILE = "deployment.json"
INFERENCE_IMAGE = "recsys-inference:local"  # the image CDK builds from containers/inference; only named locally


class PipelineFailed(RuntimeError):
    def __init__(self, step: Step, cause: BaseException) -> None:
        super().__init__(f"daily pipeline failed at {step.value}: {type(cause).__name__}: {cause}")
        self.step = step
        self.cause = cause


@dataclass(frozen=True)
class DailySettings:
    """Run-size knobs: the evaluation's config and the training job's extra hyperparameters."""

    eval_config: EvalConfig = field(default_factory=EvalConfig)
    # e.g. {"candidates": {"ease": {"l2": 30000.0}}}; cutoff and labels are set by the pipeline.
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)
    server_workers: int = 1


@dataclass
class Variant:
    """One production variant of the local endpoint: a model version and its traffic weight."""

    name: str
    version: str
    model_dir: str
    weight: float
    gate: dict[str, float] | None = None
    model_package_arn: str | None = None
    url: str | None = None

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "url"}


@dataclass
class LocalEndpoint:
    """The running inference servers, one per variant."""

    variants: list[Variant]
    stoppers: list[Callable[[], None]] = field(default_factory=list)

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    def stop(self) -> None:
        while self.stoppers:
            self.stoppers.pop()()


@dataclass
class DailyRun:
    """One run's inputs, and what its steps produce (filled in as they go)."""

    config: StageConfig
    resources: LocalResources
    redis_url: str
    state_dir: Path
    cutoff: float | None = None
    settings: DailySettings = field(default_factory=DailySettings)
    spark: Any = None  # a SparkSession to use and keep open; by default one is started and stopped
    run_id: str = field(default_factory=lambda: time.strftime("run-%Y%m%dT%H%M%SZ", time.gmtime()))
    # Filled in by the steps.
    outcomes: dict[Step, str] = field(default_factory=dict)
    seconds: dict[Step, float] = field(default_factory=dict)
    batch: Any = None  # recsys.batch.pipeline.BatchResult of the features run
    training: Any = None  # ... of the training-set run
    training_cutoff: float | None = None
    ingested: dict[str, int] = field(default_factory=dict)
    model_dir: Path | None = None
    model_version: str | None = None
    training_labels: tuple[str, str] | None = None
    report: dict[str, Any] | None = None
    report_paths: dict[str, Path] = field(default_factory=dict)
    decision: GateDecision | None = None
    model_package_arn: str | None = None
    endpoint: LocalEndpoint | None = None
    notification_id: str | None = None
    _own_spark: bool = False

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "runs" / self.run_id

    @property
    def lake_dir(self) -> Path:
        return self.run_dir / "lake"

    @property
    def output_dir(self) -> Path:
        return self.run_dir / "processing-output"

    @property
    def evaluation_dir(self) -> Path:
        return self.run_dir / "evaluation"

    @property
    def drift_baseline_path(self) -> Path:
        return self.run_dir / "drift-baseline.json"

    def spark_session(self):
        if self.spark is None:
            from pyspark.sql import SparkSession

            from recsys.batch.pipeline import default_shuffle_partitions

            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run this interpreter
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")  # local[*] only: no lookup of the host's address
            self.spark = (SparkSession.builder.master("local[*]").appName("recsys-daily-pipeline-local")
                          .config("spark.sql.session.timeZone", "UTC").config("spark.ui.enabled", "false")
                          .config("spark.ui.showConsoleProgress", "false").getOrCreate())  # step lines, no bars
            self.spark.sparkContext.setLogLevel("ERROR")
            default_shuffle_partitions(self.spark)
            self._own_spark = True
        return self.spark

    def stop_spark(self) -> None:
        if self._own_spark and self.spark is not None:
            self.spark.stop()
            self.spark = None
            self._own_spark = False

    def close(self) -> None:
        """Stop what the run started: its inference servers and its own Spark session."""
        if self.endpoint is not None:
            self.endpoint.stop()
        self.stop_spark()


# --- lake access -------------------------------------------------------------------------------------------------


def lake_event_ids(bucket: str, first_date: str) -> list[str]:
    """The event ids of every lake event dated `first_date` (YYYY-MM-DD) or later, one per stored record (a
    duplicate delivery shows twice): what the tracker delivered after an import that ends before that date."""
    import gzip

    s3 = aws.client("s3")
    ids = []
    for date in event_dates(bucket):
        if date < first_date:
            continue
        for key in keys(bucket, f"{EVENTS_PREFIX}/event_date={date}/"):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            text = gzip.decompress(body) if key.endswith(".gz") else body
            ids += [json.loads(line)["event_id"] for line in text.decode().splitlines() if line.strip()]
    return ids


def _importable_containers() -> None:
    """containers/ (the training and inference entrypoints) sits next to the recsys package, outside it."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))


# --- the steps ---------------------------------------------------------------------------------------------------


def validate_input(run: DailyRun) -> str:
    """The cutoff (default: midnight after the lake's newest event date), and events in the feature window and
    in the label horizon before it, and an items import."""
    bucket = run.resources.lake_bucket
    batch = run.config.batch_features
    dates = event_dates(bucket)
    try:
        run.cutoff = latest_cutoff(bucket, dates) if run.cutoff is None else float(run.cutoff)
    except ValueError as exc:
        raise PipelineInputError(str(exc)) from None
    if run.cutoff % DAY_S:
        raise PipelineInputError(f"cutoff: {run.cutoff} is not a UTC midnight (the daily run's history is whole days)")
    cutoff_date = utc_date(run.cutoff)
    window_start = utc_date(run.cutoff - batch.window_days * DAY_S)
    horizon_start = utc_date(run.cutoff - batch.label_horizon_days * DAY_S)
    in_window = [d for d in dates if window_start <= d < cutoff_date]
    in_horizon = [d for d in in_window if d >= horizon_start]
    if not in_window:
        raise PipelineInputError(f"lake s3://{bucket}/{EVENTS_PREFIX}/: no event partition in the "
                                 f"{batch.window_days}-day window [{window_start}, {cutoff_date})")
    if not in_horizon:
        raise PipelineInputError(f"lake s3://{bucket}/{EVENTS_PREFIX}/: no event partition in the label horizon "
                                 f"[{horizon_start}, {cutoff_date}): the training set would have no labels")
    if not newest_import(bucket, ITEMS_PREFIX):
        raise PipelineInputError(f"lake s3://{bucket}/{ITEMS_PREFIX}/: no items import (import the dataset first)")
    return (f"cutoff {utc_date(run.cutoff)}T00:00Z; {len(in_window)} event dates in the {batch.window_days}-day "
            f"window, {len(in_horizon)} in the {batch.label_horizon_days}-day label horizon")


def _stage_history(run: DailyRun) -> int:
    """Download every event partition before the cutoff and the newest users/items imports (the ProcessingInput;
    the training and evaluation jobs read the same history)."""
    bucket, cutoff_date = run.resources.lake_bucket, utc_date(run.cutoff)
    return download(bucket, history_keys(bucket, lambda date: date < cutoff_date), run.lake_dir)


def _batch_run(run: DailyRun, mode: str):
    from recsys.batch.pipeline import BatchRun

    batch = run.config.batch_features.resolved(run.config.pit_features)
    return BatchRun(str(run.lake_dir), str(run.output_dir), run.cutoff, batch, mode, utc_date(run.cutoff))


def batch_features(run: DailyRun) -> str:
    from recsys.batch.local_run import publish_outputs
    from recsys.batch.pipeline import run_batch

    staged = _stage_history(run)
    run.batch = run_batch(run.spark_session(), _batch_run(run, "features"))
    published = publish_outputs(run.output_dir, run.resources.lake_bucket)
    rows = ", ".join(f"{name.split('/')[1]} {count:,}" for name, count in run.batch.rows.items())
    return (f"{staged} lake files staged; feature rows: {rows} ({run.batch.seconds:.1f}s in Spark); "
            f"{published} files published to s3://{run.resources.lake_bucket}/")


def feature_store(run: DailyRun):
    """The local Feature Store of this stage: Valkey online, the lake bucket's offline layout."""
    import redis

    from recsys.batch.feature_store import LocalFeatureStore, OfflineStoreLocation, feature_group

    batch = run.config.batch_features
    groups = {entity: feature_group(entity, run.config.names) for entity in ("user", "item")}
    offline = OfflineStoreLocation(run.resources.lake_bucket, batch.offline_store_prefix,
                                   run.config.account or LOCAL_ACCOUNT, run.config.region)
    store = LocalFeatureStore(redis.Redis.from_url(run.redis_url), {g.name: g for g in groups.values()}, offline,
                              batch_size=batch.online_batch_size)
    return store, groups


def ingest_features(run: DailyRun) -> str:
    from recsys.batch.ingest import StoreTarget, ingest_frame
    from recsys.batch.lake import spark_uri

    store, groups = feature_store(run)
    store.create_feature_groups()
    target = StoreTarget("local", tuple(groups.values()), redis_url=run.redis_url, offline=store.offline,
                         batch_size=run.config.batch_features.online_batch_size)
    spark = run.spark_session()
    for entity, group in groups.items():
        table = spark.read.parquet(spark_uri(run.batch.outputs[f"features/{entity}"]))
        run.ingested[group.name] = ingest_frame(table, group, target)
    return "; ".join(f"{count:,} records into {name}" for name, count in run.ingested.items())


def build_training_set(run: DailyRun) -> str:
    from recsys.batch.local_run import publish_outputs
    from recsys.batch.pipeline import run_batch

    training_run = _batch_run(run, "training-set")
    run.training_cutoff = training_run.label_cutoff
    try:
        run.training = run_batch(run.spark_session(), training_run)
    finally:
        run.stop_spark()  # the remaining steps are single-machine Python: give the memory back
    publish_outputs(run.output_dir, run.resources.lake_bucket)
    return (f"{run.training.rows['training']:,} rows at T = {utc_date(training_run.label_cutoff)} "
            f"(labels from the next {run.config.batch_features.label_horizon_days} days) -> "
            f"s3://{run.resources.lake_bucket}/training/")


def choose_labels(training) -> tuple[str, str]:
    """The pCTR and pCVR labels the training set can teach: clicks and purchases when it has them; else
    (ratings-only data such as MovieTweetings) any interaction and engagement."""
    ctr = "label_click" if (training["label_click"] > 0).any() else "label_interaction"
    cvr = "label_purchase" if (training["label_purchase"] > 0).any() else "label_engage"
    return ctr, cvr


@contextlib.contextmanager
def _captured_output(path: Path) -> Iterator[None]:
    """stdout, stderr and root logging into `path` while a job runs in-process; the root logger is restored after
    (the training entrypoint configures logging as its own process would)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    with open(path, "w") as out, contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            yield
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)


def train(run: DailyRun) -> str:
    """The training container's entrypoint on the /opt/ml layout: train = the training set, interactions = the
    staged history; the model lands in state_dir/models/<run id>."""
    import pandas as pd

    _importable_containers()
    from containers.training import train as training_job
    from recsys.ranking.bundle import ModelBundle

    training_dir = Path(run.training.outputs["training"])
    frame = pd.read_parquet(training_dir)
    run.training_labels = choose_labels(frame)
    job = run.run_dir / "training-job"
    hyperparameters = {"cutoff": run.training_cutoff,
                       "ctr_label": run.training_labels[0], "cvr_label": run.training_labels[1],
                       **run.settings.hyperparameters}
    config = job / "input/config/hyperparameters.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps({k: v if isinstance(v, str) else json.dumps(v) for k, v in hyperparameters.items()}))
    run.model_dir = run.state_dir / "models" / run.run_id
    log = job / "output" / "train.log"  # what CloudWatch Logs keeps of a SageMaker training job
    log.parent.mkdir(parents=True, exist_ok=True)
    with _captured_output(log):
        code = training_job.main(["train", "--train", str(training_dir), "--validation", str(job / "no-validation"),
                                  "--interactions", str(run.lake_dir), "--model-dir", str(run.model_dir),
                                  "--hyperparameters", str(config), "--output-dir", str(job / "output")])
    if code != 0:
        raise RuntimeError(f"training job failed: {(job / 'output/failure').read_text().strip()}")
    bundle = ModelBundle.load(run.model_dir, with_candidates=False)
    run.model_version = bundle.version
    _save_drift_baseline(frame, bundle.schema, run.drift_baseline_path)
    held_out = bundle.metrics["validation"][bundle.default_ranker]["pctr"]
    return (f"{bundle.version}: {len(frame):,} rows, labels {run.training_labels[0]} / {run.training_labels[1]}; "
            f"held-out pCTR AUC {held_out['auc']:.3f}, ECE {held_out['ece']:.3f}; log {log}")


def _save_drift_baseline(frame, schema, path: Path, max_rows: int = 20_000) -> None:
    """The drift baseline of the batch features the ranker was trained on (the monitoring drift job's input)."""
    from recsys.monitoring.drift import build_baseline

    columns = [name for name in (*schema.user, *schema.item) if name in frame.columns]
    sample = frame.sample(n=min(max_rows, len(frame)), random_state=0) if len(frame) > max_rows else frame
    rows = {name: sample[name].astype(object).where(sample[name].notna(), None).tolist() for name in columns}
    if rows:
        build_baseline(rows).save(str(path))


def evaluate_model(run: DailyRun) -> str:
    from recsys.evaluation.pipeline import evaluate
    from recsys.evaluation.report import write_report

    run.report = evaluate(run.lake_dir, config=run.settings.eval_config)
    run.report_paths = write_report(run.report, run.evaluation_dir)
    k = f"@{run.config.pipeline.quality_gate.k}"
    ranking = run.report["ranking"]
    return (f"NDCG{k}: pipeline {ranking['pipeline'][k]['ndcg']:.4f}, popularity {ranking['popularity'][k]['ndcg']:.4f}"
            f", EASE {ranking['ease'][k]['ndcg']:.4f}; report {run.report_paths['html']}")


def pipeline_state_dir(state_file: Path, stage: str) -> Path:
    """Where a stage's local pipeline keeps its runs and deployment, beside the local platform's state file."""
    return state_file.parent / "pipeline" / stage


def load_deployment(state_dir: Path) -> list[Variant]:
    """The deployed variants recorded by the last Deploy (an empty list before the first one)."""
    path = state_dir / DEPLOYMENT_FILE
    if not path.exists():
        return []
    return [Variant(**record) for record in json.loads(path.read_text())["variants"]]


def deployed_champion(state_dir: Path) -> Variant | None:
    """The champion of the last deployment, if its model is still on disk."""
    for variant in load_deployment(state_dir):
        if variant.name == CHAMPION_VARIANT and (Path(variant.model_dir) / "bundle.json").exists():
            return variant
    return None


def quality_gate(run: DailyRun) -> str:
    gate = run.config.pipeline.quality_gate
    candidate = GateMetrics.from_report(run.report, gate)
    champion = deployed_champion(run.state_dir)
    run.decision = decide(candidate, GateMetrics(**champion.gate) if champion and champion.gate else None, gate)
    (run.run_dir / "gate.json").write_text(json.dumps(run.decision.to_dict(), indent=2))
    against = f" against champion {champion.version}" if champion else " (no champion deployed yet)"
    return ("PASSED" if run.decision.passed else "REJECTED") + against + ": " + "; ".join(run.decision.reasons)


def _artifact_prefix(run: DailyRun) -> str:
    return f"models/ranker/{run.model_version}"


def register_model(run: DailyRun) -> str:
    """model.tar.gz (SageMaker's artifact format) and the evaluation in the artifacts bucket; an approved model
    package in the stage's model package group."""
    bucket = run.resources.artifacts_bucket
    s3 = aws.client("s3")
    with tempfile.TemporaryDirectory(prefix="recsys-model-") as scratch:
        archive = Path(scratch) / "model.tar.gz"
        with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
            for path in sorted(run.model_dir.iterdir()):
                tar.add(path, arcname=path.name)
        s3.upload_file(str(archive), bucket, f"{_artifact_prefix(run)}/model.tar.gz")
        size_mb = archive.stat().st_size / 1e6
    s3.upload_file(str(run.report_paths["json"]), bucket, f"{_artifact_prefix(run)}/evaluation/report.json")
    sagemaker = aws.client("sagemaker")
    group = run.config.names.model_package_group
    try:
        sagemaker.describe_model_package_group(ModelPackageGroupName=group)
    except sagemaker.exceptions.ClientError:
        sagemaker.create_model_package_group(ModelPackageGroupName=group,
                                             ModelPackageGroupDescription=f"{run.config.prefix} ranker bundles")
    candidate = run.decision.candidate
    run.model_package_arn = sagemaker.create_model_package(
        ModelPackageGroupName=group,
        ModelPackageDescription=f"{run.model_version} (daily pipeline {run.run_id})",
        InferenceSpecification={
            "Containers": [{"Image": INFERENCE_IMAGE,
                            "ModelDataUrl": f"s3://{bucket}/{_artifact_prefix(run)}/model.tar.gz"}],
            "SupportedContentTypes": ["application/json", "application/x-npy"],
            "SupportedResponseMIMETypes": ["application/json", "application/x-npy"],
        },
        ModelApprovalStatus="Approved",
        CustomerMetadataProperties={"bundle_version": run.model_version, "ndcg": f"{candidate.ndcg:.6f}",
                                    "popularity_ndcg": f"{candidate.popularity_ndcg:.6f}",
                                    "auc": f"{candidate.auc:.6f}", "run_id": run.run_id},
    )["ModelPackageArn"]
    return f"{run.model_package_arn} (model.tar.gz {size_mb:.1f} MB in s3://{bucket}/{_artifact_prefix(run)}/)"


def deploy(run: DailyRun) -> str:
    _importable_containers()
    from containers.inference.server import start_local_server

    weight = run.config.pipeline.challenger_weight
    champion = deployed_champion(run.state_dir)
    gate = asdict(run.decision.candidate)
    new = Variant(CHAMPION_VARIANT, run.model_version, str(run.model_dir), 1.0, gate, run.model_package_arn)
    variants = [new]
    if champion is not None and champion.version != run.model_version:
        champion.weight = round(1.0 - weight, 6)
        new.name, new.weight = CHALLENGER_VARIANT, weight
        variants = [champion, new]
    endpoint = LocalEndpoint(variants)
    run.endpoint = endpoint
    for variant in variants:
        url, stop = start_local_server(variant.model_dir, workers=run.settings.server_workers)
        endpoint.stoppers.append(stop)
        variant.url = url
        served = smoke_test(url, variant.model_dir)
        if served != variant.version:
            raise RuntimeError(f"{variant.name} at {url} serves {served}, expected {variant.version}")
    (run.state_dir / DEPLOYMENT_FILE).write_text(json.dumps({"run_id": run.run_id, "variants": [
        v.record() for v in variants]}, indent=2))
    if run.drift_baseline_path.exists():
        aws.client("s3").upload_file(str(run.drift_baseline_path), run.resources.artifacts_bucket,
                                     run.config.monitoring.jobs.drift_baseline_key)
    _prune_models(run.state_dir, {Path(v.model_dir).name for v in variants} | {run.run_id})
    return "; ".join(f"{v.name} {v.version} ({v.weight:.0%}) on {v.url}" for v in variants)


def smoke_test(url: str, model_dir: str | Path) -> str:
    """Score one all-missing row of the model's schema; returns the model version the server reports."""
    from recsys.ranking.bundle import ModelBundle

    width = len(ModelBundle.load(model_dir, with_candidates=False).schema.names)
    request = urllib.request.Request(f"{url}/invocations", method="POST", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"features": [[None] * width]}).encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["model_version"]


def _prune_models(state_dir: Path, keep: set[str]) -> None:
    """Model folders of versions no variant serves are removed: the registry keeps their artifacts."""
    for path in (state_dir / "models").iterdir():
        if path.is_dir() and path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)


def notify(run: DailyRun) -> str:
    if run.decision.passed:
        served = ", ".join(f"{v.name} {v.version} {v.weight:.0%}" for v in run.endpoint.variants)
        subject = f"{run.config.prefix} daily pipeline: deployed {run.model_version}"
        outcome = f"deployed: {served}"
    else:
        subject = f"{run.config.prefix} daily pipeline: model rejected by the quality gate"
        outcome = "rejected: " + "; ".join(run.decision.reasons)
    message = {"run_id": run.run_id, "cutoff": run.cutoff, "model_version": run.model_version,
               "gate": run.decision.to_dict(), "model_package_arn": run.model_package_arn,
               "steps": {step.value: text for step, text in run.outcomes.items()}}
    run.notification_id = aws.client("sns").publish(TopicArn=run.resources.alarm_topic_arn, Subject=subject[:100],
                                                    Message=json.dumps(message, default=str))["MessageId"]
    return f"{outcome} -> SNS {run.config.names.alarm_topic} (message {run.notification_id})"


STEP_FUNCTIONS: dict[Step, Callable[[DailyRun], str]] = {
    Step.VALIDATE_INPUT: validate_input,
    Step.BATCH_FEATURES: batch_features,
    Step.INGEST_FEATURES: ingest_features,
    Step.BUILD_TRAINING_SET: build_training_set,
    Step.TRAIN: train,
    Step.EVALUATE: evaluate_model,
    Step.QUALITY_GATE: quality_gate,
    Step.REGISTER_MODEL: register_model,
    Step.DEPLOY: deploy,
    Step.NOTIFY: notify,
}
# Steps that only run when the quality gate passed.
GATED_STEPS = frozenset({Step.REGISTER_MODEL, Step.DEPLOY})
assert set(STEP_FUNCTIONS) == set(PIPELINE_STEPS), "every pipeline step needs a local function"


def report_failure(run: DailyRun, step: Step, error: BaseException) -> None:
    """The state machine's Catch: a failure notification on the on-call topic and the PipelineFailures metric."""
    message = {"run_id": run.run_id, "failed_step": step.value, "error": f"{type(error).__name__}: {error}",
               "steps": {s.value: text for s, text in run.outcomes.items()}}
    aws.client("sns").publish(TopicArn=run.resources.alarm_topic_arn,
                              Subject=f"{run.config.prefix} daily pipeline FAILED at {step.value}"[:100],
                              Message=json.dumps(message, default=str))
    aws.client("cloudwatch").put_metric_data(
        Namespace=run.config.names.metrics_namespace,
        MetricData=[{"MetricName": "PipelineFailures", "Value": 1.0, "Unit": "Count"}],
    )


def run_daily_pipeline(run: DailyRun, steps: StepPrinter | None = None) -> DailyRun:
    """Run every step in PIPELINE_STEPS order, printing a line with the timing of each."""
    steps = steps or StepPrinter(total=len(PIPELINE_STEPS))
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.state_dir / "models").mkdir(parents=True, exist_ok=True)
    _prune_runs(run.state_dir, keep=run.run_id)
    for step in PIPELINE_STEPS:
        if step in GATED_STEPS and run.decision is not None and not run.decision.passed:
            run.outcomes[step] = "skipped: the quality gate rejected the model"
            steps.skip(step.value, "the quality gate rejected the model")
            continue
        try:
            with steps.step(step.value):
                run.outcomes[step] = STEP_FUNCTIONS[step](run)
                steps.info(run.outcomes[step])
            run.seconds[step] = steps.timings[step.value]
        except Exception as exc:
            try:
                report_failure(run, step, exc)
            finally:
                run.stop_spark()
            raise PipelineFailed(step, exc) from exc
    return run


def _prune_runs(state_dir: Path, keep: str) -> None:
    """Only the newest run's working folder (staged lake, job outputs) is kept."""
    runs = state_dir / "runs"
    for path in runs.iterdir() if runs.exists() else ():
        if path.is_dir() and path.name != keep:
            shutil.rmtree(path, ignore_errors=True)


# --- using the deployment ------------------------------------------------------------------------------------------


@dataclass
class ScoredCandidates:
    user_id: str
    variant: str
    model_version: str
    item_ids: list[str]
    channels: list[str]
    pctr: list[float]
    pcvr: list[float]
    score: list[float]

    def top(self, n: int) -> list[tuple[str, str, float, float, float]]:
        """(item, channel, score, pCTR, pCVR) of the n best scores."""
        order = sorted(range(len(self.item_ids)), key=lambda i: -self.score[i])[:n]
        return [(self.item_ids[i], self.channels[i], self.score[i], self.pctr[i], self.pcvr[i]) for i in order]


class CandidateScorer:
    """What the recommend API does before its business rules: the user's history from the PIT features, the
    candidate pool of the bundle's channels, batch features from the Feature Store, rows by the shared assembly
    function, scores from a variant's inference server. Scored rows are logged as JSON lines (the endpoint's data
    capture, the drift job's input)."""

    def __init__(self, run: DailyRun, variant: Variant, served_rows: Path | None = None) -> None:
        from recsys.features import FeatureReader
        from recsys.ranking.bundle import ModelBundle
        from recsys.store import redis_from_env

        self.variant = variant
        self.bundle = ModelBundle.load(variant.model_dir)
        self.reader = FeatureReader(redis_from_env(), run.config.pit_features)
        self.store, self.groups = feature_store(run)
        self.served_rows = served_rows
        logged = run.drift_baseline_path
        self.logged_features = (list(json.loads(logged.read_text())["features"]) if logged.exists() else [])

    def score(self, user_id: str, now: float | None = None, max_candidates: int = 500) -> ScoredCandidates:
        import numpy as np

        from recsys.ranking.features import assemble_request, request_from_pit

        now = time.time() if now is None else now
        models, schema = self.bundle.candidates, self.bundle.schema
        pit_user = self.reader.read(user_id, [], now).user
        request = request_from_pit(user_id, pit_user, now, exclude=frozenset(
            e["item_id"] for e in pit_user.get("user_recent_items") or ()))
        pool = models.pool(models.query(request))
        item_ids = models.catalog.item_ids[pool.items][:max_candidates].tolist()
        if not item_ids:
            raise ValueError(f"user {user_id}: no candidates")
        snapshot = self.reader.read(user_id, item_ids, now)
        user = self.store.get_record(self.groups["user"].name, user_id) or {}
        items = self.store.batch_get(self.groups["item"].name, item_ids)
        matrix, _ = assemble_request(models, schema, request, item_ids, user=user, items=items,
                                     pit_user=snapshot.user, pit_items=snapshot.items)
        rows = np.where(np.isnan(matrix), None, matrix.astype(object)).tolist()
        body = json.dumps({"features": rows, "schema_id": schema.id}).encode()
        http = urllib.request.Request(f"{self.variant.url}/invocations", data=body, method="POST",
                                      headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(http, timeout=10) as response:
            answer = json.loads(response.read())
        scored = ScoredCandidates(user_id, self.variant.name, answer["model_version"], item_ids,
                                  pool.channels[: len(item_ids)], answer["pctr"], answer["pcvr"], answer["score"])
        if self.served_rows is not None and self.logged_features:
            self._log(scored, user, items, now)
        return scored

    def _log(self, scored: ScoredCandidates, user: Mapping[str, Any], items: Mapping[str, Mapping[str, Any]],
             now: float) -> None:
        self.served_rows.parent.mkdir(parents=True, exist_ok=True)
        with open(self.served_rows, "a") as out:
            for i, item_id in enumerate(scored.item_ids):
                row = {**user, **items.get(item_id, {})}
                features = {name: row.get(name) for name in self.logged_features}
                out.write(json.dumps({"timestamp": now, "features": features, "prediction": scored.pctr[i],
                                      "variant": scored.variant}, default=str) + "\n")
