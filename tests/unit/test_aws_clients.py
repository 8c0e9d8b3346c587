import pytest

from recsys import aws


@pytest.fixture(autouse=True)
def no_endpoints(monkeypatch):
    for name in ("RECSYS_AWS_TARGET", "AWS_ENDPOINT_URL", "LOCALSTACK_HOST", "USE_SSL", "AWS_ENDPOINT_URL_SAGEMAKER",
                 "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_SFN"):
        monkeypatch.delenv(name, raising=False)
    aws.reset_clients()
    yield
    aws.reset_clients()


def test_clients_honour_aws_endpoint_url(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4999")
    assert aws.client("sqs").meta.endpoint_url == "http://127.0.0.1:4999"
    assert aws.client("sqs") is aws.client("sqs")  # built once


def test_real_aws_when_no_endpoint(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert aws.target() == "aws"
    assert aws.client("s3").meta.endpoint_url.startswith("https://")
    assert aws.client("s3").meta.region_name == "eu-west-1"


def test_localstack_target_uses_localstack_host(monkeypatch):
    monkeypatch.setenv("RECSYS_AWS_TARGET", "localstack")
    monkeypatch.setenv("LOCALSTACK_HOST", "localhost.localstack.cloud:4566")
    assert aws.client("sns").meta.endpoint_url == "http://localhost.localstack.cloud:4566"


def test_localstack_target_is_not_overridden_by_aws_endpoint_url(monkeypatch):
    """The fixtures of the moto tier set AWS_ENDPOINT_URL; naming LocalStack must still reach LocalStack."""
    monkeypatch.setenv("RECSYS_AWS_TARGET", "localstack")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    monkeypatch.setenv("LOCALSTACK_HOST", "127.0.0.1:4599")
    assert aws.endpoint_for("sqs") == "http://127.0.0.1:4599"


def test_localstack_default_host_and_ssl(monkeypatch):
    monkeypatch.setenv("RECSYS_AWS_TARGET", "localstack")
    assert aws.endpoint_for("s3") == "http://localhost:4566"
    monkeypatch.setenv("USE_SSL", "true")
    assert aws.endpoint_for("s3") == "https://localhost:4566"


@pytest.mark.parametrize("target", ["localstack", None])
def test_a_service_endpoint_variable_wins_over_the_target(monkeypatch, target):
    if target:
        monkeypatch.setenv("RECSYS_AWS_TARGET", target)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER", "http://127.0.0.1:5000")
    assert aws.client("sagemaker").meta.endpoint_url == "http://127.0.0.1:5000"
    assert aws.endpoint_for("sqs") == ("http://localhost:4566" if target else "http://127.0.0.1:4566")


@pytest.mark.parametrize(("service", "variable"), [
    ("sagemaker", "AWS_ENDPOINT_URL_SAGEMAKER"),
    ("sagemaker-runtime", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"),
    ("sagemaker-featurestore-runtime", "AWS_ENDPOINT_URL_SAGEMAKER_FEATURESTORE_RUNTIME"),
    ("stepfunctions", "AWS_ENDPOINT_URL_SFN"),
    ("logs", "AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"),
    ("application-autoscaling", "AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING"),
])
def test_service_variables_are_botocores(monkeypatch, service, variable):
    """The names botocore itself reads, so clients built outside recsys.aws follow the same routing."""
    assert aws.service_variable(service) == variable
    monkeypatch.setenv(variable, "http://127.0.0.1:5001")
    import boto3

    assert boto3.session.Session(region_name="us-east-1").client(service).meta.endpoint_url == "http://127.0.0.1:5001"


def test_an_unknown_target_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("RECSYS_AWS_TARGET", "moto")
    with pytest.raises(aws.TargetError, match="RECSYS_AWS_TARGET: expected 'localstack' or unset, got 'moto'"):
        aws.client("s3")


def test_cloudwatch_clients_wait_longer_for_an_answer(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4999")
    assert aws.client("cloudwatch").meta.config.read_timeout == aws.READ_TIMEOUTS_S["cloudwatch"] == 60.0
    assert aws.client("sqs").meta.config.read_timeout == aws.DEFAULT_READ_TIMEOUT_S
    assert aws.client("sqs", read_timeout=3.0).meta.config.read_timeout == 3.0
