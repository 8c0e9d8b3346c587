"""Small hand-made catalogs and logs for the candidate-model tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys.models import Catalog, Interactions

DAY = 86_400.0
T0 = 1_700_000_000.0


def _frames(rows: list[tuple[str, str, float]], items: dict[str, dict] | None = None) -> tuple[Catalog, Interactions]:
    """(user, item, day offset) rows -> a catalog and an interaction log; items: ITEM_ID -> extra columns."""
    interactions = pd.DataFrame(
        [{"USER_ID": u, "ITEM_ID": i, "TIMESTAMP": T0 + d * DAY, "EVENT_TYPE": "click"} for u, i, d in rows])
    item_frame = None
    if items:
        item_frame = pd.DataFrame([{"ITEM_ID": k, **v} for k, v in items.items()])
    catalog = Catalog.from_frame(item_frame, interactions["ITEM_ID"])
    return catalog, Interactions.from_frame(interactions, catalog)


@pytest.fixture(scope="session")
def make_log():
    """The builder of small logs: make_log([(user, item, day), ...], {item: {column: value}})."""
    return _frames


@pytest.fixture(scope="module")
def clustered():
    """Two user groups with disjoint tastes (items a* and b*), plus a popular item p liked by everyone.

    Users g1_k interact with a0..a4 and p; users g2_k with b0..b4 and p, on days 0..9.
    """
    rng = np.random.default_rng(1)
    rows = []
    metadata = {}
    for group, prefix, genre in (("g1", "a", "Comedy"), ("g2", "b", "Drama")):
        for i in range(5):
            metadata[f"{prefix}{i}"] = {"GENRES": genre, "CREATOR": f"creator-{prefix}", "CREATION_TIMESTAMP": T0}
        for k in range(30):
            chosen = rng.choice(5, size=3, replace=False)
            for j, i in enumerate(chosen):
                rows.append((f"{group}_{k}", f"{prefix}{i}", float(rng.integers(0, 10)) + j * 0.01))
            rows.append((f"{group}_{k}", "p", float(rng.integers(0, 10))))
    metadata["p"] = {"GENRES": "Comedy|Drama", "CREATOR": "creator-p", "CREATION_TIMESTAMP": T0 + 9 * DAY}
    metadata["cold"] = {"GENRES": "Comedy", "CREATOR": "creator-a", "CREATION_TIMESTAMP": T0 + 9.5 * DAY}
    return _frames(rows, metadata)
