from recsys import aws


def test_clients_honour_aws_endpoint_url(monkeypatch):
    monkeypatch.delenv("RECSYS_AWS_TARGET", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4999")
    aws.reset_clients()
    assert aws.client("sqs").meta.endpoint_url == "http://127.0.0.1:4999"
    assert aws.client("sqs") is aws.client("sqs")  # built once


def test_real_aws_when_no_endpoint(monkeypatch):
    monkeypatch.delenv("RECSYS_AWS_TARGET", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    aws.reset_clients()
    assert aws.client("s3").meta.endpoint_url.startswith("https://")
    assert aws.client("s3").meta.region_name == "eu-west-1"


def test_localstack_target_uses_the_localstack_client_endpoint(monkeypatch):
    monkeypatch.setenv("RECSYS_AWS_TARGET", "localstack")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("LOCALSTACK_HOST", "localhost.localstack.cloud:4566")
    aws.reset_clients()
    assert aws.client("sns").meta.endpoint_url == "http://localhost.localstack.cloud:4566"


def teardown_module():
    aws.reset_clients()
