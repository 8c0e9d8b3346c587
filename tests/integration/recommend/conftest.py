"""One tiny bundle trained once per session, the inference server serving it as a process, and the recommend API
over the local platform (real Valkey, moto) with the dataset's catalog and some users' events in the store."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from containers.inference.server import start_local_server
from recsys.events import Event

# The synthetic dataset's last day (DEFAULT_END_TIME of recsys.datasets.synthetic is fixed): requests are made then.
USERS = ("u0000001", "u0000002", "u0000003")


@pytest.fixture(scope="session")
def rec_dataset(tmp_path_factory) -> Path:
    from recsys.datasets.synthetic import generate

    data = tmp_path_factory.mktemp("recommend-data")
    generate(data, n_users=200, n_items=100, n_events=8_000, days=14, seed=2)
    return data


@pytest.fixture(scope="session")
def rec_model_dir(rec_dataset, tmp_path_factory) -> Path:
    from recsys.evaluation.pipeline import EvalConfig, train_model

    out = tmp_path_factory.mktemp("recommend-model")
    config = EvalConfig(ease_l2_grid=(50.0,), negatives_per_user=30, positive_event_types=("like", "purchase"))
    train_model(rec_dataset, out, config=config)
    return out


@pytest.fixture(scope="session")
def scoring_url(rec_model_dir):
    url, stop = start_local_server(rec_model_dir, workers=1)
    yield url
    stop()


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="session")
def dataset_end(rec_dataset) -> float:
    return max(float(row["TIMESTAMP"]) for row in _rows(rec_dataset / "interactions.csv")) + 60.0


@pytest.fixture
def loaded_store(redis_client, rec_dataset, stage_config):
    """The catalog and the events of a few users, written by the real feature writer into Valkey."""
    from recsys.features import FeatureWriter, ItemCatalog

    items = [{k: v for k, v in row.items() if v not in ("", None)} for row in _rows(rec_dataset / "items.csv")]
    ItemCatalog(redis_client, stage_config.pit_features).upsert_items(items)
    events = [
        Event(event_id=f"e{n}", user_id=row["USER_ID"], event_type=row["EVENT_TYPE"], timestamp=float(row["TIMESTAMP"]),
              item_id=row["ITEM_ID"], event_value=float(row["EVENT_VALUE"]) if row["EVENT_VALUE"] else None)
        for n, row in enumerate(_rows(rec_dataset / "interactions.csv")) if row["USER_ID"] in USERS
    ]
    FeatureWriter(redis_client, stage_config.pit_features).apply(events)
    return redis_client


def read_impressions(queue_url: str, expected: int) -> list[dict]:
    """The impression events that reached the feature writer's queue (SNS -> SQS, raw delivery): `expected` of them
    within the deadline, or (0) none within a second."""
    from tests.delivery import receive

    found = [json.loads(m["Body"]) for m in receive(queue_url, expected, settle_s=1.0 if expected == 0 else 0.5)]
    return [event for event in found if event["event_type"] == "impression"]
