"""Shared by the dataset tests: small CSV writers, a tiny-minimum config, a small synthetic dataset."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pytest

from recsys.config import DatasetImportConfig
from recsys.datasets.synthetic import generate

# For tests about other things than the minimum: any non-empty dataset is enough.
NO_MINIMUM = DatasetImportConfig(min_users=1, min_items=1, min_interactions=1)
INTERACTION_HEADER = ["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"]
T0 = 1_700_000_000  # 2023-11-14T22:13:20Z


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def interactions(folder: Path, rows: Sequence[Sequence[object]], header: Sequence[str] = INTERACTION_HEADER) -> Path:
    """Write folder/interactions.csv; the folder."""
    write_csv(folder / "interactions.csv", header, rows)
    return folder


def good_rows(n: int = 10) -> list[list[object]]:
    return [[f"u{i % 4}", f"i{i % 3}", T0 + 3600 * i, "click", ""] for i in range(n)]


def files_under(root: Path) -> dict[str, bytes]:
    """Every file under root (relative path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset above Personalize's minimum (120 users, 80 items, 4,000 interactions)."""
    out = tmp_path_factory.mktemp("synthetic-small")
    generate(out, n_users=120, n_items=80, n_events=4_000, days=14, seed=3)
    return out
