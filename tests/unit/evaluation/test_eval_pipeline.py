"""`recsys evaluate` end to end on synthetic data with planted preferences, and its inputs."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from recsys.evaluation.cli import add_arguments, config_from_args
from recsys.evaluation.data import load_dataset
from recsys.evaluation.pipeline import EvalConfig, evaluate, resolve_threshold
from recsys.models.data import DataError


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    from recsys.datasets.synthetic import generate

    out = tmp_path_factory.mktemp("synthetic-eval")
    generate(out, n_users=300, n_items=150, n_events=15_000, days=20, seed=5)
    return out


@pytest.fixture(scope="module")
def evaluated(synthetic_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    config = EvalConfig(ease_l2_grid=(10.0, 100.0), negatives_per_user=50)
    report = evaluate(synthetic_dir, out_dir=out, dump_recs=out / "recs.jsonl", save_model=out / "model", config=config)
    return report, out


def test_the_pipeline_beats_popularity_by_a_clear_margin(evaluated):
    report, _ = evaluated
    ndcg = {system: by_k["@10"]["ndcg"] for system, by_k in report["ranking"].items()}
    assert ndcg["pipeline"] >= 1.3 * ndcg["popularity"], ndcg
    assert report["ranking"]["pipeline"]["@10"]["recall"] > report["ranking"]["popularity"]["@10"]["recall"]


def test_probabilities_are_calibrated_on_held_out_users(evaluated):
    report, _ = evaluated
    for head in ("pctr", "score"):
        metrics = report["classification"][head]
        assert metrics["ece"] < 0.02, metrics
        assert metrics["auc"] > 0.65
        assert abs(metrics["mean_probability"] - metrics["positive_rate"]) < 0.01


def test_the_report_has_every_metric_at_every_k_for_every_system(evaluated):
    report, out = evaluated
    systems = {"popularity", "trending", "item_knn", "ease", "pipeline", "pipeline_rf"}
    assert set(report["ranking"]) == systems
    for by_k in report["ranking"].values():
        assert set(by_k) == {"@5", "@10", "@25"}
        for row in by_k.values():
            assert {"precision", "recall", "map", "ndcg", "mrr", "hit_rate", "coverage", "novelty", "new_item_share",
                    "serendipity"} <= set(row)
    saved = json.loads((out / "report.json").read_text())
    assert saved["ranking"] == report["ranking"]
    assert saved["conditions"]["relevance"] == "any interaction"
    html = (out / "report.html").read_text()
    assert "reliability.png" in html and "K = 25" in html
    for png in ("reliability.png", "ndcg_at_k.png", "recall_at_k.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_evaluated_model_is_saved_as_a_servable_bundle(evaluated):
    from recsys.ranking.bundle import ModelBundle

    report, out = evaluated
    bundle = ModelBundle.load(out / "model")
    assert set(bundle.rankers) == {"ltr", "rf"}
    assert bundle.candidates["popularity"].info.cutoff == report["conditions"]["cutoff"]
    assert bundle.metrics["offline_evaluation"]["pipeline@10"] == report["ranking"]["pipeline"]["@10"]


def test_dumped_recommendations_are_each_test_users_top_25_unseen_items(evaluated, synthetic_dir):
    report, out = evaluated
    lines = [json.loads(line) for line in (out / "recs.jsonl").read_text().splitlines()]
    assert len(lines) == report["conditions"]["test_users"]
    frames = load_dataset(synthetic_dir)
    cutoff = report["conditions"]["cutoff"]
    before = frames.interactions[frames.interactions["TIMESTAMP"] < cutoff]
    seen = before.groupby("USER_ID")["ITEM_ID"].apply(set).to_dict()
    for line in lines[:50]:
        assert 0 < len(line["items"]) <= 25 and len(set(line["items"])) == len(line["items"])
        assert not set(line["items"]) & seen[line["user_id"]]


def test_an_explicit_cutoff_is_used_and_checked(synthetic_dir):
    frames = load_dataset(synthetic_dir)
    with pytest.raises(ValueError, match="cutoff: .* is not inside the data's time range"):
        evaluate(frames, cutoff=1.0)


def test_relevance_threshold_is_auto_for_ratings_only():
    import pandas as pd

    ratings = pd.DataFrame({"EVENT_TYPE": ["rating"] * 3, "EVENT_VALUE": [1, 7, 10]})
    clicks = pd.DataFrame({"EVENT_TYPE": ["click", "watch"], "EVENT_VALUE": [None, 300]})
    assert resolve_threshold(ratings, "auto") == 7.0
    assert resolve_threshold(clicks, "auto") is None
    assert resolve_threshold(clicks, 4) == 4.0 and resolve_threshold(ratings, None) is None


def test_cli_arguments_become_the_config():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--dataset", "d", "--positive-threshold", "8", "--positive-event-types", "like,purchase"])
    config = config_from_args(args)
    assert config.positive_threshold == 8.0 and config.positive_event_types == ("like", "purchase")
    bad = parser.parse_args(["--dataset", "d", "--positive-threshold", "high"])
    with pytest.raises(DataError, match="--positive-threshold"):
        config_from_args(bad)


def test_a_movietweetings_folder_is_converted(tmp_path):
    (tmp_path / "ratings.dat").write_text("1::0111161::9::1365000000\n2::0111161::6::1365000100\n")
    (tmp_path / "movies.dat").write_text("0111161::The Shawshank Redemption (1994)::Crime|Drama\n")
    frames = load_dataset(tmp_path)
    assert frames.interactions["ITEM_ID"].tolist() == ["0111161", "0111161"]
    assert frames.items["GENRES"].tolist() == ["Crime|Drama"]
    assert resolve_threshold(frames.interactions, "auto") == 7.0


def test_a_lake_copy_is_read_as_interactions(tmp_path):
    import gzip

    from recsys.events import Event

    day = tmp_path / "events" / "event_date=2025-01-01"
    day.mkdir(parents=True)
    events = [Event("e1", "u1", "click", 1735700000.0, item_id="i1"),
              Event("e2", "u1", "impression", 1735700001.0, impression=("i1", "i2")),
              Event("e3", "u2", "watch", 1735700002.0, item_id="i2", event_value=600.0)]
    with gzip.open(day / "part-0.jsonl.gz", "wt") as out:
        out.write("\n".join(e.to_json() for e in events) + "\n")
    items = tmp_path / "datasets" / "items" / "import_id=2"
    items.mkdir(parents=True)
    (items / "items.csv").write_text("ITEM_ID,GENRES\ni1,comedy\ni2,drama\n")
    frames = load_dataset(tmp_path)
    assert frames.interactions[["USER_ID", "ITEM_ID", "EVENT_TYPE"]].values.tolist() == [
        ["u1", "i1", "click"], ["u2", "i2", "watch"]]
    assert np.isnan(frames.interactions["EVENT_VALUE"].iloc[0]) and frames.items["GENRES"].tolist() == ["comedy",
                                                                                                          "drama"]


def test_a_folder_without_interactions_is_named(tmp_path):
    with pytest.raises(DataError, match="no interactions.csv"):
        load_dataset(tmp_path)
    with pytest.raises(DataError, match="not a folder"):
        load_dataset(tmp_path / "missing")
