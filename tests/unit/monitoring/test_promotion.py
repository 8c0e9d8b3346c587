"""The promotion decision rule and the weight arithmetic."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.config import ABTestConfig, PromotionConfig
from recsys.monitoring.abtest import Exposure, Outcome, analyze
from recsys.monitoring.promotion import MIN_WEIGHT_SHARE, Decision, apply_promotion, decide_promotion, stepped_weights

T0 = 1_714_560_000.0
ENABLED = PromotionConfig(enabled=True, step=0.25, min_users_per_variant=1000)


def experiment(ctr_control, ctr_b, users=1500, seed=5, weights=None):
    rng = np.random.default_rng(seed)
    exposures, outcomes = [], []
    for variant, ctr in (("champion", ctr_control), ("B", ctr_b)):
        for u in range(users):
            for j in range(2):
                rid = f"{variant}-{u}-{j}"
                exposures.append(Exposure(rid, variant, f"{variant}-{u}", T0, latency_ms=30.0))
                if rng.random() < ctr:
                    outcomes.append(Outcome("click", T0 + 1, rid))
    return analyze(exposures, outcomes, weights or {"champion": 50, "B": 50}, ABTestConfig(min_users_per_variant=100))


@pytest.fixture(scope="module")
def b_wins():
    report = experiment(0.10, 0.16)
    assert report.comparison("B", "ctr").significant
    return report


def test_significant_winner_gets_a_step_of_the_traffic(b_wins):
    decision = decide_promotion(b_wins, ENABLED)
    assert decision.act and decision.winner == "B"
    assert decision.old_weights == {"champion": 50.0, "B": 50.0}
    assert decision.new_weights == {"champion": 37.5, "B": 62.5}
    assert decision.reason.startswith("B beats champion on ctr: difference +")
    assert decision.report["always_valid_p"]["B"] == b_wins.comparison("B", "ctr").always_valid_p


def test_no_action_when_disabled(b_wins):
    decision = decide_promotion(b_wins, replace(ENABLED, enabled=False))
    assert not decision.act and "disabled" in decision.reason and decision.new_weights == decision.old_weights


def test_no_action_on_sample_ratio_mismatch(b_wins):
    broken = replace(b_wins, srm=replace(b_wins.srm, mismatch=True, p_value=1e-9))
    decision = decide_promotion(broken, ENABLED)
    assert not decision.act and decision.reason.startswith("sample-ratio mismatch")


def test_no_action_on_guardrail_breach(b_wins):
    slow = replace(b_wins.variant("B"), guardrail_breaches=["p99 latency 900 ms > 200 ms"])
    report = replace(b_wins, variants=[v if v.variant != "B" else slow for v in b_wins.variants])
    decision = decide_promotion(report, ENABLED)
    assert not decision.act and decision.reason == "guardrail breached: B: p99 latency 900 ms > 200 ms"


def test_no_action_below_minimum_samples(b_wins):
    decision = decide_promotion(b_wins, replace(ENABLED, min_users_per_variant=5000))
    assert not decision.act and decision.reason == "below 5000 users per variant: B (1500), champion (1500)"


def test_no_action_without_a_significant_difference():
    decision = decide_promotion(experiment(0.10, 0.10, seed=8), ENABLED)
    assert not decision.act and decision.reason.startswith("no significant difference in ctr")


def test_a_worse_challenger_rolls_traffic_back_to_the_control():
    decision = decide_promotion(experiment(0.16, 0.10), ENABLED)
    assert decision.act and decision.winner == "champion"
    assert decision.new_weights == {"champion": 62.5, "B": 37.5}


def test_no_action_when_all_traffic_is_already_on_the_winner():
    report = experiment(0.10, 0.16, weights={"champion": 0, "B": 1})
    decision = decide_promotion(report, ENABLED)
    assert not decision.act
    # All traffic on B, yet both variants have users: this split also fails the SRM check first.
    assert decision.reason.startswith("sample-ratio mismatch")
    clean = replace(report, srm=replace(report.srm, mismatch=False))
    assert decide_promotion(clean, ENABLED).reason.endswith("all traffic is already on B")


def test_small_leftover_weights_go_to_the_winner():
    assert stepped_weights({"A": 0.5, "B": 99.5}, "B", 0.25) == {"A": 0.0, "B": 100.0}
    assert stepped_weights({"A": 1, "B": 1}, "A", 1.0) == {"A": 2.0, "B": 0.0}


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from("ABCDE"), st.floats(0, 1000), min_size=2).filter(lambda w: sum(w.values()) > 0),
       st.data(), st.floats(0.01, 1.0))
def test_stepped_weights_keep_the_total_and_move_toward_the_winner(weights, data, step):
    winner = data.draw(st.sampled_from(sorted(weights)))
    new = stepped_weights(weights, winner, step)
    total = sum(weights.values())
    assert sum(new.values()) == pytest.approx(total, rel=1e-9, abs=1e-9)
    assert new[winner] >= weights[winner] - 1e-9
    for name, weight in new.items():
        if name != winner:
            assert 0.0 <= weight <= weights[name]
            assert weight == 0.0 or weight >= MIN_WEIGHT_SHARE * total


def test_apply_refuses_a_decision_that_does_not_promote():
    hold = Decision(False, "promotion is disabled", None, {"A": 1}, {"A": 1})
    with pytest.raises(ValueError, match="decision does not promote: promotion is disabled"):
        apply_promotion(hold, "endpoint", {"A": "A"}, sagemaker_client=None, log_uri="/unused")


def test_apply_needs_a_production_variant_for_every_weight():
    decision = Decision(True, "B wins", "B", {"A": 1, "B": 1}, {"A": 0.5, "B": 1.5})
    with pytest.raises(ValueError, match=r"variant_names: no production variant for \['B'\]"):
        apply_promotion(decision, "endpoint", {"A": "variant-a"}, sagemaker_client=None, log_uri="/unused")
