"""One synth of the whole CDK app per stage per test session, shared by every infra test.

The synth runs in-process, exactly as `app.py` builds the app (cdk-nag included: a finding fails the
fixture), with no AWS credentials or account in the environment. CDK's own CloudFormation schema check is
off here because `test_cdk_lint.py` runs cfn-lint, the stricter check, on every template.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

import pytest  # noqa: E402
from cdk_synth import Synth, synthesize  # noqa: E402


@pytest.fixture(scope="session")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("dev", tmp_path_factory.mktemp("cdk-dev"))


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return synthesize("prod", tmp_path_factory.mktemp("cdk-prod"))


@pytest.fixture(scope="session", params=["dev", "prod"])
def synth(request: pytest.FixtureRequest) -> Iterator[Synth]:
    """Each stage in turn, for checks that must hold in both."""
    yield request.getfixturevalue(request.param)
