"""The SageMaker training entrypoint, run locally on the /opt/ml layout in a temporary folder."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from containers.training.train import main, parse_time
from recsys.ranking.bundle import ModelBundle


@pytest.fixture(scope="module")
def channels(tmp_path_factory):
    """A training-set-shaped Parquet split (as recsys.batch.training_set writes it) and the interactions channel."""
    from recsys.datasets.synthetic import write_training_channels

    root = tmp_path_factory.mktemp("opt-ml")
    return root, write_training_channels(root, n_users=150, n_items=80, n_events=6_000, seed=4)


def _args(root, hyperparameters: dict) -> list[str]:
    config = root / "input/config"
    config.mkdir(parents=True, exist_ok=True)
    # SageMaker passes every hyperparameter as a string.
    (config / "hyperparameters.json").write_text(json.dumps({k: str(v) if not isinstance(v, (dict, list)) else
                                                             json.dumps(v) for k, v in hyperparameters.items()}))
    return ["train", "--train", str(root / "input/data/train"), "--validation", str(root / "input/data/validation"),
            "--interactions", str(root / "input/data/interactions"), "--model-dir", str(root / "model"),
            "--hyperparameters", str(config / "hyperparameters.json"), "--output-dir", str(root / "output")]


def test_the_job_writes_a_loadable_bundle_with_validation_metrics(channels, capsys):
    root, cutoff = channels
    shutil.rmtree(root / "model", ignore_errors=True)
    hyperparameters = {"cutoff": cutoff, "ctr_label": "label_interaction", "cvr_label": "label_click",
                       "rankers": {"ltr": {"num_boost_round": 30}, "rf": {"family": "random_forest",
                                                                          "features": ["m_popularity", "m_recent"],
                                                                          "forest": {"n_estimators": 10}}},
                       "candidates": {"ease": {"l2": 20.0}}}
    assert main(_args(root, hyperparameters)) == 0
    bundle = ModelBundle.load(root / "model")
    assert set(bundle.rankers) == {"ltr", "rf"} and bundle.default_ranker == "ltr"
    assert bundle.schema.user == ("user_click_count_7d",) and bundle.schema.item == ("item_click_count",)
    assert bundle.candidates["ease"].info.params["l2"] == 20.0
    assert bundle.candidates["popularity"].info.cutoff > cutoff  # refitted on all history for serving
    assert bundle.metrics["validation"]["ltr"]["pctr"]["auc"] > 0.5
    assert "validation:ltr:pctr:auc=" in capsys.readouterr().out


def test_a_missing_cutoff_fails_with_the_reason_in_the_failure_file(channels):
    root, _ = channels
    assert main(_args(root, {})) == 2
    assert "cutoff: required hyperparameter" in (root / "output/failure").read_text()


def test_a_missing_label_column_is_named(channels):
    root, cutoff = channels
    assert main(_args(root, {"cutoff": cutoff, "cvr_label": "label_refund"})) == 2
    assert "label column label_refund is missing" in (root / "output/failure").read_text()


def test_cutoffs_parse_as_unix_seconds_or_iso_dates():
    assert parse_time("1700000000", "cutoff") == 1_700_000_000.0
    assert parse_time("2025-01-01", "cutoff") == 1_735_689_600.0
    assert parse_time("2025-01-01T00:00:00Z", "cutoff") == 1_735_689_600.0
    with pytest.raises(ValueError, match="cutoff: 'soon'"):
        parse_time("soon", "cutoff")


def test_candidate_negatives_come_from_the_pool_with_copied_features(channels):
    from recsys.evaluation.data import load_dataset
    from recsys.models.bundle import CandidateModels
    from recsys.models.data import Catalog, Interactions
    from recsys.ranking.features import user_requests
    from recsys.ranking.training import CANDIDATE_SOURCE, add_candidate_negatives

    root, cutoff = channels
    frames = load_dataset(root / "input/data/interactions")
    catalog = Catalog.from_frame(frames.items, frames.interactions["ITEM_ID"].astype(str))
    interactions = Interactions.from_frame(frames.interactions, catalog)
    models = CandidateModels.fit(catalog, interactions, cutoff)
    requests = user_requests(models, interactions, cutoff)
    train = pd.read_parquet(root / "input/data/train")
    train.loc[train["user_id"] == train["user_id"].iloc[0], "row_source"] = "impression"  # logged negatives
    logged_user = train["user_id"].iloc[0]

    grown = add_candidate_negatives(train, models, requests, per_user=5, seed=0)
    added = grown[grown["row_source"] == CANDIDATE_SOURCE]
    assert len(added) > 0 and list(grown.columns) == list(train.columns)
    assert logged_user not in set(added["user_id"])  # users with logged impressions keep only those
    assert (added[["label_click", "label_play", "label_purchase"]] == 0).all().all()
    assert added.groupby("user_id").size().max() <= 5
    assert not added.duplicated(["user_id", "item_id"]).any()
    assert added.merge(train, on=["user_id", "item_id"]).empty  # never a pair the set already has
    for row in added.head(20).itertuples():
        history = set(requests[row.user_id].history) if row.user_id in requests else set()
        assert row.item_id not in history
        # Item features are the item's own, copied from the set's rows of that item.
        assert row.item_click_count == train.loc[train["item_id"] == row.item_id, "item_click_count"].iloc[0]
    assert add_candidate_negatives(train, models, requests, per_user=0) is train
    again = add_candidate_negatives(train, models, requests, per_user=5, seed=0)
    assert again.equals(grown)  # seeded: reruns give the same rows
