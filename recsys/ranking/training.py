"""Training the model bundle: candidate models at a cutoff T, ranker rows assembled at T, two rankers.

Two sources of ranker rows, one assembly:
- a training-set frame from the batch pipeline (recsys.batch.training_set: user_id, item_id, labels, batch
  feature columns) — what the SageMaker training job reads;
- `candidate_rows`: each active user's candidate pool at T labelled by what they did in [T, T + horizon) —
  what `recsys evaluate` uses on a plain CSV folder.

Either way every row is built by `recsys.ranking.features.assemble_frame` with the user's history before T.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from recsys.models.base import CandidateRequest
from recsys.models.bundle import DEFAULT_QUOTAS, CandidateConfig, CandidateModels
from recsys.models.data import Catalog, Interactions
from recsys.ranking.bundle import ModelBundle
from recsys.ranking.features import AMP_FEATURES, MODEL_FEATURES, FeatureSchema, assemble_frame, user_requests
from recsys.ranking.ranker import RankerConfig, RankerError, TwoHeadRanker

log = logging.getLogger(__name__)

LABEL_INTERACTION = "label_interaction"
LABEL_POSITIVE = "label_positive"


@dataclass(frozen=True)
class LabelConfig:
    """Which interactions in the horizon are positive (relevant).

    An interaction is positive when its EVENT_TYPE is in `event_types`, or when `min_value` is set and its
    EVENT_VALUE is at least `min_value` (ratings: MovieTweetings uses 7 on its 0–10 scale). With neither set,
    every interaction is positive.
    """

    min_value: float | None = None
    event_types: tuple[str, ...] = ()

    def positive(self, interactions: Interactions) -> np.ndarray:
        if self.min_value is None and not self.event_types:
            return np.ones(len(interactions), bool)
        mask = np.zeros(len(interactions), bool)
        if self.event_types:
            mask |= np.isin(interactions.event_type, self.event_types)
        if self.min_value is not None:
            mask |= np.nan_to_num(interactions.value, nan=-np.inf) >= self.min_value
        return mask


def horizon_labels(interactions: Interactions, catalog: Catalog, start: float, end: float, labels: LabelConfig
                   ) -> pd.DataFrame:
    """(user_id, item_id, label_interaction, label_positive) for every pair with a signal event in [start, end)."""
    window = interactions.between(start, end).positives()
    frame = pd.DataFrame({
        "user_id": interactions.user_ids[window.user],
        "item_id": catalog.item_ids[window.item],
        LABEL_INTERACTION: 1,
        LABEL_POSITIVE: labels.positive(window).astype(int),
    })
    return frame.groupby(["user_id", "item_id"], as_index=False, sort=False).max()


def candidate_rows(models: CandidateModels, requests: Mapping[str, CandidateRequest], users: Sequence[str],
                   labelled: pd.DataFrame, quotas: Mapping[str, int] | None = None, *,
                   seen: Mapping[str, CandidateRequest] | None = None, negatives_per_user: int | None = None,
                   seed: int = 0) -> pd.DataFrame:
    """Each user's candidate pool at the cutoff, labelled from `labelled` (missing pairs are negatives).

    Items the user interacted with before are excluded: those in `seen[user].history` (the full history), else
    those in the request's history.

    `negatives_per_user` keeps all positives and a random sample of that many negatives (calibration is then
    fitted on unsampled validation rows, which corrects the rate). Column "channel" names the channel that
    contributed the candidate first.
    """
    rng = np.random.default_rng(seed)
    frames = []
    ids = models.catalog.item_ids
    label_keys = labelled.set_index(["user_id", "item_id"])
    for user in users:
        request = requests.get(user) or CandidateRequest(user_id=user)
        full = (seen or requests).get(user)
        request = replace(request, exclude=frozenset(full.history if full else ()))
        pool = models.pool(models.query(request), quotas)
        if len(pool.items) == 0:
            continue
        frames.append(pd.DataFrame({"user_id": user, "item_id": ids[pool.items], "channel": pool.channels}))
    if not frames:
        raise RankerError("candidate rows: no user got any candidate")
    rows = pd.concat(frames, ignore_index=True)
    rows = rows.join(label_keys, on=["user_id", "item_id"])
    for label in (LABEL_INTERACTION, LABEL_POSITIVE):
        rows[label] = rows[label].fillna(0).astype(int)
    if negatives_per_user is not None:
        negative = rows[LABEL_INTERACTION] == 0
        draw = pd.Series(rng.random(len(rows)), index=rows.index)
        rank = draw.where(negative).groupby(rows["user_id"]).rank(method="first")
        rows = rows[~negative | (rank <= negatives_per_user)].reset_index(drop=True)
    return rows


CANDIDATE_SOURCE = "candidate"


def add_candidate_negatives(frame: pd.DataFrame, models: CandidateModels, requests: Mapping[str, CandidateRequest],
                            per_user: int, *, seed: int = 0) -> pd.DataFrame:
    """Add, for each user of a batch training set (recsys.batch.training_set) who has a positive but no logged
    impression, `per_user` negatives drawn from the user's real candidate pool at the cutoff.

    Negatives sampled among popular items only are easy: a ranker learns "resembles the history -> positive" and
    then scores every candidate of the channels near 1. Pool negatives are what it must tell apart at serving.
    Only items with batch features in `frame` are drawn (so no feature is missing only on negatives); their user,
    item and user x item features are copied / derived as the Spark job computes them. Row source "candidate".
    """
    from recsys.batch.derived import user_item_features
    from recsys.batch.spec import features_of

    if per_user <= 0 or frame.empty:
        return frame
    label_columns = [c for c in frame.columns if c.startswith("label_")]
    positive = frame[label_columns].sum(axis=1) > 0 if label_columns else pd.Series(False, index=frame.index)
    sources = frame["row_source"] if "row_source" in frame else pd.Series("interaction", index=frame.index)
    with_impressions = set(frame.loc[sources == "impression", "user_id"])
    needy = sorted(set(frame.loc[positive, "user_id"]) - with_impressions)
    user_columns = [f.name for f in features_of("user") if f.name in frame.columns]
    item_columns = [f.name for f in features_of("item") if f.name in frame.columns]
    item_rows = frame.groupby("item_id", sort=False)[item_columns].first()
    known_items = set(item_rows.index)
    taken = frame.groupby("user_id")["item_id"].agg(set)
    rng = np.random.default_rng(seed)
    ids = models.catalog.item_ids
    pairs: list[tuple[str, str]] = []
    for user in needy:
        request = requests.get(user) or CandidateRequest(user_id=user)
        request = replace(request, exclude=frozenset(request.history) | taken.get(user, set()))
        pool = [item for item in ids[models.pool(models.query(request)).items].tolist() if item in known_items]
        if pool:
            chosen = rng.choice(len(pool), size=min(per_user, len(pool)), replace=False)
            pairs += [(user, pool[i]) for i in sorted(chosen)]
    if not pairs:
        return frame
    added = pd.DataFrame(pairs, columns=["user_id", "item_id"])
    added = added.join(frame.groupby("user_id", sort=False)[user_columns].first(), on="user_id")
    added = added.join(item_rows, on="item_id")
    derived = [user_item_features(u, i) for u, i in zip(added[user_columns].to_dict("records"),
                                                        added[item_columns].to_dict("records"))]
    added = pd.concat([added, pd.DataFrame(derived, index=added.index)], axis=1)
    for column in label_columns:
        added[column] = 0
    added["row_source"] = CANDIDATE_SOURCE
    log.info("candidate negatives: %d rows for %d users", len(added), len(needy))
    return pd.concat([frame, added[[c for c in frame.columns if c in added.columns]]], ignore_index=True)


def default_rankers(ctr_label: str = "label_click", cvr_label: str = "label_purchase") -> dict[str, RankerConfig]:
    """The LTR model over every feature, and the Amp Random Forest over its five features."""
    return {
        "ltr": RankerConfig(family="lightgbm", ctr_label=ctr_label, cvr_label=cvr_label),
        "rf": RankerConfig(family="random_forest", features=AMP_FEATURES, ctr_label=ctr_label, cvr_label=cvr_label),
    }


@dataclass(frozen=True)
class TrainingConfig:
    candidates: CandidateConfig = field(default_factory=CandidateConfig)
    rankers: Mapping[str, RankerConfig] = field(default_factory=default_rankers)
    default_ranker: str = "ltr"
    # External feature columns: None takes the batch spec's numeric features present in the training frame.
    external: FeatureSchema | None = None


def schema_for(frame: pd.DataFrame, external: FeatureSchema | None) -> FeatureSchema:
    """The bundle's feature schema: every model feature, plus the numeric batch features the frame carries."""
    if external is not None:
        return FeatureSchema(tuple(MODEL_FEATURES), external.user, external.item, external.pair, external.pit_user,
                             external.pit_item)
    from recsys.batch.spec import features_of

    def numeric(entity: str) -> tuple[str, ...]:
        return tuple(f.name for f in features_of(entity) if f.dtype != "string" and f.name in frame.columns)

    return FeatureSchema(tuple(MODEL_FEATURES), numeric("user"), numeric("item"), numeric("user_item"))


def train_bundle(catalog: Catalog, interactions: Interactions, cutoff: float, train: pd.DataFrame,
                 validation: pd.DataFrame, config: TrainingConfig = TrainingConfig(), *,
                 models: CandidateModels | None = None, serve_cutoff: float | None = None) -> ModelBundle:
    """Fit the candidate models at `cutoff` (unless given), assemble the rows, fit every ranker.

    `serve_cutoff` refits the candidate models on the history up to it for serving (e.g. all data), so the
    deployed channels know the latest items; the rankers keep what they learned at `cutoff`.
    """
    models = models or CandidateModels.fit(catalog, interactions, cutoff, config.candidates)
    schema = schema_for(train, config.external)
    requests = user_requests(models, interactions, cutoff)
    x = assemble_frame(models, schema, train, requests, cutoff)
    xv = assemble_frame(models, schema, validation, requests, cutoff)
    rankers = {}
    for name, ranker_config in config.rankers.items():
        labels = {c: train[c].to_numpy() for c in (ranker_config.ctr_label, ranker_config.cvr_label) if c in train}
        labels_v = {c: validation[c].to_numpy() for c in labels if c in validation}
        rankers[name] = TwoHeadRanker.fit(ranker_config, schema.names, x, labels, xv, labels_v, name=name)
        log.info("ranker %s: %s", name, rankers[name].info)
    if serve_cutoff is not None:
        models = CandidateModels.fit(catalog, interactions, serve_cutoff, config.candidates)
    return ModelBundle(schema, rankers, config.default_ranker, models)


__all__ = ["DEFAULT_QUOTAS", "LABEL_INTERACTION", "LABEL_POSITIVE", "LabelConfig", "TrainingConfig",
           "add_candidate_negatives", "candidate_rows",
           "default_rankers", "horizon_labels", "schema_for", "train_bundle"]
