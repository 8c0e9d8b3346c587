"""MonitoringConfig: defaults every stage loads, and bad values named."""

import pytest

from recsys.config import STAGES, ABTestConfig, DriftMonitorConfig, PromotionConfig, load_stage


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_monitoring_settings(stage):
    monitoring = load_stage(stage).monitoring
    assert monitoring.drift.psi_warn < monitoring.drift.psi_alarm
    assert monitoring.ab.schedule.startswith("rate(") and monitoring.drift.schedule.startswith("rate(")
    assert monitoring.showcase.snapshot_ttl_days >= 8  # the week-ago comparison needs 7 days back
    assert not monitoring.promotion.enabled  # promotion is opted into, never on by default


@pytest.mark.parametrize("make, message", [
    (lambda: DriftMonitorConfig(psi_warn=0.3, psi_alarm=0.2),
     "monitoring.drift.psi_warn: must be > 0 and <= psi_alarm"),
    (lambda: DriftMonitorConfig(ks_p_value=0), "monitoring.drift.ks_p_value"),
    (lambda: ABTestConfig(primary_metric="revenue"), "monitoring.ab.primary_metric: 'revenue' is not one of"),
    (lambda: ABTestConfig(srm_unit="session"), "monitoring.ab.srm_unit"),
    (lambda: ABTestConfig(alpha=1.5), "monitoring.ab.alpha"),
    (lambda: PromotionConfig(step=0), "monitoring.promotion.step"),
])
def test_bad_values_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()
