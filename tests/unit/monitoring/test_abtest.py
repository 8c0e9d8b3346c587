"""A/B analysis: attribution, per-variant figures, SRM, guardrails, the report and the job on local files."""

import gzip
import json
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest

from recsys.config import ABTestConfig
from recsys.events import Event
from recsys.monitoring.abtest import (
    ABReport,
    Exposure,
    Outcome,
    analyze,
    outcome_from_event,
    run_ab_job,
)
from recsys.monitoring.metrics import InMemoryPublisher
from recsys.monitoring.stats import wilson_interval

T0 = 1_714_560_000.0  # 2024-05-01T10:40:00Z
CONFIG = ABTestConfig(min_users_per_variant=10)


def exposure(rid, variant="champion", user="u1", t=T0, **extra):
    return Exposure(rid, variant, user, t, **extra)


def test_exposure_from_dict_names_the_bad_field():
    good = {"recommendation_id": "r1", "variant": "A", "user_id": "u", "timestamp": T0, "latency_ms": 12.5,
            "degraded": False, "items": ["i1"]}
    assert Exposure.from_dict(good) == Exposure("r1", "A", "u", T0, 12.5, False, ("i1",))
    for field, bad in [("recommendation_id", ""), ("variant", 3), ("timestamp", "now"), ("latency_ms", -1),
                       ("degraded", "no"), ("items", "i1")]:
        with pytest.raises(ValueError, match=f"^{field}:"):
            Exposure.from_dict(good | {field: bad})


def test_outcomes_from_lake_events():
    def event(event_type, value=None):
        return Event("e1", "u1", event_type, T0, item_id="i1", event_value=value, recommendation_id="r1")

    assert outcome_from_event(event("click"), 300).type == "click"
    assert outcome_from_event(event("purchase"), 300).type == "purchase"
    assert outcome_from_event(event("listen", 301.0), 300).type == "play"
    assert outcome_from_event(event("watch", 299.0), 300) is None  # too short to be a qualified play
    assert outcome_from_event(event("view"), 300) is None
    with pytest.raises(ValueError, match="^type:"):
        Outcome("like", T0, "r1")


def test_attribution_by_recommendation_id_and_by_user_and_item():
    exposures = [
        exposure("r1", user="u1", t=T0, items=("a", "b")),
        exposure("r2", user="u1", t=T0 + 100, items=("c",)),
        exposure("r3", user="u2", t=T0),
        exposure("r1", user="u1", t=T0),  # the same exposure logged twice counts once
    ]
    outcomes = [
        Outcome("click", T0 + 5, "r1", event_id="e1"),
        Outcome("click", T0 + 5, "r1", event_id="e1"),  # a redelivered event counts once
        Outcome("play", T0 + 200, None, "u1", "a", "e2"),  # u1 saw item a in r1, not in the later r2
        Outcome("play", T0 + 200, None, "u1", "a", "e3"),
        Outcome("purchase", T0 + 200, None, "u1", "c", "e4"),  # item c: the later r2
        Outcome("click", T0 + 10, None, "u2", "zzz", "e5"),  # r3 lists no items: any item counts
        Outcome("click", T0 + 2 * 86400, None, "u2", "x", "e6"),  # outside the 24 h window
        Outcome("click", T0, "r-unknown", event_id="e7"),
    ]
    report = analyze(exposures, outcomes, {"champion": 1}, CONFIG)
    control = report.variant("champion")
    assert (control.exposures, control.users, control.clicks, control.conversions, control.plays) == (3, 2, 2, 1, 2.0)
    assert report.outcomes_unattributed == 2


def test_per_variant_figures_and_intervals_on_crafted_data():
    # 20 users per variant, one exposure each: the clustered intervals reduce to plain Wilson ones.
    exposures, outcomes = [], []
    for variant, clickers in (("champion", 4), ("B", 10)):
        for u in range(20):
            rid = f"{variant}-{u}"
            exposures.append(exposure(rid, variant, f"{variant}-u{u}", latency_ms=float(u + 1)))
            if u < clickers:
                outcomes.append(Outcome("click", T0 + 1, rid))
            if u < 2:
                outcomes.append(Outcome("play", T0 + 1, rid))
    report = analyze(exposures, outcomes, {"champion": 1, "B": 1}, CONFIG)
    b = report.variant("B")
    assert (b.ctr, b.cvr, b.engagement) == (0.5, 0.0, 0.1)
    assert (b.ctr_low, b.ctr_high) == pytest.approx(wilson_interval(0.5 * 19, 19))
    assert b.latency_p99_ms == pytest.approx(np.percentile(np.arange(1, 21), 99))
    ctr = report.comparison("B", "ctr")
    assert ctr.difference == pytest.approx(0.3) and ctr.relative_lift == pytest.approx(1.5)
    assert ctr.ci_low < ctr.difference < ctr.ci_high
    assert [c.metric for c in report.comparisons] == ["ctr", "cvr", "engagement"]


def test_many_exposures_per_user_widen_the_interval():
    # The same click totals, once from 200 one-exposure users, once from 20 users with 10 exposures each.
    def ctr_width(users, per_user):
        exposures, outcomes = [], []
        for u in range(users):
            for j in range(per_user):
                rid = f"{u}-{j}"
                exposures.append(exposure(rid, user=f"u{u}"))
                if u < users // 4:
                    outcomes.append(Outcome("click", T0, rid))
        stats = analyze(exposures, outcomes, {"champion": 1}, CONFIG).variant("champion")
        assert stats.ctr == pytest.approx(0.25)
        return stats.ctr_high - stats.ctr_low

    assert ctr_width(20, 10) > 2 * ctr_width(200, 1)


def test_sample_ratio_mismatch_by_users_and_by_exposures():
    exposures = [exposure(f"a{i}", "champion", f"a{i}") for i in range(600)]
    exposures += [exposure(f"b{i}", "B", f"b{i % 400}") for i in range(800)]
    by_users = analyze(exposures, [], {"champion": 1, "B": 1}, CONFIG)
    assert by_users.srm.observed == {"B": 400, "champion": 600} and by_users.srm.mismatch
    assert by_users.srm.statistic == pytest.approx(40.0)
    by_exposures = analyze(exposures, [], {"champion": 1, "B": 1}, replace(CONFIG, srm_unit="exposure"))
    assert by_exposures.srm.observed == {"B": 800, "champion": 600} and by_exposures.srm.mismatch
    balanced = analyze(exposures, [], {"champion": 3, "B": 2}, CONFIG)
    assert not balanced.srm.mismatch and balanced.srm.p_value == pytest.approx(1.0)


def test_traffic_on_an_unconfigured_variant_is_a_mismatch():
    exposures = [exposure("r1", "champion", "u1"), exposure("r2", "rogue", "u2")]
    report = analyze(exposures, [], {"champion": 1}, CONFIG)
    assert report.srm.mismatch and report.weights == {"champion": 1.0, "rogue": 0.0}


def test_guardrails_flag_latency_and_degraded_rate():
    exposures = [exposure(f"c{i}", "champion", f"c{i}", latency_ms=20.0) for i in range(100)]
    exposures += [exposure(f"b{i}", "B", f"b{i}", latency_ms=20.0 if i < 95 else 900.0, degraded=i < 3)
                  for i in range(100)]
    report = analyze(exposures, [], {"champion": 1, "B": 1}, CONFIG)
    assert report.variant("champion").guardrail_breaches == []
    breaches = report.variant("B").guardrail_breaches
    assert len(breaches) == 2
    assert breaches[0].startswith("p99 latency") and breaches[1].startswith("degraded rate 3.00%")


def test_users_seen_in_several_variants_are_counted():
    exposures = [exposure("r1", "champion", "u1"), exposure("r2", "B", "u1"), exposure("r3", "B", "u2")]
    assert analyze(exposures, [], {"champion": 1, "B": 1}, CONFIG).users_in_several_variants == 1


def _experiment(rng, users, ctr_control, ctr_b, t=T0):
    exposures, outcomes = [], []
    for variant, ctr in (("champion", ctr_control), ("B", ctr_b)):
        for u in range(users):
            for j in range(3):
                rid = f"{variant}-{u}-{j}-{t}"
                exposures.append(exposure(rid, variant, f"{variant}-{u}", t=t))
                if rng.random() < ctr:
                    outcomes.append(Outcome("click", t + 1, rid))
    return exposures, outcomes


def test_significance_needs_the_minimum_users_and_carries_the_running_minimum():
    rng = np.random.default_rng(5)
    exposures, outcomes = _experiment(rng, 1500, 0.10, 0.16)
    report = analyze(exposures, outcomes, {"champion": 1, "B": 1}, CONFIG, window_start=T0)
    ctr = report.comparison("B", "ctr")
    assert ctr.always_valid_p < 1e-3 and ctr.significant
    too_few = analyze(exposures, outcomes, {"champion": 1, "B": 1}, replace(CONFIG, min_users_per_variant=5000))
    assert not too_few.comparison("B", "ctr").significant

    # A later look with no difference keeps the earlier, smaller p-value (same allocation period) ...
    null_exposures, null_outcomes = _experiment(rng, 200, 0.1, 0.1)
    later = analyze(null_exposures, null_outcomes, {"champion": 1, "B": 1}, CONFIG, window_start=T0, previous=report)
    assert later.comparison("B", "ctr").always_valid_p == ctr.always_valid_p
    # ... but not across a weight change, which starts a new period.
    fresh = analyze(null_exposures, null_outcomes, {"champion": 1, "B": 1}, CONFIG, window_start=T0 + 1, previous=report)
    assert fresh.comparison("B", "ctr").always_valid_p > ctr.always_valid_p


def test_several_challengers_split_alpha():
    rng = np.random.default_rng(11)
    exposures, outcomes = _experiment(rng, 300, 0.1, 0.1)
    exposures.append(exposure("c-only", "C", "c-user"))
    report = analyze(exposures, outcomes, {"champion": 1, "B": 1, "C": 0.01}, CONFIG)
    assert {c.variant for c in report.comparisons} == {"B", "C"}
    p = report.comparison("B", "ctr").always_valid_p
    assert report.comparison("B", "ctr").significant == (p < CONFIG.alpha / 2)


def test_report_metrics_json_and_html():
    rng = np.random.default_rng(1)
    exposures, outcomes = _experiment(rng, 100, 0.1, 0.2)
    report = analyze(exposures, outcomes, {"champion": 1, "B": 1}, CONFIG)
    published = InMemoryPublisher()
    published.publish(report.metrics())
    assert published.value("ABCtr", Variant="B") == pytest.approx(report.variant("B").ctr)
    assert published.value("ABCvr", Variant="champion") == 0.0
    assert published.value("ABSampleRatioMismatch") == 0.0
    p_value = report.comparison("B", "ctr").always_valid_p
    assert published.value("ABAlwaysValidPValue", Variant="B", Metric="ctr") == p_value
    stored = json.loads(json.dumps(report.to_dict()))
    assert ABReport.from_dict(stored).to_dict() == stored
    assert ABReport.from_dict(stored).comparison("B", "ctr") == report.comparison("B", "ctr")
    page = report.to_html()
    assert "always-valid" in page and "<td class=\"text\">B</td>" in page


def test_ab_job_on_local_files_and_lake_events(tmp_path):
    exposures_dir, lake_dir = tmp_path / "exposures", tmp_path / "lake" / "events" / "event_date=2024-05-01"
    exposures_dir.mkdir()
    lake_dir.mkdir(parents=True)
    rng = np.random.default_rng(2)
    exposures, outcomes = _experiment(rng, 100, 0.1, 0.3)
    old = exposure("old", "champion", "old-user", t=T0 - 3600)  # before the window: ignored
    with open(exposures_dir / "part-0.jsonl", "w") as out:
        for e in [old, *exposures]:
            out.write(json.dumps(e.to_dict()) + "\n")
        out.write(json.dumps({"recommendation_id": "x", "variant": "B"}) + "\n")
    events = [Event(f"e{i}", "u", "click", o.timestamp, recommendation_id=o.recommendation_id)
              for i, o in enumerate(outcomes)]
    events.append(Event("v1", "u", "view", T0))
    lines = "\n".join(e.to_json() for e in events) + "\n" + '{"event_id": "bad"}\n'
    (lake_dir / "part-0.jsonl.gz").write_bytes(gzip.compress(lines.encode()))
    publisher = InMemoryPublisher()
    now = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    report = run_ab_job(str(exposures_dir), str(tmp_path / "lake"), {"champion": 1, "B": 1}, CONFIG, publisher,
                        qualified_play_s=300, window_start=T0, report_uri=str(tmp_path / "reports"), now=now)
    assert report.variant("champion").exposures == 300 and report.variant("B").clicks == len(
        [o for o in outcomes if o.recommendation_id.startswith("B")])
    assert report.rejected_records == 2
    assert report.errors[0].endswith(f"exposures/part-0.jsonl:{len(exposures) + 2}: user_id: required non-empty string")
    assert report.errors[1].endswith("part-0.jsonl.gz:" + str(len(events) + 1) + ": user_id: is required")
    assert publisher.value("ABExposures", Variant="B") == 300
    latest = json.loads((tmp_path / "reports" / "ab-latest.json").read_text())
    assert latest["window_start"] == T0 and (tmp_path / "reports" / "ab-20240501T120000Z.html").exists()
