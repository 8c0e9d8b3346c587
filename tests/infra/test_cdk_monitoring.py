"""MonitoringStack: the on-call dashboard, every alarm with its threshold and action, and the scheduled jobs."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from cdk_synth import Synth

from recsys.config import CHALLENGER_VARIANT, CHAMPION_VARIANT, AlarmConfig, MonitoringJobsConfig
from stacks.monitoring import alarm_table

KIND = "monitoring"
VARIANTS = (CHAMPION_VARIANT, CHALLENGER_VARIANT)


def _alarms(synth: Synth) -> dict[str, dict[str, Any]]:
    prefix = f"{synth.config.prefix}-"
    return {
        alarm["Properties"]["AlarmName"].removeprefix(prefix): alarm["Properties"]
        for alarm in synth.resources(KIND, "AWS::CloudWatch::Alarm").values()
    }


def _expected_alarms(synth: Synth) -> dict[str, tuple[float, str]]:
    """Alarm name (without the stage prefix) -> (threshold, comparison), from the stage's config."""
    monitoring = synth.config.monitoring
    alarms, drift, showcase = monitoring.alarms, monitoring.drift, monitoring.showcase
    gt, ge, lt = "GreaterThanThreshold", "GreaterThanOrEqualToThreshold", "LessThanThreshold"
    expected = {
        "recommend-availability": (round(1 - alarms.availability_slo, 6), gt),
        "event-tracker-availability": (round(1 - alarms.availability_slo, 6), gt),
        "recommend-latency-p99": (alarms.recommend_p99_latency_ms, gt),
        "event-tracker-latency-p99": (alarms.tracker_p99_latency_ms, gt),
        "reflection-time-p99": (alarms.reflection_p99_ms, gt),
        # cdk-monitoring-constructs alarms above a count: "N errors" is "more than N - 1".
        "feature-queue-Queue-Message-Age-Max-Critical": (alarms.queue_max_age_s, gt),
        "feature-writer-Fault-Count-Critical": (alarms.feature_writer_errors - 1, gt),
        "feature-writer-Throttled-Count-Critical": (alarms.feature_writer_throttles - 1, gt),
        "daily-pipeline-Failure-Count-Critical": (alarms.failed_executions - 1, gt),
        "monitoring-jobs-Failure-Count-Critical": (alarms.failed_executions - 1, gt),
        "memorydb-cpu": (alarms.memorydb_cpu_percent, gt),
        "memorydb-memory": (alarms.memorydb_memory_percent, gt),
        "memorydb-replication-lag": (alarms.memorydb_replication_lag_s, gt),
        "firehose-freshness": (alarms.firehose_freshness_s, gt),
        "failed-processing-jobs": (alarms.failed_jobs, ge),
        "failed-training-jobs": (alarms.failed_jobs, ge),
        "feature-drift": (drift.drifted_features_alarm, ge),
        "prediction-drift": (drift.psi_alarm, ge),
        "prior-shift": (drift.prior_shift_alarm, ge),
        "drift-input-missing": (drift.min_samples, lt),
        "ab-sample-ratio-mismatch": (1, ge),
        "recommend-degraded": (alarms.degraded_rate, gt),
        "boost-cap-exceeded": (alarms.boost_cap_exceeded, ge),
        "showcase-frozen": (showcase.unchanged_share_alarm, gt),
        "showcase-stale": (showcase.daily_novelty_alarm_below, lt),
    }
    for variant in VARIANTS:
        expected[f"ab-guardrail-{variant}"] = (1, ge)
    return expected


def _on_call_topic(synth: Synth) -> dict[str, Any]:
    (topic_id,) = synth.resources("foundation", "AWS::SNS::Topic")
    return {"Ref": topic_id}


# --- dashboard ---------------------------------------------------------------------------------------------------


def test_one_dashboard_per_stage(synth: Synth) -> None:
    assert list(synth.dashboards()) == [synth.config.names.dashboard]


def _series(synth: Synth) -> set[tuple[str, ...]]:
    """(namespace, metric, dimension values...) of every metric array on the dashboard, and every expression."""
    (body,) = synth.dashboards().values()
    found = set()
    for widget in body["widgets"]:
        for entry in widget.get("properties", {}).get("metrics", []):
            if isinstance(entry[0], str):
                found.add(tuple(part for part in entry if isinstance(part, str)))
            else:
                found.add(("expression", entry[0]["expression"]))
    return found


def _has(series: set[tuple[str, ...]], namespace: str, metric: str, *values: str) -> bool:
    return any(s[:2] == (namespace, metric) and all(v in s[2:] for v in values) for s in series)


def test_dashboard_covers_every_part_of_the_platform(synth: Synth) -> None:
    names = synth.config.names
    series = _series(synth)
    ours = names.metrics_namespace
    for api in (names.recommend_api, names.event_tracker_api):
        for metric in ("Count", "4XXError", "5XXError", "Latency"):
            assert _has(series, "AWS/ApiGateway", metric, api), (api, metric)
    tracker, writer = names.function("event_tracker"), names.function("feature_writer")
    assert _has(series, ours, "EventsAccepted", tracker) and _has(series, ours, "EventsRejected", tracker)
    assert _has(series, "AWS/SQS", "ApproximateAgeOfOldestMessage", names.feature_queue)
    assert _has(series, "AWS/SQS", "ApproximateNumberOfMessagesVisible", names.feature_dlq)
    # The writer is imported by name: the dimension is a token cut from the function ARN, which holds the name.
    for metric in ("Errors", "Throttles", "Duration"):
        assert _has(series, "AWS/Lambda", metric, "FunctionName"), metric
    dashboard = json.dumps(synth.one(KIND, "AWS::CloudWatch::Dashboard"))
    assert f":function:{writer}" in dashboard
    assert _has(series, ours, "ReflectionTime", writer) and _has(series, ours, "EventsDuplicate", writer)
    expressions = " ".join(s[1] for s in series if s[0] == "expression")
    for metric in ("EngineCPUUtilization", "DatabaseMemoryUsagePercentage", "CurrConnections", "ReplicationLag"):
        assert f"{metric}) FROM SCHEMA(\"AWS/MemoryDB\"" in expressions and names.memorydb_cluster in expressions
    for metric in ("DeliveryToS3.DataFreshness", "DeliveryToS3.Success"):
        assert _has(series, "AWS/Firehose", metric, names.firehose_stream)
    assert _has(series, "AWS/States", "ExecutionsFailed") and _has(series, "AWS/States", "ExecutionTime")
    assert _has(series, "AWS/Events", "MatchedEvents", f"{synth.config.prefix}-failed-processing-jobs")
    assert _has(series, "AWS/Events", "MatchedEvents", f"{synth.config.prefix}-failed-training-jobs")
    for variant in VARIANTS:
        for metric in ("Invocations", "ModelLatency", "Invocation5XXErrors"):
            assert _has(series, "AWS/SageMaker", metric, names.endpoint, variant), (variant, metric)
        assert _has(series, "/aws/sagemaker/Endpoints", "CPUUtilization", names.endpoint, variant)
        assert _has(series, ours, "ABCtr", variant) and _has(series, ours, "ABCvr", variant)
    for metric in ("DriftedFeatures", "PredictionDriftPSI", "PredictionPriorShift", "ShowcaseUnchangedShare"):
        assert _has(series, ours, metric), metric
    assert 'MetricName="FeatureDriftPSI"' in expressions
    recommend = names.function("recommend")
    for metric in ("BoostsAutoDisabled", "BoostCapExceeded", "RecommendDegraded"):
        assert _has(series, ours, metric, recommend), metric


def test_the_availability_widgets_show_the_slo(dev: Synth) -> None:
    (body,) = dev.dashboards().values()
    slo = 100 * dev.config.monitoring.alarms.availability_slo
    availability = [w["properties"] for w in body["widgets"] if "availability (%)" in w["properties"].get("title", "")]
    assert len(availability) == 2
    for widget in availability:
        assert widget["annotations"]["horizontal"][0]["value"] == pytest.approx(slo)


# --- alarms ------------------------------------------------------------------------------------------------------


def test_every_alarm_exists_with_its_threshold(synth: Synth) -> None:
    alarms = _alarms(synth)
    expected = _expected_alarms(synth)
    assert sorted(alarms) == sorted(expected)
    for name, (threshold, comparison) in expected.items():
        assert alarms[name]["Threshold"] == pytest.approx(threshold), name
        assert alarms[name]["ComparisonOperator"] == comparison, name


def test_one_failure_is_enough_for_the_failure_alarms(dev: Synth) -> None:
    alarms = _alarms(dev)
    for name in ("feature-writer-Fault-Count-Critical", "feature-writer-Throttled-Count-Critical",
                 "daily-pipeline-Failure-Count-Critical", "monitoring-jobs-Failure-Count-Critical",
                 "failed-processing-jobs", "failed-training-jobs"):
        assert alarms[name]["EvaluationPeriods"] == 1, name
        assert alarms[name].get("DatapointsToAlarm", 1) == 1, name
        assert alarms[name]["TreatMissingData"] == "notBreaching", name


def test_the_endpoint_widgets_draw_the_serving_stacks_alarm_thresholds(dev: Synth) -> None:
    (body,) = dev.dashboards().values()
    lines = {
        widget["properties"]["title"]: [
            line["value"] for line in widget["properties"].get("annotations", {}).get("horizontal", [])]
        for widget in body["widgets"] if widget["type"] == "metric"
    }
    serving = dev.config.serving.alarms
    assert lines["ModelLatency p99 (µs)"] == [serving.model_latency_p99_ms * 1000]
    assert lines["Invocation 5xx"] == [serving.errors_5xx]
    assert not any(name.startswith("endpoint-") for name in _alarms(dev)), "the serving stack owns these alarms"


def test_every_alarm_notifies_on_call_but_the_availability_children(synth: Synth) -> None:
    topic = _on_call_topic(synth)
    for name, alarm in _alarms(synth).items():
        if name.endswith("-availability"):
            assert alarm.get("AlarmActions", []) == [], f"{name} pages through the composite SLO alarm only"
            continue
        assert [synth.resolve_import(action) for action in alarm["AlarmActions"]] == [topic], name
        assert alarm.get("ActionsEnabled", True) is True, name


def test_every_alarm_description_says_what_to_do_and_points_to_the_runbook(synth: Synth) -> None:
    for name, alarm in _alarms(synth).items():
        assert "docs/monitoring.md" in alarm["AlarmDescription"], name
        assert len(alarm["AlarmDescription"]) > 80, name


def test_the_availability_slo_composite_alarm_pages_when_either_api_breaks_it(synth: Synth) -> None:
    (composite,) = synth.resources(KIND, "AWS::CloudWatch::CompositeAlarm").values()
    props = composite["Properties"]
    assert props["AlarmName"] == f"{synth.config.prefix}-availability-slo"
    assert [synth.resolve_import(action) for action in props["AlarmActions"]] == [_on_call_topic(synth)]
    rule = json.dumps(props["AlarmRule"])
    children = [
        logical_id
        for logical_id, alarm in synth.resources(KIND, "AWS::CloudWatch::Alarm").items()
        if alarm["Properties"]["AlarmName"].endswith("-availability")
    ]
    assert len(children) == 2 and all(child in rule for child in children) and " OR " in rule
    evaluation = synth.config.monitoring.alarms.availability_evaluation_periods
    for child in children:
        alarm = synth.resources(KIND, "AWS::CloudWatch::Alarm")[child]["Properties"]
        (query,) = alarm["Metrics"]
        assert (query["MetricStat"]["Metric"]["MetricName"], query["MetricStat"]["Stat"]) == ("5XXError", "Average")
        assert alarm["EvaluationPeriods"] == evaluation


def test_docs_list_every_alarm_as_synthesized(dev: Synth, repo_root) -> None:
    docs = (repo_root / "docs" / "monitoring.md").read_text()
    table = re.search(r"<!-- alarms:start -->\n(.*?)\n<!-- alarms:end -->", docs, re.S)
    assert table, "docs/monitoring.md lost its alarm table markers"
    expected = alarm_table(dev.templates[KIND], f"{dev.config.prefix}-")
    assert expected.count("\n") == len(_alarms(dev)) + 2  # header, rule, one row per alarm and the composite
    assert table.group(1).strip() == expected, (
        "regenerate it: python -m stacks.monitoring cdk.out/recsys-dev-monitoring.template.json recsys-dev-")


def test_alarm_config_rejects_thresholds_that_cannot_work() -> None:
    with pytest.raises(ValueError, match="monitoring.alarms.availability_slo"):
        AlarmConfig(availability_slo=1.0)
    with pytest.raises(ValueError, match="monitoring.alarms.period_minutes"):
        AlarmConfig(period_minutes=7)
    with pytest.raises(ValueError, match="monitoring.alarms.failed_jobs"):
        AlarmConfig(failed_jobs=0)
    with pytest.raises(ValueError, match="monitoring.jobs.volume_size_gb"):
        MonitoringJobsConfig(volume_size_gb=0)


# --- scheduled jobs ----------------------------------------------------------------------------------------------


def _schedules(synth: Synth) -> dict[str, dict[str, Any]]:
    return {
        schedule["Properties"]["Name"].removeprefix(f"{synth.config.prefix}-"): schedule["Properties"]
        for schedule in synth.resources(KIND, "AWS::Scheduler::Schedule").values()
    }


def _input(schedule: dict[str, Any]) -> dict[str, Any]:
    raw = schedule["Target"]["Input"]
    if isinstance(raw, dict):  # tokens (bucket names carry the account id) make it an Fn::Join
        raw = "".join(part if isinstance(part, str) else "TOKEN" for part in raw["Fn::Join"][1])
    return json.loads(raw)


@pytest.mark.parametrize("job", ["drift", "ab", "showcase"])
def test_each_job_runs_on_its_configured_schedule(synth: Synth, job: str) -> None:
    monitoring = synth.config.monitoring
    expression = {"drift": monitoring.drift.schedule, "ab": monitoring.ab.schedule,
                  "showcase": monitoring.showcase.schedule}[job]
    schedule = _schedules(synth)[job]
    assert schedule["ScheduleExpression"] == expression
    assert schedule["State"] == "ENABLED"
    (machine_id,) = synth.resources(KIND, "AWS::StepFunctions::StateMachine")
    assert schedule["Target"]["Arn"] == {"Ref": machine_id}
    assert synth.resolve_import(schedule["KmsKeyArn"]) == synth.key_arn()
    arguments = _input(schedule)
    assert arguments["job"] == job
    assert arguments["arguments"][:4] == ["--stage", synth.config.stage, "--cloudwatch", job]


def test_the_ab_schedule_analyses_the_endpoint_variants_and_records_promotions(dev: Synth) -> None:
    arguments = _input(_schedules(dev)["ab"])["arguments"]
    options = dict(zip(arguments[4::2], arguments[5::2]))
    assert options["--endpoint"] == dev.config.names.endpoint
    assert options["--variants"] == f"{CHAMPION_VARIANT}={CHAMPION_VARIANT},{CHALLENGER_VARIANT}={CHALLENGER_VARIANT}"
    assert options["--decision-log"].endswith(dev.config.monitoring.jobs.promotions_prefix)
    # The recommend API logs its exposures as impression events: both come from the lake's events.
    assert options["--outcomes"].endswith("/events/") and options["--exposures"] == options["--outcomes"]


def test_the_state_machine_starts_one_uniquely_named_processing_job_and_waits_for_it(synth: Synth) -> None:
    machine = synth.one(KIND, "AWS::StepFunctions::StateMachine")["Properties"]
    assert machine["StateMachineName"] == synth.config.names.monitoring_jobs_state_machine
    definition = "".join(
        part if isinstance(part, str) else json.dumps(part) for part in machine["DefinitionString"]["Fn::Join"][1]
    )
    assert ":states:::sagemaker:createProcessingJob.sync" in definition
    assert f"States.Format('{synth.config.prefix}-{{}}-{{}}', $.job, States.UUID())" in definition
    assert '"ContainerArguments.$":"$.arguments"' in definition
    assert '"EnableInterContainerTrafficEncryption":true' in definition
    assert f'"InstanceType":"{synth.config.monitoring.jobs.instance_type}"' in definition
    assert '"VolumeKmsKeyId":' in definition and '"Subnets":' in definition
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert machine["LoggingConfiguration"]["Level"] == "ALL"


def _statements(synth: Synth, role_id: str) -> list[dict[str, Any]]:
    return [
        statement
        for policy in synth.resources(KIND, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def _role_id(synth: Synth, service: str) -> str:
    (role_id,) = [
        logical_id
        for logical_id, role in synth.resources(KIND, "AWS::IAM::Role").items()
        if role["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": service}
    ]
    return role_id


def test_the_job_role_is_limited_to_its_data_namespace_and_endpoint(dev: Synth) -> None:
    statements = _statements(dev, _role_id(dev, "sagemaker.amazonaws.com"))
    by_action = {}
    for statement in statements:
        for action in [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]:
            by_action.setdefault(action, []).append(statement)
    (metrics,) = by_action["cloudwatch:PutMetricData"]
    assert metrics["Condition"] == {"StringEquals": {"cloudwatch:namespace": dev.config.names.metrics_namespace}}
    writes = json.dumps(by_action["s3:PutObject"])
    jobs = dev.config.monitoring.jobs
    assert jobs.reports_prefix in writes and jobs.promotions_prefix in writes and "lake" not in writes
    (endpoint,) = by_action["sagemaker:UpdateEndpointWeightsAndCapacities"]
    assert f':endpoint/{dev.config.names.endpoint}"]' in json.dumps(endpoint["Resource"])
    assert not any(action.endswith(":*") or action == "*" for action in by_action)


def test_the_state_machine_may_pass_only_the_job_role_to_sagemaker(dev: Synth) -> None:
    job_role = _role_id(dev, "sagemaker.amazonaws.com")
    statements = _statements(dev, _role_id(dev, "states.amazonaws.com"))
    (passing,) = [s for s in statements if s["Action"] == "iam:PassRole"]
    assert passing["Resource"] == {"Fn::GetAtt": [job_role, "Arn"]}
    assert passing["Condition"] == {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}}
    (create,) = [s for s in statements if "sagemaker:CreateProcessingJob" in s["Action"]]
    assert json.dumps(create["Resource"]).endswith(f':processing-job/{dev.config.prefix}-*"]]}}')


def test_the_job_image_context_holds_only_the_package_and_its_pins(dev: Synth) -> None:
    manifest = json.loads((dev.outdir / f"{dev.config.prefix}-{KIND}.assets.json").read_text())
    (image,) = manifest["dockerImages"].values()
    assert image["source"]["dockerFile"] == "containers/monitoring/Dockerfile"
    context = dev.outdir / image["source"]["directory"]
    assert sorted(path.name for path in context.iterdir()) == [
        "containers", "recsys", "requirements-dev.txt", "requirements.txt"]
    assert (context / "recsys" / "monitoring" / "__main__.py").is_file()
    assert not list(context.rglob("__pycache__"))


def test_failed_processing_and_training_jobs_of_the_stage_are_counted(dev: Synth) -> None:
    rules = {rule["Properties"]["Name"]: rule["Properties"]
             for rule in dev.resources(KIND, "AWS::Events::Rule").values()}
    prefix = dev.config.prefix
    for kind, detail in (("processing", "Processing"), ("training", "Training")):
        pattern = rules[f"{prefix}-failed-{kind}-jobs"]["EventPattern"]
        assert pattern["detail-type"] == [f"SageMaker {detail} Job State Change"]
        assert pattern["detail"] == {f"{detail}JobStatus": ["Failed"], f"{detail}JobName": [{"prefix": f"{prefix}-"}]}
