"""Session-wide fixtures: one moto server and one Valkey server for the whole run.

`RECSYS_TEST_AWS=localstack` (`make test-localstack`) adds a LocalStack process and sends every AWS call to it but
those of the services LocalStack lacks (recsys.local.localstack.MOTO_SERVICES), which stay on moto.

Tests that use them get clean state: `aws` resets moto (and LocalStack), `redis_client` flushes
the database. Expensive things (the platform processes, a CDK synth, a Spark
session) are started once per session.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from recsys.config import StageConfig, load_stage
from recsys.local.services import LOCAL_CREDENTIALS, LocalPlatform

TEST_TARGETS = ("moto", "localstack")
TEST_TARGET = os.environ.get("RECSYS_TEST_AWS", "moto")
if TEST_TARGET not in TEST_TARGETS:
    raise pytest.UsageError(f"RECSYS_TEST_AWS: expected one of {', '.join(TEST_TARGETS)}, got {TEST_TARGET!r}")
# tests/localstack/ needs LocalStack: it is collected in the LocalStack tier only.
collect_ignore = [] if TEST_TARGET == "localstack" else ["localstack"]

# No test may reach real AWS: fake credentials unless a fixture points boto3 somewhere.
for _name, _value in LOCAL_CREDENTIALS.items():
    os.environ.setdefault(_name, _value)
os.environ.pop("AWS_PROFILE", None)


@pytest.fixture(scope="session")
def local_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    platform = LocalPlatform.start(tmp_path_factory.mktemp("services"), localstack=TEST_TARGET == "localstack")
    saved = {name: os.environ.get(name) for name in platform.env}
    platform.apply_env()
    yield platform
    platform.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def aws(local_platform: LocalPlatform) -> Iterator[LocalPlatform]:
    """The AWS stand-ins (moto, or LocalStack and moto) with no resources in them."""
    local_platform.reset_aws()
    yield local_platform


@pytest.fixture
def redis_client(local_platform: LocalPlatform):
    """A client of the real Valkey server, on an empty database."""
    import redis

    client = redis.Redis.from_url(local_platform.valkey.url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture(scope="session")
def stage_config() -> StageConfig:
    return load_stage("dev")


@pytest.fixture
def local_resources(aws: LocalPlatform, stage_config: StageConfig):
    """The platform's queues, topics and buckets, freshly created on moto."""
    from recsys.local.resources import create_resources

    return create_resources(stage_config)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole run (starting one costs seconds)."""
    from pyspark.sql import SparkSession

    # Python workers (UDFs, mapPartitions) must run this interpreter, not whatever `python3` is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]")
        .appName("recsys-tests")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    yield session
    session.stop()
