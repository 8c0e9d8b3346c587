"""A small synthetic dataset with planted preferences (recsys.datasets.synthetic), fitted candidate models at T."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from recsys.models import Catalog, CandidateConfig, CandidateModels, Interactions


@dataclass
class Fitted:
    frames: dict[str, pd.DataFrame]
    catalog: Catalog
    interactions: Interactions
    cutoff: float
    models: CandidateModels


@pytest.fixture(scope="session")
def synthetic_fitted(tmp_path_factory) -> Fitted:
    from recsys.datasets.synthetic import generate

    out = tmp_path_factory.mktemp("synthetic-ranking")
    generate(out, n_users=300, n_items=150, n_events=15_000, days=20, seed=11)
    frames = {name: pd.read_csv(out / f"{name}.csv", dtype={"USER_ID": str, "ITEM_ID": str})
              for name in ("interactions", "items", "users")}
    catalog = Catalog.from_frame(frames["items"], frames["interactions"]["ITEM_ID"])
    interactions = Interactions.from_frame(frames["interactions"], catalog)
    cutoff = float(np.quantile(interactions.timestamp, 0.7))
    config = CandidateConfig().with_params({"ease": {"l2": 50.0}})
    models = CandidateModels.fit(catalog, interactions, cutoff, config)
    return Fitted(frames, catalog, interactions, cutoff, models)
