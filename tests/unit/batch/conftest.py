"""Shared, session-scoped results of the Spark feature functions on the tiny lake of lake_fixture.py.

Each table is computed once and collected; the tests then check values row by row, so the whole
batch test set costs a handful of Spark runs.
"""

from __future__ import annotations

import pytest

from recsys.config import BatchFeatureConfig
from tests.unit.batch.lake_fixture import CUTOFF, EVENTS, events_frame, items_frame, users_frame


@pytest.fixture(scope="session")
def batch_config() -> BatchFeatureConfig:
    return BatchFeatureConfig(qualified_session_minutes=5.0, negatives_per_positive=1, negative_pool_size=10)


@pytest.fixture(scope="session")
def frames(spark):
    """The fixture lake as the lake reader would return it (events include those at/after the cutoff)."""
    return events_frame(spark, EVENTS).cache(), users_frame(spark).cache(), items_frame(spark).cache()


@pytest.fixture(scope="session")
def user_table(frames, batch_config):
    from recsys.batch.spark_features import compute_user_features

    events, users, items = frames
    return compute_user_features(events, users, items, CUTOFF, batch_config).cache()


@pytest.fixture(scope="session")
def item_table(frames, batch_config):
    from recsys.batch.spark_features import compute_item_features

    events, _, items = frames
    return compute_item_features(events, items, CUTOFF, batch_config).cache()


def by_key(frame, *keys: str) -> dict:
    rows = [row.asDict() for row in frame.collect()]
    if len(keys) == 1:
        return {row[keys[0]]: row for row in rows}
    return {tuple(row[k] for k in keys): row for row in rows}


@pytest.fixture(scope="session")
def users_by_id(user_table) -> dict:
    return by_key(user_table, "user_id")


@pytest.fixture(scope="session")
def items_by_id(item_table) -> dict:
    return by_key(item_table, "item_id")
