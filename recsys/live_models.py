"""The bootstrap model: what the ranker endpoint and the recommend API serve before the daily pipeline has trained
one, so that the first `cdk deploy --all` into an empty account needs no hand step.

The serving stack's Models read each variant's live key (`ServingConfig.live_model_key`), which the daily pipeline
overwrites with every model it deploys. On a fresh account nothing is there yet, and SageMaker cannot create an
endpoint without its model data. So the stack ships `bootstrap_bundle()` (built at synth, no data, no AWS call)
and, at deploy time, copies it to every live key that is still empty (`seed_missing`): a key the pipeline wrote is
never touched, so a later deploy never rolls a trained model back.

The bootstrap bundle has the regular layout (recsys.ranking.bundle) with an empty catalog (the popularity channel
fitted on no interactions) and rankers whose heads are constants: the endpoint answers /ping and scores any row of
the full feature schema (every score 0), and the recommend API returns empty lists until the first trained model
replaces it. `metrics["bootstrap"]` marks it for the model lifecycle (a trained model should replace it outright).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

BOOTSTRAP_METRIC = "bootstrap"


def bootstrap_bundle(directory: Path | str) -> Path:
    """Write the bootstrap bundle into `directory`; returns its bundle.json."""
    import numpy as np
    import pandas as pd

    from recsys.models.bundle import CandidateConfig, CandidateModels
    from recsys.models.data import Catalog, Interactions
    from recsys.ranking.bundle import ModelBundle
    from recsys.ranking.features import FeatureSchema
    from recsys.ranking.ranker import TwoHeadRanker
    from recsys.ranking.training import TrainingConfig

    catalog = Catalog.from_frame(None)
    no_events = pd.DataFrame({"USER_ID": pd.Series([], dtype=str), "ITEM_ID": pd.Series([], dtype=str),
                              "TIMESTAMP": pd.Series([], dtype=float)})
    candidates = CandidateModels.fit(catalog, Interactions.from_frame(no_events, catalog), 0.0,
                                     CandidateConfig(channels={"popularity": ("popularity", {})}))
    schema = FeatureSchema()
    training = TrainingConfig()
    rows = np.empty((0, len(schema.names)), dtype=np.float32)
    rankers = {}
    for name, config in training.rankers.items():
        labels = {config.ctr_label: np.empty(0), config.cvr_label: np.empty(0)}
        # No rows: both heads are constants (the prior of no labels, 0).
        rankers[name] = TwoHeadRanker.fit(config, schema.names, rows, labels, rows, labels, name=name)
    bundle = ModelBundle(schema, rankers, training.default_ranker, candidates, metrics={BOOTSTRAP_METRIC: True},
                         version=f"bootstrap-{schema.id}")
    return bundle.save(directory)


def is_missing(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def seed_missing(s3: Any, *, bucket: str, keys: Iterable[str], source_bucket: str, source_key: str) -> list[str]:
    """Copy s3://source_bucket/source_key to each of `keys` in `bucket` that holds no object; the keys seeded."""
    seeded = []
    for key in keys:
        try:
            s3.head_object(Bucket=bucket, Key=key)
            continue
        except ClientError as error:
            if not is_missing(error):
                raise
        s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": source_bucket, "Key": source_key})
        seeded.append(key)
    return seeded
