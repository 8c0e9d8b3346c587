"""Two-headed rankers: calibration, objective, persistence, and the bundle that carries them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from recsys.evaluation.metrics import expected_calibration_error, roc_auc
from recsys.ranking.bundle import ModelBundle
from recsys.ranking.calibration import Calibrator
from recsys.ranking.features import AMP_FEATURES, FeatureSchema, assemble_frame, user_requests
from recsys.ranking.ranker import Objective, RankerConfig, RankerError, TwoHeadRanker
from recsys.ranking.training import (
    LABEL_INTERACTION,
    LABEL_POSITIVE,
    LabelConfig,
    candidate_rows,
    horizon_labels,
)

SMALL_POOL = {"ease": 30, "affinity": 20, "trending": 10, "popularity": 10}


@pytest.fixture(scope="module")
def rows(synthetic_fitted):
    """Candidate rows at T labelled by [T, end): training / validation / held-out users."""
    fitted = synthetic_fitted
    end = float(fitted.interactions.timestamp.max()) + 1
    labelled = horizon_labels(fitted.interactions, fitted.catalog, fitted.cutoff, end,
                              LabelConfig(event_types=("like", "purchase")))
    users = sorted(labelled["user_id"].unique())
    requests = user_requests(fitted.models, fitted.interactions, fitted.cutoff)
    frame = candidate_rows(fitted.models, requests, users, labelled, SMALL_POOL)
    schema = FeatureSchema()
    x = assemble_frame(fitted.models, schema, frame, requests, fitted.cutoff)
    part = frame["user_id"].map({u: i % 3 for i, u in enumerate(users)}).to_numpy()
    labels = {c: frame[c].to_numpy() for c in (LABEL_INTERACTION, LABEL_POSITIVE)}
    return schema, x, labels, part


def _fit(rows, config: RankerConfig) -> TwoHeadRanker:
    schema, x, labels, part = rows
    train, valid = part == 0, part == 1
    return TwoHeadRanker.fit(config, schema.names, x[train], {k: v[train] for k, v in labels.items()},
                             x[valid], {k: v[valid] for k, v in labels.items()})


LTR = RankerConfig(ctr_label=LABEL_INTERACTION, cvr_label=LABEL_POSITIVE, num_boost_round=60)
FOREST = RankerConfig(family="random_forest", features=AMP_FEATURES, ctr_label=LABEL_INTERACTION,
                      cvr_label=LABEL_POSITIVE, forest={"n_estimators": 30, "max_depth": 8, "min_samples_leaf": 10})


@pytest.fixture(scope="module")
def ltr(rows):
    return _fit(rows, LTR)


def test_ltr_heads_rank_held_out_rows_and_are_calibrated(rows, ltr):
    schema, x, labels, part = rows
    held = part == 2
    out = ltr.predict(x[held])
    y = labels[LABEL_INTERACTION][held]
    assert ((0 <= out.pctr) & (out.pctr <= 1)).all() and ((0 <= out.pcvr) & (out.pcvr <= 1)).all()
    assert roc_auc(y, out.pctr) > 0.62  # random: 0.5
    assert expected_calibration_error(y, out.pctr) < 0.03
    assert abs(out.pctr.mean() - y.mean()) < 0.02
    assert ltr.info["heads"] == {"ctr": "lightgbm", "cvr": "lightgbm"}


def test_the_random_forest_uses_only_amps_features(rows):
    forest = _fit(rows, FOREST)
    schema, x, labels, part = rows
    assert [schema.names[c] for c in forest.columns] == list(AMP_FEATURES)
    scrambled = x.copy()
    others = [i for i, n in enumerate(schema.names) if n not in AMP_FEATURES]
    scrambled[:, others] = 12345.0
    assert forest.predict(scrambled[:50]).score == pytest.approx(forest.predict(x[:50]).score)
    held = part == 2
    assert roc_auc(labels[LABEL_INTERACTION][held], forest.predict(x[held]).pctr) > 0.6  # random: 0.5


def test_objectives_combine_the_heads(ltr, rows):
    x = rows[1][:20]
    base = ltr.predict(x)
    power = ltr.with_objective(Objective("power", ctr_exponent=1.0, cvr_exponent=0.5, value=2.0)).predict(x)
    assert power.score == pytest.approx(base.pctr * np.sqrt(base.pcvr * 2.0), rel=1e-4, abs=1e-7)
    linear = ltr.with_objective(Objective("linear", ctr_weight=0.3, cvr_weight=1.0, value=4.0)).predict(x)
    assert linear.score == pytest.approx(0.3 * base.pctr + base.pctr * base.pcvr * 4.0, rel=1e-4, abs=1e-7)
    with pytest.raises(RankerError, match="objective.kind"):
        Objective("sum")


def test_a_label_with_one_class_gives_a_constant_head(rows):
    schema, x, labels, part = rows
    x = x[:2000]
    constant = {LABEL_INTERACTION: labels[LABEL_INTERACTION][:2000], LABEL_POSITIVE: np.zeros(len(x))}
    ranker = TwoHeadRanker.fit(LTR, schema.names, x, constant, x[:0], {k: v[:0] for k, v in constant.items()})
    assert ranker.info["heads"]["cvr"] == "constant"
    assert (ranker.predict(x[:5]).pcvr == 0).all()


def test_ranker_round_trips_and_detects_a_tampered_head(tmp_path, ltr, rows):
    x = rows[1][:30]
    ltr.save(tmp_path)
    loaded = TwoHeadRanker.load(tmp_path)
    assert loaded.version == ltr.version
    assert loaded.predict(x).score == pytest.approx(ltr.predict(x).score)
    (tmp_path / "ctr.lgb.txt").write_text((tmp_path / "ctr.lgb.txt").read_text() + "\n")
    with pytest.raises(RankerError, match="checksum"):
        TwoHeadRanker.load(tmp_path)


def test_bad_input_and_config_are_named(ltr, rows):
    with pytest.raises(RankerError, match=f"expected rows of {ltr.n_features} values"):
        ltr.predict(np.zeros((2, 3), np.float32))
    with pytest.raises(RankerError, match="unknown keys bogus"):
        RankerConfig.from_dict({"bogus": 1})
    with pytest.raises(RankerError, match="family"):
        RankerConfig(family="svm")
    schema, x, labels, _ = rows
    with pytest.raises(RankerError, match="train: label column label_click is missing"):
        TwoHeadRanker.fit(RankerConfig(), schema.names, x, labels, x, labels)
    with pytest.raises(RankerError, match="not in the schema: nope"):
        TwoHeadRanker.fit(RankerConfig(features=("nope",), ctr_label=LABEL_INTERACTION, cvr_label=LABEL_POSITIVE),
                          schema.names, x, labels, x, labels)


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_calibration_repairs_an_overconfident_score(method):
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.01, 0.5, 40_000)
    labels = rng.uniform(size=len(truth)) < truth
    raw = np.sqrt(truth)  # overconfident, same order
    calibrator = Calibrator.fit(raw[:20_000], labels[:20_000], method)
    before = expected_calibration_error(labels[20_000:], raw[20_000:])
    after = expected_calibration_error(labels[20_000:], calibrator.apply(raw[20_000:]))
    assert before > 0.1 and after < 0.02
    assert Calibrator.from_dict(json.loads(json.dumps(calibrator.to_dict()))).apply(raw[:5]) == pytest.approx(
        calibrator.apply(raw[:5]))


def test_bundle_saves_rankers_schema_and_candidates_with_matching_versions(tmp_path, ltr, synthetic_fitted):
    bundle = ModelBundle(FeatureSchema(), {"ltr": ltr}, "ltr", synthetic_fitted.models)
    bundle.save(tmp_path)
    loaded = ModelBundle.load(tmp_path)
    assert loaded.version == bundle.version and loaded.schema.id == bundle.schema.id
    assert loaded.candidates.version == synthetic_fitted.models.version
    light = ModelBundle.load(tmp_path, with_candidates=False)
    assert light.candidates is None and light.ranker().version == ltr.version
    with pytest.raises(RankerError, match="unknown 'rf'"):
        light.ranker("rf")
    with pytest.raises(RankerError, match="another feature schema"):
        ModelBundle(FeatureSchema(user=("extra",)), {"ltr": ltr}, "ltr")
