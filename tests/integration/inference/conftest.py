"""A small bundle trained the way `make demo` trains one, and the inference server serving it as a process."""

from __future__ import annotations

import pytest

from containers.inference.server import start_local_server


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory):
    from recsys.datasets.synthetic import generate

    data = tmp_path_factory.mktemp("inference-data")
    generate(data, n_users=200, n_items=100, n_events=8_000, days=14, seed=2)
    return data


@pytest.fixture(scope="session")
def model_dir(synthetic_dataset, tmp_path_factory):
    from recsys.evaluation.pipeline import EvalConfig, train_model

    out = tmp_path_factory.mktemp("model")
    config = EvalConfig(ease_l2_grid=(50.0,), negatives_per_user=30, positive_event_types=("like", "purchase"))
    train_model(synthetic_dataset, out, config=config)
    return out


@pytest.fixture(scope="session")
def server(model_dir):
    url, stop = start_local_server(model_dir, workers=2)
    yield url
    stop()
