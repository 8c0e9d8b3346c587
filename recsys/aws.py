"""The one place where AWS clients are built.

Where the clients point:
- `AWS_ENDPOINT_URL` set: every service goes to that endpoint (the local moto
  server, or any other emulator);
- `RECSYS_AWS_TARGET=localstack`: the `localstack-client` package resolves the
  LocalStack edge endpoint (`LOCALSTACK_HOST`, default localhost:4566);
- neither: real AWS, with the usual credential chain.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import boto3
from botocore.config import Config

_RETRIES = {"max_attempts": 5, "mode": "adaptive"}


def _target() -> tuple[str | None, str]:
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    if os.environ.get("RECSYS_AWS_TARGET") == "localstack":
        from localstack_client.config import get_service_endpoint

        return get_service_endpoint("s3").rsplit("/", 0)[0], region
    return os.environ.get("AWS_ENDPOINT_URL") or None, region


@lru_cache(maxsize=None)
def _client(service: str, endpoint: str | None, region: str, connect_timeout: float, read_timeout: float) -> Any:
    config = Config(retries=_RETRIES, connect_timeout=connect_timeout, read_timeout=read_timeout)
    return boto3.session.Session().client(service, endpoint_url=endpoint, region_name=region, config=config)


def client(service: str, *, connect_timeout: float = 2.0, read_timeout: float = 10.0) -> Any:
    """A cached boto3 client for `service`, pointed at the configured target."""
    endpoint, region = _target()
    return _client(service, endpoint, region, connect_timeout, read_timeout)


def reset_clients() -> None:
    """Forget cached clients, e.g. after the endpoint changed."""
    _client.cache_clear()
