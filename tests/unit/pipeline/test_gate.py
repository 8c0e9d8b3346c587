import pytest
from hypothesis import given
from hypothesis import strategies as st

from recsys.config import PipelineConfig, QualityGateConfig
from recsys.pipeline.gate import GateInputError, GateMetrics, decide
from recsys.pipeline.steps import PIPELINE_STEPS, Step

CONFIG = QualityGateConfig(k=10, min_ndcg=0.02, min_auc=0.55, min_lift_over_popularity=0.1, max_drop_vs_champion=0.05)


def report(ndcg=0.1, popularity=0.05, auc=0.8):
    return {"ranking": {"pipeline": {"@10": {"ndcg": ndcg}}, "popularity": {"@10": {"ndcg": popularity}}},
            "classification": {"pctr": {"auc": auc}}}


def test_metrics_come_from_the_evaluation_report():
    assert GateMetrics.from_report(report(0.12, 0.04, 0.7), CONFIG) == GateMetrics(0.12, 0.04, 0.7)


def test_a_missing_or_non_numeric_figure_is_named():
    bad = report()
    del bad["ranking"]["popularity"]
    with pytest.raises(GateInputError, match="missing ranking.popularity.@10.ndcg"):
        GateMetrics.from_report(bad, CONFIG)
    with pytest.raises(GateInputError, match=r"classification.pctr.auc is 'x'"):
        GateMetrics.from_report(report(auc="x"), CONFIG)
    with pytest.raises(GateInputError, match="is nan"):
        GateMetrics.from_report(report(ndcg=float("nan")), CONFIG)


def test_a_good_model_passes_with_its_figures_quoted():
    decision = decide(GateMetrics(0.1, 0.05, 0.8), None, CONFIG)
    assert decision.passed and decision.reasons == ("NDCG@10 0.1000, lift over popularity +100.0%",)


def test_every_failed_condition_is_listed():
    decision = decide(GateMetrics(0.01, 0.01, 0.5), GateMetrics(0.2, 0.05, 0.8), CONFIG)
    assert not decision.passed
    assert decision.reasons == (
        "NDCG@10 0.0100 < minimum 0.0200",
        "pCTR AUC 0.5000 < minimum 0.5500",
        "NDCG@10 lift over popularity +0.0% < required +10.0%",
        "NDCG@10 95.0% below the champion's 0.2000 (allowed 5.0%)",
    )
    assert decision.to_dict()["champion"] == {"ndcg": 0.2, "popularity_ndcg": 0.05, "auc": 0.8}


@given(champion=st.floats(0.03, 1.0), ratio=st.floats(0.5, 1.5))
def test_the_champion_rule_is_exactly_the_allowed_drop(champion, ratio):
    candidate = GateMetrics(champion * ratio, 0.001, 0.9)
    decision = decide(candidate, GateMetrics(champion, 0.001, 0.9), CONFIG)
    assert decision.passed == (1.0 - candidate.ndcg / champion <= CONFIG.max_drop_vs_champion)


def test_config_refuses_impossible_values():
    with pytest.raises(ValueError, match="challenger_weight"):
        PipelineConfig(challenger_weight=1.0)
    with pytest.raises(ValueError, match="max_drop_vs_champion"):
        QualityGateConfig(max_drop_vs_champion=1.0)


def test_steps_run_in_the_documented_order():
    assert [s.value for s in PIPELINE_STEPS] == [
        "ValidateInput", "BatchFeatures", "IngestFeatures", "BuildTrainingSet", "Train", "Evaluate",
        "QualityGate", "RegisterModel", "Deploy", "Notify"]
    assert Step.DEPLOY in PIPELINE_STEPS
