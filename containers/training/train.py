"""The SageMaker training job of the model bundle: candidate models + LTR and Random-Forest rankers.

SageMaker runs `docker run <image> train` with (see "Use your own training algorithms" in the SageMaker guide):

    /opt/ml/input/config/hyperparameters.json   every value a string (JSON values are parsed)
    /opt/ml/input/data/train/                   Parquet training set (recsys.batch.training_set: user_id, item_id,
                                                label_click, label_play, label_purchase, row_source, feature columns)
    /opt/ml/input/data/validation/              the same for validation (optional: else 20% of train's users)
    /opt/ml/input/data/interactions/            Personalize CSVs or a lake copy (recsys.evaluation.data): the
                                                history the candidate models learn from and the users' histories
    /opt/ml/model/                              the bundle (recsys.ranking.bundle); SageMaker tars it to model.tar.gz
    /opt/ml/output/failure                      why the job failed

Paths: arguments (--train, --validation, --interactions, --model-dir, --hyperparameters, --output-dir), else the
SM_CHANNEL_TRAIN / SM_CHANNEL_VALIDATION / SM_CHANNEL_INTERACTIONS / SM_MODEL_DIR environment, else the defaults.

Hyperparameters (all optional but cutoff):
    cutoff          the training set's cutoff T: unix seconds or an ISO date/time (UTC)
    serve_cutoff    refit the candidate models for serving on history before this time; "latest" (default):
                    all the history; "none": serve the models fitted at T
    ctr_label       label of the pCTR head (default label_click); label_interaction = row_source "interaction"
    cvr_label       label of the pCVR head (default label_purchase)
    rankers         JSON {name: RankerConfig fields}, replacing the default {"ltr": ..., "rf": ...}
    default_ranker  the ranker the endpoint serves by default (default ltr)
    candidates      JSON {channel: {param: value}} overriding the candidate models' parameters
    candidate_negatives_per_user
                    for users with no logged impressions, this many negatives drawn from their candidate pool at
                    the cutoff are added to train and validation (recsys.ranking.training.add_candidate_negatives;
                    default 20, 0 = off): the ranker then learns to order what the channels really propose
Validation users are split 70/30: the 70% calibrate the heads (and stop the boosting early), the 30% give the
metrics, printed as `validation:<ranker>:<head>:<metric>=<value>` lines for SageMaker's metric definitions and
kept in bundle.json ("metrics") for the pipeline's quality gate.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

PREFIX = Path("/opt/ml")
log = logging.getLogger("train")


class TrainingInputError(ValueError):
    """Bad channel data or hyperparameter; the message names it."""


def parse_time(text: str, name: str) -> float:
    from recsys.batch.window import parse_cutoff

    try:
        return parse_cutoff(text)
    except ValueError:
        raise TrainingInputError(f"{name}: {text!r} is neither unix seconds nor an ISO date") from None


def load_hyperparameters(path: Path) -> dict[str, Any]:
    """SageMaker writes every value as a string; decode the JSON ones (objects, numbers, booleans)."""
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text())
    decoded = {}
    for key, value in raw.items():
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        decoded[key] = value
    return decoded


def read_parquet(directory: Path, name: str):
    import pandas as pd

    if not directory.exists():
        raise TrainingInputError(f"{name}: channel folder {directory} does not exist")
    try:
        return pd.read_parquet(directory)
    except (OSError, ValueError) as exc:
        raise TrainingInputError(f"{name}: cannot read Parquet from {directory}: {exc}") from None


def add_derived_labels(frame) -> None:
    """label_interaction: the row comes from an interaction in the horizon (any event type, ratings included)."""
    if "label_interaction" not in frame.columns and "row_source" in frame.columns:
        frame["label_interaction"] = (frame["row_source"] == "interaction").astype(int)


def split_by_user(frame, share: float = 0.2, seed: int = 0):
    import numpy as np

    users = np.sort(frame["user_id"].astype(str).unique())
    chosen = set(np.random.default_rng(seed).permutation(users)[: max(1, int(len(users) * share))].tolist())
    mask = frame["user_id"].astype(str).isin(chosen)
    return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)


def build_config(hp: dict[str, Any]):
    from recsys.models.bundle import CandidateConfig
    from recsys.ranking.ranker import RankerConfig
    from recsys.ranking.training import TrainingConfig, default_rankers

    ctr_label = str(hp.get("ctr_label", "label_click"))
    cvr_label = str(hp.get("cvr_label", "label_purchase"))
    rankers = default_rankers(ctr_label, cvr_label)
    if "rankers" in hp:
        if not isinstance(hp["rankers"], dict) or not hp["rankers"]:
            raise TrainingInputError("rankers: expected a JSON object {name: config}")
        rankers = {name: RankerConfig.from_dict({"ctr_label": ctr_label, "cvr_label": cvr_label, **config})
                   for name, config in hp["rankers"].items()}
    candidates = CandidateConfig()
    if "candidates" in hp:
        candidates = candidates.with_params(hp["candidates"])
    default_ranker = str(hp.get("default_ranker", "ltr" if "ltr" in rankers else next(iter(rankers))))
    if default_ranker not in rankers:
        raise TrainingInputError(f"default_ranker: {default_ranker!r} is not one of {', '.join(rankers)}")
    return TrainingConfig(candidates=candidates, rankers=rankers, default_ranker=default_ranker)


def validation_metrics(bundle, models, validation, cutoff: float, interactions) -> dict[str, Any]:
    from recsys.evaluation.metrics import classification_report
    from recsys.ranking.features import assemble_frame, user_requests

    x = assemble_frame(models, bundle.schema, validation, user_requests(models, interactions, cutoff), cutoff)
    metrics: dict[str, Any] = {}
    for name, ranker in bundle.rankers.items():
        out = ranker.predict(x, threads=0)
        ctr = validation[ranker.config.ctr_label].to_numpy()
        cvr = validation[ranker.config.cvr_label].to_numpy()
        clicked = ctr > 0
        metrics[name] = {}
        for head, labels, probabilities in (("pctr", ctr, out.pctr), ("pcvr", cvr[clicked], out.pcvr[clicked])):
            report = classification_report(labels, probabilities)
            report.pop("reliability")
            metrics[name][head] = report
            for metric in ("auc", "pr_auc", "log_loss", "ece"):
                if report[metric] is not None:
                    print(f"validation:{name}:{head}:{metric}={report[metric]:.6f}", flush=True)
    return metrics


def run(args: argparse.Namespace) -> Path:
    import numpy as np

    from recsys.evaluation.data import load_dataset
    from recsys.models.bundle import CandidateModels
    from recsys.models.data import Catalog, Interactions
    from recsys.ranking.features import user_requests
    from recsys.ranking.training import add_candidate_negatives, train_bundle

    started = time.perf_counter()
    hp = load_hyperparameters(Path(args.hyperparameters))
    if "cutoff" not in hp:
        raise TrainingInputError("cutoff: required hyperparameter (the training set's cutoff, unix seconds or ISO)")
    cutoff = parse_time(str(hp["cutoff"]), "cutoff")
    config = build_config(hp)
    interactions_dir = Path(args.interactions)
    if not interactions_dir.is_dir():
        raise TrainingInputError(f"interactions: channel folder {interactions_dir} does not exist")
    frames = load_dataset(interactions_dir)
    catalog = Catalog.from_frame(frames.items, frames.interactions["ITEM_ID"].astype(str))
    interactions = Interactions.from_frame(frames.interactions, catalog)
    train = read_parquet(Path(args.train), "train")
    validation = read_parquet(Path(args.validation), "validation") if Path(args.validation).exists() else None
    if validation is None:
        train, validation = split_by_user(train)
    models = CandidateModels.fit(catalog, interactions, cutoff, config.candidates)
    per_user = int(hp.get("candidate_negatives_per_user", 20))
    if per_user > 0:
        requests = user_requests(models, interactions, cutoff)
        train = add_candidate_negatives(train, models, requests, per_user, seed=0)
        validation = add_candidate_negatives(validation, models, requests, per_user, seed=1)
    for name, frame in (("train", train), ("validation", validation)):
        add_derived_labels(frame)
        for column in ("user_id", "item_id"):
            if column not in frame.columns:
                raise TrainingInputError(f"{name}: column {column} is missing")
        for ranker in config.rankers.values():
            for label in (ranker.ctr_label, ranker.cvr_label):
                if label not in frame.columns:
                    raise TrainingInputError(f"{name}: label column {label} is missing")
    serve = str(hp.get("serve_cutoff", "latest")).lower()
    serve_cutoff = None if serve == "none" else (float(np.max(interactions.timestamp)) + 1.0 if serve == "latest"
                                                 else parse_time(serve, "serve_cutoff"))
    # Calibration and early stopping use most validation users; the metrics are reported on the rest, which no
    # part of training has seen (metrics on the calibration rows would show a perfect calibration).
    calibration, held_out = split_by_user(validation, share=0.3)
    bundle = train_bundle(catalog, interactions, cutoff, train, calibration, config, models=models,
                          serve_cutoff=serve_cutoff)
    bundle.metrics = {"validation": validation_metrics(bundle, models, held_out, cutoff, interactions),
                      "train_seconds": round(time.perf_counter() - started, 1), "cutoff": cutoff,
                      "serve_cutoff": serve_cutoff, "train_rows": int(len(train)),
                      "calibration_rows": int(len(calibration)), "held_out_rows": int(len(held_out))}
    path = bundle.save(Path(args.model_dir))
    print(f"model: {bundle.version} in {args.model_dir} ({bundle.metrics['train_seconds']}s)", flush=True)
    return path


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", nargs="?", default="train", choices=["train"], help="SageMaker passes 'train'")
    parser.add_argument("--train", default=env.get("SM_CHANNEL_TRAIN", str(PREFIX / "input/data/train")))
    parser.add_argument("--validation", default=env.get("SM_CHANNEL_VALIDATION", str(PREFIX / "input/data/validation")))
    parser.add_argument("--interactions",
                        default=env.get("SM_CHANNEL_INTERACTIONS", str(PREFIX / "input/data/interactions")))
    parser.add_argument("--model-dir", default=env.get("SM_MODEL_DIR", str(PREFIX / "model")))
    parser.add_argument("--hyperparameters", default=str(PREFIX / "input/config/hyperparameters.json"))
    parser.add_argument("--output-dir", default=env.get("SM_OUTPUT_DIR", str(PREFIX / "output")))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run(args)
        return 0
    except Exception as exc:  # noqa: BLE001 - every failure is reported to SageMaker, then the job fails
        from recsys.models.data import DataError
        from recsys.ranking.ranker import RankerError

        expected = isinstance(exc, (TrainingInputError, DataError, RankerError))
        message = str(exc) if expected else f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
        try:
            Path(args.output_dir).mkdir(parents=True, exist_ok=True)
            (Path(args.output_dir) / "failure").write_text(message)
        except OSError:
            pass
        print(f"training failed: {message}", file=sys.stderr, flush=True)
        return 2 if expected else 1


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo root, for local runs
    sys.exit(main())
