"""The one place where AWS clients are built.

Where the clients point:
- `RECSYS_AWS_TARGET=localstack`: LocalStack, its edge endpoint resolved by the
  `localstack-client` package (`LOCALSTACK_HOST`, default localhost:4566);
- otherwise `AWS_ENDPOINT_URL` when set: every service goes to that endpoint
  (the local moto server that `make demo` / `make up` start);
- neither: real AWS, with the usual credential chain.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

MAX_ATTEMPTS = 5


def endpoint_for(service: str) -> str | None:
    """The endpoint URL `service` clients use, or None for real AWS."""
    if os.environ.get("RECSYS_AWS_TARGET") == "localstack":
        from localstack_client.config import get_service_endpoint

        return get_service_endpoint(service) or get_service_endpoint("edge")
    return os.environ.get("AWS_ENDPOINT_URL") or None


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@lru_cache(maxsize=None)
def _client(service: str, endpoint: str | None, region_name: str, connect_timeout: float, read_timeout: float,
            max_attempts: int) -> Any:
    config = Config(retries={"max_attempts": max_attempts, "mode": "adaptive"}, connect_timeout=connect_timeout,
                    read_timeout=read_timeout)
    return boto3.session.Session().client(service, endpoint_url=endpoint, region_name=region_name, config=config)


def client(service: str, *, connect_timeout: float = 2.0, read_timeout: float = 10.0,
           max_attempts: int = MAX_ATTEMPTS) -> Any:
    """A cached boto3 client for `service`, pointed at the configured target. A request path that must not wait
    on a stalled service passes short timeouts and fewer attempts."""
    return _client(service, endpoint_for(service), region(), connect_timeout, read_timeout, max_attempts)


def reset_clients() -> None:
    """Forget cached clients, e.g. after the endpoint changed."""
    _client.cache_clear()
