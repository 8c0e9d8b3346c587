"""The local stand-ins: real moto and Valkey processes, resources from the stage config."""

import json

import pytest

from recsys import aws
from recsys.local.resources import create_resources, enforces_tls
from recsys.local.services import LocalPlatform, ServiceError, start_valkey
from tests.delivery import receive


def test_resources_follow_the_stage_config(local_resources, stage_config):
    sqs = aws.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=local_resources.feature_queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == local_resources.feature_dlq_arn
    assert int(redrive["maxReceiveCount"]) == stage_config.queue.max_receive_count
    assert int(attributes["VisibilityTimeout"]) == stage_config.feature_writer.visibility_timeout_s
    assert attributes["KmsMasterKeyId"] == local_resources.kms_key_arn

    subscriptions = aws.client("sns").list_subscriptions_by_topic(TopicArn=local_resources.events_topic_arn)
    (subscription,) = subscriptions["Subscriptions"]
    assert subscription["Endpoint"] == local_resources.feature_queue_arn
    sub_attributes = aws.client("sns").get_subscription_attributes(SubscriptionArn=subscription["SubscriptionArn"])
    assert sub_attributes["Attributes"]["RawMessageDelivery"] == "true"


def test_buckets_are_encrypted_private_and_reachable_over_the_local_plain_http_endpoint(local_resources):
    s3 = aws.client("s3")
    for bucket in local_resources.buckets.values():
        rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values())
        s3.put_object(Bucket=bucket, Key="probe", Body=b"x")  # an SSL-only policy would refuse this on moto
    logging = s3.get_bucket_logging(Bucket=local_resources.lake_bucket)["LoggingEnabled"]
    assert logging["TargetBucket"] == local_resources.buckets["access-logs"]


def test_ssl_only_policy_applies_to_tls_endpoints(monkeypatch):
    for name in ("RECSYS_AWS_TARGET", "AWS_ENDPOINT_URL_S3"):  # the LocalStack tier's routing
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://s3.example.test")
    assert enforces_tls()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    assert not enforces_tls()
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    assert enforces_tls()


def test_creating_resources_twice_converges(local_resources, stage_config):
    assert create_resources(stage_config) == local_resources
    queues = aws.client("sqs").list_queues(QueueNamePrefix=stage_config.prefix)["QueueUrls"]
    assert len(queues) == 2


def test_sns_to_sqs_delivers_the_raw_message(local_resources):
    aws.client("sns").publish(TopicArn=local_resources.events_topic_arn, Message='{"hello": "world"}')
    messages = receive(local_resources.feature_queue_url, 1, settle_s=0.5)
    assert [m["Body"] for m in messages] == ['{"hello": "world"}']


def test_valkey_is_a_real_server(redis_client):
    info = redis_client.info("server")
    assert int(str(info.get("valkey_version", info["redis_version"])).split(".")[0]) >= 7
    assert redis_client.eval("return redis.call('INCRBY', KEYS[1], ARGV[1])", 1, "k", 5) == 5


def test_platform_state_round_trip_and_stop(tmp_path):
    valkey = start_valkey(tmp_path)
    platform = LocalPlatform(moto=valkey, valkey=valkey)  # any live services do for the state file
    state = tmp_path / "platform.json"
    platform.save(state)
    assert LocalPlatform.load(state) is not None
    valkey.stop()
    assert not valkey.alive()
    assert LocalPlatform.load(state) is None


def test_a_missing_server_binary_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("RECSYS_VALKEY_SERVER", str(tmp_path / "no-such-valkey"))
    with pytest.raises((ServiceError, FileNotFoundError), match="no-such-valkey"):
        start_valkey(tmp_path)


# --- the local daily pipeline's control flow (the full run is in tests/e2e) ---------------------------------------


def _oncall_messages(resources) -> list[dict]:
    sqs = aws.client("sqs")
    url = sqs.create_queue(QueueName="oncall-probe")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    aws.client("sns").subscribe(TopicArn=resources.alarm_topic_arn, Protocol="sqs", Endpoint=arn)
    return url


def _received(url: str) -> list[dict]:
    """The one notification a test expects on the probe queue (and any that came with it)."""
    return [json.loads(m["Body"]) for m in receive(url, 1, settle_s=0.5)]


def test_a_failing_step_notifies_on_call_and_counts_a_pipeline_failure(local_resources, stage_config, local_platform,
                                                                       tmp_path):
    from recsys.local.daily import DailyRun, PipelineFailed, PipelineInputError, run_daily_pipeline
    from recsys.pipeline.steps import Step

    probe = _oncall_messages(local_resources)
    run = DailyRun(stage_config, local_resources, local_platform.valkey.url, tmp_path)
    with pytest.raises(PipelineFailed, match="failed at ValidateInput: PipelineInputError: lake: no events") as failed:
        run_daily_pipeline(run)
    assert failed.value.step is Step.VALIDATE_INPUT and isinstance(failed.value.cause, PipelineInputError)
    (envelope,) = _received(probe)
    assert envelope["Subject"] == "recsys-dev daily pipeline FAILED at ValidateInput"
    assert json.loads(envelope["Message"])["failed_step"] == "ValidateInput"
    metrics = aws.client("cloudwatch").list_metrics(Namespace=stage_config.names.metrics_namespace,
                                                    MetricName="PipelineFailures")["Metrics"]
    assert len(metrics) == 1


def test_validation_names_the_missing_label_horizon(local_resources, stage_config, local_platform, tmp_path):
    from recsys.local.daily import DailyRun, PipelineInputError, validate_input

    day = 86_400
    cutoff = 1_735_689_600.0  # 2025-01-01
    event = {"event_id": "e1", "user_id": "u1", "item_id": "i1", "event_type": "click", "timestamp": cutoff - 30 * day}
    aws.client("s3").put_object(Bucket=local_resources.lake_bucket, Key="events/event_date=2024-12-02/part.jsonl",
                                Body=json.dumps(event).encode())
    run = DailyRun(stage_config, local_resources, local_platform.valkey.url, tmp_path, cutoff=cutoff)
    with pytest.raises(PipelineInputError, match=r"no event partition in the label horizon \[2024-12-25, 2025-01-01\)"):
        validate_input(run)


def test_a_gate_rejection_skips_registration_and_deployment_and_says_why(local_resources, stage_config,
                                                                         local_platform, tmp_path, monkeypatch):
    from recsys.local import daily
    from recsys.pipeline.steps import PIPELINE_STEPS, Step

    champion_dir = tmp_path / "models" / "run-old"
    champion_dir.mkdir(parents=True)
    (champion_dir / "bundle.json").write_text("{}")
    champion = daily.Variant("champion", "bundle-old", str(champion_dir), 1.0,
                             {"ndcg": 0.30, "popularity_ndcg": 0.1, "auc": 0.8})
    (tmp_path / daily.DEPLOYMENT_FILE).write_text(json.dumps({"variants": [champion.record()]}))
    report = {"ranking": {"pipeline": {"@10": {"ndcg": 0.20}}, "popularity": {"@10": {"ndcg": 0.10}}},
              "classification": {"pctr": {"auc": 0.75}}}

    def evaluated(run):
        run.report, run.model_version = report, "bundle-new"
        return "canned report"

    # The data steps are the e2e test's business; here only the flow after them matters.
    for step in (Step.VALIDATE_INPUT, Step.BATCH_FEATURES, Step.INGEST_FEATURES, Step.BUILD_TRAINING_SET, Step.TRAIN):
        monkeypatch.setitem(daily.STEP_FUNCTIONS, step, lambda run: "not run here")
    monkeypatch.setitem(daily.STEP_FUNCTIONS, Step.EVALUATE, evaluated)
    probe = _oncall_messages(local_resources)
    run = daily.run_daily_pipeline(daily.DailyRun(stage_config, local_resources, local_platform.valkey.url, tmp_path))

    assert list(run.outcomes) == list(PIPELINE_STEPS)
    assert not run.decision.passed
    skipped = "skipped: the quality gate rejected the model"
    assert run.outcomes[Step.REGISTER_MODEL] == run.outcomes[Step.DEPLOY] == skipped
    assert run.endpoint is None and run.model_package_arn is None
    assert "33.3% below the champion's 0.3000" in run.outcomes[Step.QUALITY_GATE]
    (envelope,) = _received(probe)
    assert envelope["Subject"] == "recsys-dev daily pipeline: model rejected by the quality gate"
    assert json.loads(envelope["Message"])["gate"]["champion"]["ndcg"] == 0.30
    assert json.loads((tmp_path / daily.DEPLOYMENT_FILE).read_text())["variants"][0]["version"] == "bundle-old"


def test_step_lines_nest_and_say_what_was_skipped():
    import io

    from recsys.local.steps import StepPrinter

    out = io.StringIO()
    outer = StepPrinter(total=2, stream=out)
    with outer.step("Pipeline"):
        inner = outer.nested(total=2)
        with inner.step("Train"):
            inner.info("model v1")
        inner.skip("Deploy", "rejected")
    lines = out.getvalue().splitlines()
    assert lines[0] == "[1/2] Pipeline ..."
    assert lines[1] == "      [1/2] Train ..."
    assert lines[2] == "            model v1"
    assert lines[3].startswith("            done in ")
    assert lines[4] == "      [2/2] Deploy skipped: rejected"
    assert set(outer.timings) == {"Pipeline"} and set(inner.timings) == {"Train"}


def test_the_local_report_says_what_is_missing(tmp_path):
    from recsys.config import DriftMonitorConfig
    from recsys.local.report import LocalReport, drift_from_files, write_local_report

    drift = drift_from_files(tmp_path / "baseline.json", tmp_path / "served.jsonl", DriftMonitorConfig())
    assert drift == f"no drift baseline at {tmp_path / 'baseline.json'} (the daily pipeline's Train step writes it)"
    page = write_local_report(LocalReport(stage="dev", drift=drift), tmp_path / "report").read_text()
    for text in ("The daily pipeline did not run.", "No evaluation", "No events were replayed.", "no drift baseline",
                 "No A/B analysis.", "No latency figures"):
        assert text in page, text


def test_the_training_labels_follow_what_the_data_holds():
    import pandas as pd

    from recsys.local.daily import choose_labels

    with_clicks = pd.DataFrame({"label_click": [0, 1], "label_purchase": [0, 1]})
    ratings_only = pd.DataFrame({"label_click": [0, 0], "label_purchase": [0, 0]})
    clicks_no_purchases = pd.DataFrame({"label_click": [1, 0], "label_purchase": [0, 0]})
    assert choose_labels(with_clicks) == ("label_click", "label_purchase")
    assert choose_labels(ratings_only) == ("label_interaction", "label_engage")
    assert choose_labels(clicks_no_purchases) == ("label_click", "label_engage")


def test_the_blender_rules_parameter_holds_the_defaults_as_the_stack_creates_it(local_resources, stage_config):
    from recsys.blender.config import DEFAULT_CONFIG, BlenderConfig

    value = aws.client("ssm").get_parameter(Name=stage_config.names.blender_parameter)["Parameter"]["Value"]
    assert BlenderConfig.from_json(value) == DEFAULT_CONFIG
