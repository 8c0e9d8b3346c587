"""The one place where AWS clients are built.

Where a client for `service` points, first match wins:
1. `AWS_ENDPOINT_URL_<SERVICE>` (botocore's own per-service variable, e.g. `AWS_ENDPOINT_URL_SAGEMAKER`,
   `AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`): that endpoint, whatever the target. The LocalStack test tier sends
   the services LocalStack community lacks (SageMaker, MemoryDB, Glue, ECR) to moto this way.
2. `RECSYS_AWS_TARGET=localstack`: LocalStack's edge endpoint, from `LOCALSTACK_HOST` (host:port, default
   localhost:4566, parsed by the `localstack-client` package) and `USE_SSL`. `AWS_ENDPOINT_URL` is *not*
   consulted: it may still name another stand-in, and the target was asked for by name.
3. `AWS_ENDPOINT_URL`: every service at that endpoint (the moto server `make demo` / `make up` start).
4. Real AWS, with the usual credential chain.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

MAX_ATTEMPTS = 5
DEFAULT_READ_TIMEOUT_S = 10.0
# Services whose calls may take longer than the default to answer: a PutMetricData of 1,000 datums (the API's
# limit, recsys.monitoring.metrics) takes LocalStack over 10 s.
READ_TIMEOUTS_S = {"cloudwatch": 60.0}
TARGET_VARIABLE = "RECSYS_AWS_TARGET"
LOCALSTACK = "localstack"
DEFAULT_LOCALSTACK_HOST = "localhost:4566"


class TargetError(ValueError):
    """The environment names no target this module knows."""


@lru_cache(maxsize=None)
def service_variable(service: str) -> str:
    """botocore's per-service endpoint variable of a client name: `AWS_ENDPOINT_URL_` + the service id in upper
    snake case (`stepfunctions` -> `AWS_ENDPOINT_URL_SFN`, `logs` -> `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`)."""
    service_id = boto3.session.Session()._session.get_service_model(service).service_id
    return "AWS_ENDPOINT_URL_" + str(service_id).replace(" ", "_").replace("-", "_").upper()


def localstack_endpoint() -> str:
    from localstack_client.config import parse_localstack_host

    host, port = parse_localstack_host(os.environ.get("LOCALSTACK_HOST") or DEFAULT_LOCALSTACK_HOST)
    scheme = "https" if os.environ.get("USE_SSL", "").lower() in ("1", "true") else "http"
    return f"{scheme}://{host}:{port}"


def target() -> str:
    """`localstack`, `endpoint` (AWS_ENDPOINT_URL) or `aws`."""
    named = os.environ.get(TARGET_VARIABLE, "").strip()
    if named == LOCALSTACK:
        return LOCALSTACK
    if named:
        raise TargetError(f"{TARGET_VARIABLE}: expected {LOCALSTACK!r} or unset, got {named!r}")
    return "endpoint" if os.environ.get("AWS_ENDPOINT_URL") else "aws"


def endpoint_for(service: str) -> str | None:
    """The endpoint URL `service` clients use, or None for real AWS."""
    override = os.environ.get(service_variable(service))
    if override:
        return override
    where = target()
    if where == LOCALSTACK:
        return localstack_endpoint()
    return os.environ.get("AWS_ENDPOINT_URL") if where == "endpoint" else None


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@lru_cache(maxsize=None)
def _client(service: str, endpoint: str | None, region_name: str, connect_timeout: float, read_timeout: float,
            max_attempts: int) -> Any:
    config = Config(retries={"max_attempts": max_attempts, "mode": "adaptive"}, connect_timeout=connect_timeout,
                    read_timeout=read_timeout)
    return boto3.session.Session().client(service, endpoint_url=endpoint, region_name=region_name, config=config)


def client(service: str, *, connect_timeout: float = 2.0, read_timeout: float | None = None,
           max_attempts: int = MAX_ATTEMPTS) -> Any:
    """A cached boto3 client for `service`, pointed at the configured target. A request path that must not wait
    on a stalled service passes short timeouts and fewer attempts; `read_timeout` defaults to the service's entry
    in READ_TIMEOUTS_S, else DEFAULT_READ_TIMEOUT_S."""
    timeout = read_timeout if read_timeout is not None else READ_TIMEOUTS_S.get(service, DEFAULT_READ_TIMEOUT_S)
    return _client(service, endpoint_for(service), region(), connect_timeout, timeout, max_attempts)


def account_id() -> str:
    """The account the target answers for: moto's 123456789012, LocalStack's 000000000000, or the caller's."""
    return client("sts").get_caller_identity()["Account"]


def reset_clients() -> None:
    """Forget cached clients, e.g. after the endpoint changed."""
    _client.cache_clear()
