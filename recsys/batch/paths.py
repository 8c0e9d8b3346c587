"""Where the batch job's outputs live under an output root (a lake bucket or a folder). No Spark here, so the
pipeline's Lambdas, which lack it, plan runs with the same paths the job writes."""

from __future__ import annotations

from recsys.batch.window import cutoff_label
from recsys.events import FEATURES_PREFIX

TRAINING_PREFIX = "training"  # training/cutoff=<YYYYMMDDTHHMMSSZ>/*.parquet


def join_uri(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def feature_table_uri(output: str, table: str, snapshot_date: str) -> str:
    return join_uri(output, FEATURES_PREFIX, table, f"snapshot_date={snapshot_date}")


def training_set_uri(output: str, cutoff: float) -> str:
    return join_uri(output, TRAINING_PREFIX, f"cutoff={cutoff_label(cutoff)}")
