"""On-call for one stage: one CloudWatch dashboard, the alarms, and the scheduled monitoring jobs.

Resources of the other stacks are referenced by their names from `StageConfig.names` (metrics carry names, not
construct references), so this stack depends only on the foundation (key, on-call topic), the network (where the
jobs run) and the feature store's endpoint (the showcase job reads MemoryDB).

Alarms notify the KMS-encrypted on-call topic; each description says what to check first and points to the
runbook in docs/monitoring.md. Thresholds come from `StageConfig.monitoring.alarms` (and the drift and showcase
configs). cdk-monitoring-constructs draws the SQS, Lambda, Firehose and Step Functions parts; plain CloudWatch
constructs the rest (the APIs' SLO, SageMaker variants, MemoryDB and the platform's own metrics).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import Aws, CfnOutput, Duration, Stack, Tags
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from cdk_monitoring_constructs import (
    AlarmFactoryDefaults,
    DefaultDashboardFactory,
    ErrorCountThreshold,
    MaxMessageAgeThreshold,
    MetricFactoryDefaults,
    MonitoringFacade,
    SnsAlarmActionStrategy,
)
from constructs import Construct

from recsys.config import CHALLENGER_VARIANT, CHAMPION_VARIANT, StageConfig
from recsys.events import EVENTS_PREFIX
from stacks.constructs.memorydb import client_environment
from stacks.constructs.monitoring_jobs import JobSchedule, MonitoringJobs
from stacks.constructs.python_lambda import VpcPlacement
from stacks.foundation import shared_key
from stacks.nag import acknowledge
from stacks.network import NetworkStack

RUNBOOK = "Runbook: docs/monitoring.md"
VARIANTS = (CHAMPION_VARIANT, CHALLENGER_VARIANT)
GT = cw.ComparisonOperator.GREATER_THAN_THRESHOLD
GE = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
LT = cw.ComparisonOperator.LESS_THAN_THRESHOLD
# cdk-monitoring-constructs alarms wait for 3 breaching periods by default; one failure must be enough.
ONE_PERIOD: dict[str, int] = {"evaluation_periods": 1, "datapoints_to_alarm": 1}
# Lambda function purposes whose Powertools metrics (dimension `service` = the function's name) the dashboard reads.
TRACKER, WRITER, RECOMMEND, FIREHOSE_TRANSFORM = "event_tracker", "feature_writer", "recommend", "firehose_transform"


class MonitoringStack(Stack):
    """`dashboard` is the stage's on-call dashboard; `alarms` every alarm, by its name without the stage prefix."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        config: StageConfig,
        key: kms.IKey,
        alarm_topic: sns.ITopic,
        network: NetworkStack,
        feature_store_endpoint: str,
        **kwargs,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self.config = config
        self.names = config.names
        self.settings = config.monitoring.alarms
        self.period = Duration.minutes(self.settings.period_minutes)
        self.alarm_topic = alarm_topic
        self.alarms: dict[str, cw.IAlarm] = {}
        key = shared_key(self, key)

        dashboards = DefaultDashboardFactory(
            self,
            "Dashboards",
            dashboard_name_prefix=self.names.dashboard,
            create_dashboard=True,
            create_summary_dashboard=False,
            create_alarm_dashboard=False,
        )
        self.facade = MonitoringFacade(
            self,
            "Monitoring",
            alarm_factory_defaults=AlarmFactoryDefaults(
                alarm_name_prefix=config.prefix,
                actions_enabled=True,
                action=SnsAlarmActionStrategy(on_alarm_topic=alarm_topic, on_ok_topic=alarm_topic),
            ),
            metric_factory_defaults=MetricFactoryDefaults(period=self.period),
            dashboard_factory=dashboards,
        )

        self.jobs = self._jobs(config, key, network, feature_store_endpoint)
        self.facade.add_large_header(f"{config.prefix}: on-call. Alarms notify {self.names.alarm_topic}. {RUNBOOK}")
        self._apis()
        self._event_path()
        self._memorydb()
        self._firehose()
        self._pipelines()
        self._endpoint()
        self._drift()
        self._ab()
        self._blender()
        self._record_library_alarms()
        self.dashboard = dashboards.dashboard
        # CloudFormation's current schema lets dashboards carry tags, cfn-lint's (1.51) does not yet: keep them off.
        for tag in ("project", "stage"):
            Tags.of(self.dashboard).remove(tag)
        CfnOutput(self, "DashboardName", value=self.names.dashboard)

    # --- helpers ---------------------------------------------------------------------------------------------------

    def ours(self, name: str, *, stat: str = "Sum", service: str | None = None, label: str | None = None,
             **dimensions: str) -> cw.Metric:
        """A metric the platform emits in its own namespace; `service` is the emitting Lambda's purpose."""
        if service is not None:
            dimensions = {"service": self.names.function(service), **dimensions}
        return self.aws_metric(self.names.metrics_namespace, name, dimensions, stat, label)

    def search(self, name: str, stat: str, label: str) -> cw.MathExpression:
        """Every series of one of the platform's metrics, whatever its dimensions (drift per feature, ...)."""
        query = f"Namespace=\"{self.names.metrics_namespace}\" MetricName=\"{name}\""
        return cw.MathExpression(
            expression=f"SEARCH('{query}', '{stat}', {int(self.period.to_seconds())})",
            label=label,
            period=self.period,
        )

    def aws_metric(self, namespace: str, name: str, dimensions: dict[str, str], stat: str,
                   label: str | None = None) -> cw.Metric:
        return cw.Metric(
            namespace=namespace,
            metric_name=name,
            dimensions_map=dimensions,
            statistic=stat,
            period=self.period,
            label=label or name,
        )

    def alarm(
        self,
        name: str,
        *,
        metric: cw.IMetric,
        threshold: float,
        runbook: str,
        comparison: cw.ComparisonOperator = GE,
        evaluation_periods: int = 1,
        missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING,
        notify: bool = True,
    ) -> cw.Alarm:
        """An alarm named `<prefix>-<name>`; it notifies on-call unless a composite alarm does that for it."""
        alarm = cw.Alarm(
            self,
            f"Alarm-{name}",
            alarm_name=f"{self.config.prefix}-{name}",
            alarm_description=f"{runbook} {RUNBOOK}",
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            treat_missing_data=missing,
        )
        if notify:
            alarm.add_alarm_action(actions.SnsAction(self.alarm_topic))
            alarm.add_ok_action(actions.SnsAction(self.alarm_topic))
        self.alarms[name] = alarm
        return alarm

    def row(self, *widgets: cw.IWidget) -> None:
        self.facade.add_widget(cw.Row(*widgets))

    @staticmethod
    def graph(title: str, left: Sequence[cw.IMetric], *, right: Sequence[cw.IMetric] = (),
              alarms: Sequence[cw.Alarm] = (), lines: Sequence[float] = (), width: int = 8) -> cw.GraphWidget:
        """A graph with a horizontal "alarm" line at each alarm's threshold and at each of `lines`."""
        return cw.GraphWidget(
            title=title,
            left=list(left),
            right=list(right),
            width=width,
            height=6,
            left_annotations=[
                cw.HorizontalAnnotation(value=value, label="alarm")
                for value in [*(_threshold(alarm) for alarm in alarms), *lines]
            ],
        )

    def _record_library_alarms(self) -> None:
        """The alarms cdk-monitoring-constructs made, by name without the stage prefix (for tests and the docs)."""
        for created in self.facade.created_alarms():
            self.alarms[created.alarm_name.removeprefix(f"{self.config.prefix}-")] = created.alarm

    # --- sections --------------------------------------------------------------------------------------------------

    def _apis(self) -> None:
        settings = self.settings
        self.facade.add_medium_header("APIs: requests, errors, latency, availability (SLO "
                                      f"{settings.availability_slo:.1%})")
        availability = []
        for api_name, title, latency_ms, extra in (
            (self.names.recommend_api, "Recommend API", settings.recommend_p99_latency_ms, self._recommend_widgets()),
            (self.names.event_tracker_api, "Event tracker API", settings.tracker_p99_latency_ms, []),
        ):
            dims = {"ApiName": api_name}
            api = "AWS/ApiGateway"
            # 5XXError's Average is the share of requests that failed with a 5xx.
            error_rate = self.aws_metric(api, "5XXError", dims, "Average", "5xx rate")
            short = api_name.removeprefix(f"{self.config.prefix}-")
            unavailable = self.alarm(
                f"{short}-availability",
                metric=error_rate,
                threshold=round(1 - settings.availability_slo, 6),
                comparison=GT,
                evaluation_periods=settings.availability_evaluation_periods,
                notify=False,
                runbook=f"{title}: more than {1 - settings.availability_slo:.2%} of requests answered 5xx for "
                f"{settings.availability_evaluation_periods} periods. Check the function's errors and throttles, "
                "then its dependencies (MemoryDB, the endpoint, SNS). Part of the availability-SLO composite alarm.",
            )
            availability.append(unavailable)
            p99 = self.aws_metric(api, "Latency", dims, "p99", "p99")
            latency = self.alarm(
                f"{short}-latency-p99",
                metric=p99,
                threshold=latency_ms,
                comparison=GT,
                evaluation_periods=3,
                runbook=f"{title}: p99 latency above {latency_ms:.0f} ms for 3 periods. Compare the integration "
                "latency with the function duration; check MemoryDB CPU and the endpoint's ModelLatency.",
            )
            self.row(
                self.graph(f"{title}: requests", [self.aws_metric(api, "Count", dims, "Sum", "requests")]),
                self.graph(f"{title}: 4xx / 5xx", [self.aws_metric(api, "4XXError", dims, "Sum", "4xx"),
                                                    self.aws_metric(api, "5XXError", dims, "Sum", "5xx")]),
                self.graph(f"{title}: latency (ms)", [self.aws_metric(api, "Latency", dims, "p50", "p50"), p99],
                           alarms=[latency]),
            )
            self.row(
                cw.GraphWidget(
                    title=f"{title}: availability (%)",
                    left=[cw.MathExpression(expression="100 * (1 - FILL(e, 0))", using_metrics={"e": error_rate},
                                            label="availability", period=self.period)],
                    left_annotations=[cw.HorizontalAnnotation(value=100 * settings.availability_slo, label="SLO")],
                    left_y_axis=cw.YAxisProps(min=99, max=100),
                    width=24 - 8 * len(extra),
                    height=6,
                ),
                *extra,
            )
        slo = cw.CompositeAlarm(
            self,
            "AvailabilitySlo",
            composite_alarm_name=f"{self.config.prefix}-availability-slo",
            alarm_description=(
                f"An API breaks the {settings.availability_slo:.1%} availability SLO: its 5xx rate is above "
                f"{1 - settings.availability_slo:.2%}. The child alarm in ALARM names the API; start with its "
                f"function's errors. {RUNBOOK}"
            ),
            alarm_rule=cw.AlarmRule.any_of(*availability),
        )
        slo.add_alarm_action(actions.SnsAction(self.alarm_topic))
        slo.add_ok_action(actions.SnsAction(self.alarm_topic))
        self.alarms["availability-slo"] = slo

    def _recommend_widgets(self) -> list[cw.IWidget]:
        latency = [self.ours("RecommendLatency", stat=stat, service=RECOMMEND, label=stat) for stat in ("p50", "p99")]
        return [
            self.graph("Recommend: requests, exposures logged", [
                self.ours("RecommendRequests", service=RECOMMEND), self.ours("ExposuresLogged", service=RECOMMEND)]),
            self.graph("Recommend: in-function latency (ms)", latency),
        ]

    def _event_path(self) -> None:
        settings = self.settings
        self.facade.add_medium_header("Event tracker -> SNS -> SQS -> feature writer")
        per_second = [
            cw.MathExpression(expression=f"{label} / PERIOD({label})",
                              using_metrics={label: self.ours(name, service=TRACKER)}, label=f"{label}/s",
                              period=self.period)
            for name, label in (("EventsAccepted", "accepted"), ("EventsRejected", "rejected"))
        ]
        reflection = self.ours("ReflectionTime", stat="p99", service=WRITER, label="reflection p99 (ms)")
        reflection_alarm = self.alarm(
            "reflection-time-p99",
            metric=reflection,
            threshold=settings.reflection_p99_ms,
            comparison=GT,
            evaluation_periods=3,
            runbook=f"Event -> readable feature p99 above {settings.reflection_p99_ms:.0f} ms for 3 periods. Check "
            "the feature queue's oldest message age (backlog), the writer's duration and throttles, MemoryDB CPU.",
        )
        self.row(
            self.graph("Event tracker: events/s", per_second),
            self.graph("Feature writer: reflection time p99 (ms)", [reflection], alarms=[reflection_alarm]),
            self.graph("Feature writer: duplicates skipped, poison, store errors", [
                self.ours("EventsDuplicate", service=WRITER, label="duplicates skipped"),
                self.ours("EventsPoison", service=WRITER, label="poison"),
                self.ours("StoreErrors", service=WRITER, label="store errors"),
            ]),
        )
        queue = sqs.Queue.from_queue_attributes(
            self, "FeatureQueue", queue_arn=self._arn("sqs", self.names.feature_queue),
            queue_name=self.names.feature_queue,
        )
        dlq = sqs.Queue.from_queue_attributes(
            self, "FeatureDlq", queue_arn=self._arn("sqs", self.names.feature_dlq), queue_name=self.names.feature_dlq,
        )
        # The DLQ-depth alarm is the realtime stack's (stacks/constructs/queue_with_dlq.py); the widget is here.
        self.facade.monitor_sqs_queue_with_dlq(
            queue=queue,
            dead_letter_queue=dlq,
            human_readable_name="Feature queue (age of oldest message) and its DLQ (depth)",
            alarm_friendly_name="feature-queue",
            add_queue_max_message_age_alarm={"Critical": MaxMessageAgeThreshold(
                max_age_in_seconds=settings.queue_max_age_s,
                alarm_description_override=(
                    f"The feature queue's oldest message is older than {settings.queue_max_age_s} s: the writer "
                    f"falls behind or fails. Check its errors, throttles and MemoryDB. {RUNBOOK}"),
            )},
        )
        writer = lambda_.Function.from_function_name(self, "FeatureWriter", self.names.function(WRITER))
        self.facade.monitor_lambda_function(
            lambda_function=writer,
            human_readable_name="Feature writer: invocations, errors, throttles, duration",
            alarm_friendly_name="feature-writer",
            # The library alarms above a count: "at N errors" is "more than N - 1".
            add_fault_count_alarm={"Critical": ErrorCountThreshold(
                max_error_count=settings.feature_writer_errors - 1, **ONE_PERIOD,
                alarm_description_override=(
                    "The feature writer fails invocations: its batches return to the queue and, after "
                    f"{self.config.queue.max_receive_count} receives, go to the DLQ. Read its logs. {RUNBOOK}"),
            )},
            add_throttles_count_alarm={"Critical": ErrorCountThreshold(
                max_error_count=settings.feature_writer_throttles - 1, **ONE_PERIOD,
                alarm_description_override=(
                    "The feature writer is throttled: raise its reserved concurrency or the account limit; the "
                    f"queue keeps the events meanwhile. {RUNBOOK}"),
            )},
        )

    def _memorydb(self) -> None:
        settings = self.settings
        self.facade.add_medium_header(f"MemoryDB {self.names.memorydb_cluster}")

        def per_node(name: str, stat: str = "MAX") -> cw.MathExpression:
            # Metrics Insights: the worst node of the cluster, whatever its nodes are called.
            return cw.MathExpression(
                expression=(f"SELECT {stat}({name}) FROM SCHEMA(\"AWS/MemoryDB\", ClusterName, NodeName) "
                            f"WHERE ClusterName = '{self.names.memorydb_cluster}'"),
                label=name,
                period=self.period,
            )

        cpu, memory, lag = per_node("EngineCPUUtilization"), per_node("DatabaseMemoryUsagePercentage"), per_node(
            "ReplicationLag")
        alarms = [
            self.alarm("memorydb-cpu", metric=cpu, threshold=settings.memorydb_cpu_percent, comparison=GT,
                       evaluation_periods=3,
                       runbook=f"A MemoryDB node's engine CPU is above {settings.memorydb_cpu_percent:.0f}% for 3 "
                       "periods: reads and the feature writer slow down. Look for a hot shard or key; add shards."),
            self.alarm("memorydb-memory", metric=memory, threshold=settings.memorydb_memory_percent, comparison=GT,
                       evaluation_periods=3,
                       runbook=f"A MemoryDB node uses more than {settings.memorydb_memory_percent:.0f}% of its "
                       "memory: check key TTLs (dedupe, impressions, snapshots) and scale the node type or shards."),
            self.alarm("memorydb-replication-lag", metric=lag, threshold=settings.memorydb_replication_lag_s,
                       comparison=GT, evaluation_periods=3,
                       runbook=f"A MemoryDB replica lags more than {settings.memorydb_replication_lag_s:.0f} s: "
                       "reads from it are stale. Check the primary's CPU and network; a failover may follow."),
        ]
        self.row(
            self.graph("CPU (%)", [cpu, per_node("CPUUtilization")], alarms=alarms[:1], width=6),
            self.graph("Memory used (%)", [memory], alarms=alarms[1:2], width=6),
            self.graph("Connections", [per_node("CurrConnections", "SUM")], width=6),
            self.graph("Replication lag (s)", [lag], alarms=alarms[2:], width=6),
        )

    def _firehose(self) -> None:
        settings = self.settings
        stream = self.names.firehose_stream
        self.facade.monitor_kinesis_firehose(
            delivery_stream_name=stream, human_readable_name=f"Firehose {stream}: records in, throttles",
            alarm_friendly_name="firehose",
        )
        dims = {"DeliveryStreamName": stream}
        freshness = self.aws_metric("AWS/Firehose", "DeliveryToS3.DataFreshness", dims, "Maximum", "freshness (s)")
        stale = self.alarm(
            "firehose-freshness",
            metric=freshness,
            threshold=settings.firehose_freshness_s,
            comparison=GT,
            evaluation_periods=2,
            runbook=f"The oldest record in {stream} is older than {settings.firehose_freshness_s} s: delivery to "
            "the lake is stuck. Check DeliveryToS3.Success, the transform Lambda's errors, and the lake bucket's KMS "
            "key policy.",
        )
        self.row(
            self.graph("Firehose: delivery freshness (s)", [freshness], alarms=[stale]),
            self.graph("Firehose: delivery success (1 = all)", [
                self.aws_metric("AWS/Firehose", "DeliveryToS3.Success", dims, "Average", "S3 success")]),
            self.graph("Firehose transform: records dropped / failed", [
                self.ours("LakeRecordsDropped", service=FIREHOSE_TRANSFORM, label="dropped"),
                self.ours("LakeRecordsFailed", service=FIREHOSE_TRANSFORM, label="failed"),
            ]),
        )

    def _pipelines(self) -> None:
        settings = self.settings
        prefix = self.config.prefix
        for name, friendly, what in (
            (self.names.state_machine, "daily-pipeline", "the daily pipeline (batch features -> training -> deploy)"),
            (self.names.monitoring_jobs_state_machine, "monitoring-jobs", "a monitoring job (drift, A/B, showcase)"),
        ):
            self.facade.monitor_step_function(
                state_machine=sfn.StateMachine.from_state_machine_name(self, f"StateMachine-{friendly}", name),
                human_readable_name=f"Step Functions {name}: executions, failures, duration",
                alarm_friendly_name=friendly,
                add_failed_execution_count_alarm={"Critical": ErrorCountThreshold(
                    max_error_count=settings.failed_executions - 1, **ONE_PERIOD,
                    alarm_description_override=(
                        f"An execution of {what} failed. Open the failed execution in the Step Functions console: "
                        f"the failed state and its error name the step; rerun it after the fix. {RUNBOOK}"),
                )},
            )

        # SageMaker publishes no failure-count metric for jobs; a rule matching the failure events counts them.
        failures = []
        for kind, detail_type in (("processing", "Processing"), ("training", "Training")):
            rule_name = f"{prefix}-failed-{kind}-jobs"
            events.Rule(
                self,
                f"Failed{detail_type}Jobs",
                rule_name=rule_name,
                description=f"Failed SageMaker {kind} jobs of {prefix} (counted for the dashboard and an alarm)",
                event_pattern=events.EventPattern(
                    source=["aws.sagemaker"],
                    detail_type=[f"SageMaker {detail_type} Job State Change"],
                    detail={
                        f"{detail_type}JobStatus": ["Failed"],
                        f"{detail_type}JobName": [{"prefix": f"{prefix}-"}],
                    },
                ),
            )
            metric = self.aws_metric("AWS/Events", "MatchedEvents", {"RuleName": rule_name}, "Sum",
                                     f"failed {kind} jobs")
            failures.append(self.alarm(
                f"failed-{kind}-jobs",
                metric=metric,
                threshold=settings.failed_jobs,
                runbook=f"A SageMaker {kind} job named {prefix}-* failed. Its FailureReason (console or "
                f"describe-{kind}-job) and its CloudWatch log stream /aws/sagemaker/{detail_type}Jobs say why.",
            ))
        self.row(
            self.graph("Processing / training job failures", [alarm.metric for alarm in failures], alarms=failures[:1]),
            # Published without dimensions by the pipeline's failure path (a putMetricData task, stacks/pipeline.py).
            self.graph("Daily pipeline: failures reported by its failure path",
                       [self.ours("PipelineFailures", label="pipeline failures")]),
        )

    def _endpoint(self) -> None:
        endpoint = self.names.endpoint
        # The per-variant alarms are the serving stack's (config.serving.alarms); their thresholds are drawn here.
        serving_alarms = self.config.serving.alarms
        self.facade.add_medium_header(f"SageMaker endpoint {endpoint}, per production variant (alarms: "
                                      f"{self.config.prefix}-serving)")

        def per_variant(namespace: str, name: str, stat: str) -> list[cw.Metric]:
            return [self.aws_metric(namespace, name, {"EndpointName": endpoint, "VariantName": variant}, stat, variant)
                    for variant in VARIANTS]

        self.row(
            self.graph("Invocations", per_variant("AWS/SageMaker", "Invocations", "Sum"), width=6),
            # ModelLatency is in microseconds.
            self.graph("ModelLatency p99 (µs)", per_variant("AWS/SageMaker", "ModelLatency", "p99"), width=6,
                       lines=[serving_alarms.model_latency_p99_ms * 1000]),
            self.graph("Invocation 5xx", per_variant("AWS/SageMaker", "Invocation5XXErrors", "Sum"), width=6,
                       lines=[serving_alarms.errors_5xx]),
            # One CPUUtilization data point per instance and minute: the sample count is the instance count.
            self.graph("Instances", [
                cw.Metric(namespace="/aws/sagemaker/Endpoints", metric_name="CPUUtilization",
                          dimensions_map={"EndpointName": endpoint, "VariantName": variant},
                          statistic="SampleCount", period=Duration.minutes(1), label=variant)
                for variant in VARIANTS], width=6),
        )

    def _drift(self) -> None:
        drift = self.config.monitoring.drift
        self.facade.add_medium_header(f"Drift (job: {drift.schedule}) - served features vs the training baseline")
        drifted = self.ours("DriftedFeatures", stat="Maximum", label="features in alarm")
        prediction_psi = self.ours("PredictionDriftPSI", stat="Maximum", label="prediction PSI")
        prior_shift = self.ours("PredictionPriorShift", stat="Maximum", label="prior shift")
        rows = self.ours("DriftRowsCompared", stat="Maximum", label="rows compared")
        # The job runs every few hours: a data point stands for the schedule's period.
        long_period = Duration.hours(24)
        self.alarm("feature-drift", metric=drifted.with_(period=long_period), threshold=drift.drifted_features_alarm,
                   runbook=f"{drift.drifted_features_alarm}+ features drift (PSI >= {drift.psi_alarm} or KS D >= "
                   f"{drift.ks_alarm_statistic}). Open drift-latest.html in the reports; a jump in missing shares "
                   "points at the serving path, not the world.")
        self.alarm("prediction-drift", metric=prediction_psi.with_(period=long_period), threshold=drift.psi_alarm,
                   runbook=f"The predicted scores' PSI is >= {drift.psi_alarm}. Check feature drift first, then "
                   "whether a new model went out without a new baseline.")
        self.alarm("prior-shift",
                   metric=cw.MathExpression(expression="ABS(s)", using_metrics={"s": prior_shift},
                                            label="|prior shift|", period=long_period),
                   threshold=drift.prior_shift_alarm,
                   runbook=f"Mean served prediction is {drift.prior_shift_alarm:.0%}+ off the training positive "
                   "rate. With no feature drift, suspect the deployed model's calibration.")
        self.alarm("drift-input-missing", metric=rows.with_(period=long_period), threshold=drift.min_samples,
                   comparison=LT, missing=cw.TreatMissingData.BREACHING,
                   runbook=f"The drift job compared fewer than {drift.min_samples} served rows in a day, or did not "
                   "run: the scored-row log is not arriving or the job fails (monitoring-jobs state machine).")
        self.row(
            self.graph("Feature PSI (per feature)", [self.search("FeatureDriftPSI", "Maximum", "")]),
            self.graph("Feature KS D (per feature)", [self.search("FeatureDriftKS", "Maximum", "")]),
            self.graph("Features in alarm; prediction PSI, KS, prior shift", [drifted], right=[
                prediction_psi, self.ours("PredictionDriftKS", stat="Maximum", label="prediction KS D"), prior_shift,
            ]),
        )

    def _ab(self) -> None:
        ab = self.config.monitoring.ab
        self.facade.add_medium_header(f"A/B (job: {ab.schedule}) - control {ab.control_variant}")

        def per_variant(name: str, stat: str = "Maximum") -> list[cw.Metric]:
            return [self.ours(name, stat=stat, label=variant, Variant=variant) for variant in VARIANTS]

        self.alarm("ab-sample-ratio-mismatch", metric=self.ours("ABSampleRatioMismatch", stat="Maximum"), threshold=1,
                   runbook="The traffic split does not match the variant weights: no A/B result can be trusted and "
                   "promotion is blocked. Compare ABUsers per variant with the weights and the endpoint's "
                   "invocations per variant.")
        for variant in VARIANTS:
            self.alarm(f"ab-guardrail-{variant}",
                       metric=self.ours("ABGuardrailBreaches", stat="Maximum", Variant=variant), threshold=1,
                       runbook=f"Variant {variant} breaches a guardrail (p99 above {ab.guardrail_p99_latency_ms:.0f} "
                       f"ms or degraded share above {ab.guardrail_degraded_rate:.0%}); promotion is blocked. Lower "
                       "its weight by hand if it is the challenger.")
        self.row(
            self.graph("CTR per variant", per_variant("ABCtr")),
            self.graph("CVR per variant", per_variant("ABCvr")),
            self.graph("Users per variant; SRM (1 = mismatch)", per_variant("ABUsers"),
                       right=[self.ours("ABSampleRatioMismatch", stat="Maximum", label="SRM")]),
        )
        self.row(
            self.graph("Always-valid p-value, challenger vs control (primary metric)", [
                self.ours("ABAlwaysValidPValue", stat="Minimum", label=CHALLENGER_VARIANT, Variant=CHALLENGER_VARIANT,
                          Metric=ab.primary_metric)]),
            self.graph("Guardrail breaches per variant", per_variant("ABGuardrailBreaches")),
            self.graph("Promotions applied", [self.ours("ABPromotions")]),
        )

    def _blender(self) -> None:
        settings, showcase = self.settings, self.config.monitoring.showcase
        self.facade.add_medium_header("Blender and showcase health")
        requests, degraded = self.ours("RecommendRequests", service=RECOMMEND), self.ours(
            "RecommendDegraded", service=RECOMMEND)
        degraded_rate = cw.MathExpression(expression="FILL(d, 0) / MAX([FILL(r, 0), 1])",
                                          using_metrics={"d": degraded, "r": requests}, label="degraded share",
                                          period=self.period)
        self.alarm(
            "recommend-degraded", metric=degraded_rate, threshold=settings.degraded_rate, comparison=GT,
            evaluation_periods=3,
            runbook=f"More than {settings.degraded_rate:.0%} of recommend responses are degraded (fallback ranking) "
            "for 3 periods. Check EndpointFallbacks and CircuitOpen, then the endpoint's latency and 5xx.")
        cap = self.ours("BoostCapExceeded", service=RECOMMEND)
        cap_alarm = self.alarm(
            "boost-cap-exceeded", metric=cap, threshold=settings.boost_cap_exceeded,
            runbook="More boosted titles than the showcase or shelf cap allows: the excess was dropped. Editors must "
            "re-check the boosted titles in the blender rules.")
        unchanged = self.ours("ShowcaseUnchangedShare", stat="Maximum", label="unchanged share")
        novelty = self.ours("ShowcaseDailyNovelty", stat="Minimum", label="daily novelty")
        day = Duration.hours(24)
        frozen = self.alarm(
            "showcase-frozen", metric=unchanged.with_(period=day), threshold=showcase.unchanged_share_alarm,
            comparison=GT,
            runbook=f"More than {showcase.unchanged_share_alarm:.0%} of users see exactly yesterday's showcase: the "
            "nightly rebuild probably did not run, or the blender's seed does not change with the date.")
        self.alarm(
            "showcase-stale", metric=novelty.with_(period=day), threshold=showcase.daily_novelty_alarm_below,
            comparison=LT,
            runbook=f"Fewer than {showcase.daily_novelty_alarm_below:.0%} of visible items are new since yesterday: "
            "candidate sources shrank, or boost and dedup rules pin the visible zone.")
        self.row(
            self.graph("Degraded responses, fallbacks, open circuit", [
                degraded, self.ours("EndpointFallbacks", service=RECOMMEND),
                self.ours("CircuitOpen", service=RECOMMEND)], right=[degraded_rate], width=6),
            self.graph("Boosts auto-disabled, boost cap exceeded", [
                self.ours("BoostsAutoDisabled", service=RECOMMEND), cap], alarms=[cap_alarm], width=6),
            self.graph("Unchanged showcases (share)", [unchanged], alarms=[frozen], width=6),
            self.graph("Daily novelty, weekly shelf change", [
                novelty, self.ours("ShowcaseWeeklyShelfChange", stat="Maximum", label="weekly shelf change")], width=6),
        )

    # --- jobs ------------------------------------------------------------------------------------------------------

    def _jobs(self, config: StageConfig, key: kms.IKey, network: NetworkStack,
              feature_store_endpoint: str) -> MonitoringJobs:
        names, monitoring, jobs = config.names, config.monitoring, config.monitoring.jobs
        lake, artifacts = names.bucket("lake", Aws.ACCOUNT_ID), names.bucket("artifacts", Aws.ACCOUNT_ID)
        reports = f"s3://{artifacts}/{jobs.reports_prefix}"
        common = ["--stage", config.stage, "--cloudwatch"]
        schedules = [
            JobSchedule(
                job="drift",
                expression=monitoring.drift.schedule,
                description="Feature and prediction drift of the served rows against the model's training baseline",
                arguments=[*common, "drift", "--baseline", f"s3://{artifacts}/{jobs.drift_baseline_key}",
                           "--served", f"s3://{lake}/{jobs.served_rows_prefix}/", "--report", f"{reports}/drift"],
            ),
            JobSchedule(
                job="ab",
                expression=monitoring.ab.schedule,
                description="A/B analysis of the endpoint's variants and, when config allows, promotion",
                arguments=[*common, "ab", "--exposures", f"s3://{lake}/{EVENTS_PREFIX}/",
                           "--outcomes", f"s3://{lake}/{EVENTS_PREFIX}/", "--report", f"{reports}/ab",
                           "--endpoint", names.endpoint,
                           "--variants", ",".join(f"{variant}={variant}" for variant in VARIANTS),
                           "--decision-log", f"s3://{artifacts}/{jobs.promotions_prefix}"],
            ),
            JobSchedule(
                job="showcase",
                expression=monitoring.showcase.schedule,
                description="Daily showcase health: unchanged showcases, novelty, weekly shelf change",
                arguments=[*common, "showcase", "--report", f"{reports}/showcase"],
            ),
        ]
        secret_arn = self._arn("secretsmanager", f"secret:{names.memorydb_secret}")
        job_runner = MonitoringJobs(
            self,
            "Jobs",
            config=config,
            key=key,
            placement=VpcPlacement(vpc=network.vpc, subnets=network.app_subnets,
                                   security_group=network.lambda_security_group),
            environment=client_environment(feature_store_endpoint, config.memorydb.port, secret_arn),
            schedules=schedules,
        )
        self._grant_job_data(job_runner.role, lake=lake, artifacts=artifacts, secret_arn=secret_arn)
        return job_runner

    def _grant_job_data(self, role: iam.IRole, *, lake: str, artifacts: str, secret_arn: str) -> None:
        jobs = self.config.monitoring.jobs
        s3 = f"arn:{Aws.PARTITION}:s3:::"
        reads = [f"{s3}{lake}/{prefix}/*" for prefix in (jobs.served_rows_prefix, EVENTS_PREFIX)]
        reads.append(f"{s3}{artifacts}/{jobs.drift_baseline_key}")
        writes = [f"{s3}{artifacts}/{jobs.reports_prefix}/*", f"{s3}{artifacts}/{jobs.promotions_prefix}/*"]
        role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=reads + writes))
        role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=writes))
        role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:ListBucket"],
                                                         resources=[f"{s3}{lake}", f"{s3}{artifacts}"]))
        # Secrets Manager appends 6 random characters to a secret's ARN.
        role.add_to_principal_policy(iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"],
                                                         resources=[f"{secret_arn}-??????"]))
        policy = role.node.find_child("DefaultPolicy").node.default_child
        for bucket, prefix in [("lake", prefix) for prefix in (jobs.served_rows_prefix, EVENTS_PREFIX)] + [
                ("artifacts", prefix) for prefix in (jobs.reports_prefix, jobs.promotions_prefix)]:
            bucket_name = self.names.bucket(bucket, "<AWS::AccountId>")
            acknowledge(
                policy,
                f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::{bucket_name}/{prefix}/*]",
                "The jobs read (or write) every object under this one prefix: the scored rows and the lake's events "
                "(impressions included) arrive as new time-partitioned files; reports and promotion records are new "
                "files per run.",
            )
        endpoint_arn = self._arn("sagemaker", f"endpoint/{self.names.endpoint}")
        role.add_to_principal_policy(iam.PolicyStatement(
            actions=["sagemaker:DescribeEndpoint", "sagemaker:UpdateEndpointWeightsAndCapacities"],
            resources=[endpoint_arn]))

    def _arn(self, service: str, resource: str) -> str:
        return f"arn:{Aws.PARTITION}:{service}:{Aws.REGION}:{Aws.ACCOUNT_ID}:{resource}"


def _threshold(alarm: cw.Alarm) -> float:
    return alarm.node.default_child.threshold


_COMPARISONS = {
    "GreaterThanThreshold": ">",
    "GreaterThanOrEqualToThreshold": ">=",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
}


def _alarm_metric(props: dict[str, Any]) -> str:
    if "MetricName" in props:
        statistic = props.get("Statistic") or props.get("ExtendedStatistic")
        return f"{props['Namespace']} {props['MetricName']} ({statistic})"
    parts = []
    for query in props["Metrics"]:
        if "Expression" in query:
            parts.insert(0, query["Expression"])
        else:
            stat = query["MetricStat"]
            parts.append(f"{stat['Metric']['Namespace']} {stat['Metric']['MetricName']} ({stat['Stat']})")
    return "; ".join(parts)


def alarm_table(template: dict[str, Any], prefix: str) -> str:
    """The monitoring stack's alarms as the Markdown table docs/monitoring.md carries (a test keeps them equal)."""
    rows = []
    for resource in template["Resources"].values():
        props = resource["Properties"]
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            condition = (f"{_COMPARISONS[props['ComparisonOperator']]} {props['Threshold']:g} for "
                         f"{props['EvaluationPeriods']} x {_period(props)}")
            metric = _alarm_metric(props)
        elif resource["Type"] == "AWS::CloudWatch::CompositeAlarm":
            condition, metric = "any child in ALARM", "the two `*-availability` alarms"
        else:
            continue
        pages = "yes" if props.get("AlarmActions") else "via the SLO alarm"
        what = props["AlarmDescription"].replace(f" {RUNBOOK}", "")
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            metric = f"`{metric}`"
        cells = [f"`{props['AlarmName'].removeprefix(prefix)}`", metric, condition, pages, what]
        rows.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    header = ["| alarm | metric | condition | pages on-call | what to check |", "| --- | --- | --- | --- | --- |"]
    return "\n".join(header + sorted(rows))


def _period(props: dict[str, Any]) -> str:
    periods = [query.get("MetricStat", {}).get("Period") or query.get("Period") for query in props.get("Metrics", [])]
    seconds = props.get("Period") or next(period for period in periods if period)
    return f"{seconds // 3600} h" if seconds % 3600 == 0 else f"{seconds // 60} min"


if __name__ == "__main__":
    import json
    import sys

    if len(sys.argv) != 3:
        print("usage: python -m stacks.monitoring <monitoring template.json> <stack prefix, e.g. recsys-dev->",
              file=sys.stderr)
        raise SystemExit(2)
    print(alarm_table(json.loads(open(sys.argv[1]).read()), sys.argv[2]))
