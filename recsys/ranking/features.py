"""The one feature-assembly function: ranker rows for training and for serving, by the same code path.

A row describes (user, item, time T) with four groups of columns, in the order of a `FeatureSchema`:

- model features, computed from the candidate models fitted before T and the user's history before T:
  popularity, trend, age, mean rating, creator popularity, topic/creator affinity, and each channel's score;
- user batch features and item batch features (names from recsys.batch.spec), plus the derived user×item
  features (recsys.batch.derived), as read from the Feature Store;
- point-in-time (PIT) features of the user and of each item, as read from MemoryDB by the FeatureReader;
- context: hour of day and day of week of T (UTC).

External feature values arrive in one of two layouts — dicts for one user at serving time
(`ExternalColumns.from_serving`), columns of a training frame (`ExternalColumns.from_frame`) — and both are
coerced by the same function; everything after that is shared. `assemble` returns float32 rows; NaN means
missing (both rankers handle NaN).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from recsys.models.affinity import UserAffinity
from recsys.models.base import DAY, CandidateRequest, Query
from recsys.models.data import Interactions
from recsys.models.bundle import CandidateModels
from recsys.models.embeddings import ItemEmbeddings
from recsys.models.popularity import NewItems, PopularityCount, TrendingNow

# Model features: the names and what they are (docs/evaluation.md lists them too).
MODEL_FEATURES: dict[str, str] = {
    "m_popularity": "log1p of the item's signal count before T (Popularity-Count)",
    "m_recent": "log1p of the item's count in the trending window before T",
    "m_trend": "the item's Trending-Now velocity",
    "m_age_days": "days from the item's creation (or first interaction) to T",
    "m_mean_value": "mean EVENT_VALUE (e.g. rating) the item got before T",
    "m_creator_popularity": "log1p of the summed counts of the item's creator's items",
    "m_topic_affinity": "the user's decayed affinity to the item's topics",
    "m_creator_affinity": "the user's decayed affinity to the item's creator",
    "m_cooccurrence": "co-occurrence (SIMS-like) score of the item for the user's history",
    "m_embedding": "cosine of the item's embedding to the user's history profile",
    "m_jaccard": "mean metadata Jaccard of the item to the user's history",
    "m_ease": "EASE score of the item for the user's history",
    "m_affinity": "user-affinity channel score (affinity × log popularity)",
    "u_history_length": "items in the user's history (at most HistoryConfig.max_items)",
    "u_days_since_last": "days from the user's last history item to T",
    "ctx_hour": "hour of day of T, UTC",
    "ctx_weekday": "day of week of T, UTC (Monday = 0)",
}
# The Amp Random Forest's inputs: popularity, creator popularity and user-topic/creator affinity.
AMP_FEATURES = ("m_popularity", "m_recent", "m_creator_popularity", "m_topic_affinity", "m_creator_affinity")


@dataclass(frozen=True)
class FeatureSchema:
    """The ordered columns of ranker rows. External groups hold spec names; PIT names get a "pit_" prefix."""

    model: tuple[str, ...] = tuple(MODEL_FEATURES)
    user: tuple[str, ...] = ()
    item: tuple[str, ...] = ()
    pair: tuple[str, ...] = ()
    pit_user: tuple[str, ...] = ()
    pit_item: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [n for n in self.model if n not in MODEL_FEATURES]
        if unknown:
            raise ValueError(f"model features: unknown {', '.join(unknown)}")
        names = self.names
        if len(set(names)) != len(names):
            raise ValueError("feature names: duplicates across groups")

    @property
    def external(self) -> tuple[str, ...]:
        return self.user + self.item + self.pair + tuple(pit_name(n) for n in self.pit_user + self.pit_item)

    @property
    def names(self) -> tuple[str, ...]:
        return self.model + self.external

    @property
    def id(self) -> str:
        """Identifies the column layout; requests for a model must use the schema it was trained with."""
        return hashlib.sha256(",".join(self.names).encode()).hexdigest()[:12]

    def to_dict(self) -> dict[str, list[str]]:
        return {g: list(getattr(self, g)) for g in ("model", "user", "item", "pair", "pit_user", "pit_item")}

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[str]]) -> "FeatureSchema":
        return cls(**{g: tuple(v) for g, v in data.items()})


def pit_name(name: str) -> str:
    return name if name.startswith("pit_") else f"pit_{name}"


def coerce(values: Any) -> np.ndarray:
    """Numbers and booleans to float32; None, text and other values to NaN. The only coercion both paths use."""
    array = np.asarray(values)
    if array.dtype.kind in "biuf":
        return array.astype(np.float32)
    return pd.to_numeric(pd.Series(array, dtype=object).map(_scalar), errors="coerce").to_numpy(np.float32)


def _scalar(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return value
    return np.nan


@dataclass
class ExternalColumns:
    """Values of the schema's external features, one array per name, aligned with the candidates."""

    columns: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def from_serving(cls, schema: FeatureSchema, candidate_ids: Sequence[str], *,
                     user: Mapping[str, Any] | None = None, items: Mapping[str, Mapping[str, Any]] | None = None,
                     pit_user: Mapping[str, Any] | None = None,
                     pit_items: Mapping[str, Mapping[str, Any]] | None = None) -> "ExternalColumns":
        """From the dicts of one request: batch user row, batch item rows, and the FeatureReader's user/items."""
        user = user or {}
        items = items or {}
        pit_user = pit_user or {}
        pit_items = pit_items or {}
        n = len(candidate_ids)
        empty: Mapping[str, Any] = {}
        rows = [items.get(i, empty) for i in candidate_ids]
        columns: dict[str, np.ndarray] = {}
        for name in schema.user:
            columns[name] = coerce([user.get(name)] * n)
        for name in schema.item:
            columns[name] = coerce([row.get(name) for row in rows])
        if schema.pair:
            from recsys.batch.derived import user_item_features

            pairs = [user_item_features(user, row) for row in rows]
            for name in schema.pair:
                columns[name] = coerce([p.get(name) for p in pairs])
        for name in schema.pit_user:
            columns[pit_name(name)] = coerce([pit_user.get(name)] * n)
        if schema.pit_item and hasattr(pit_items, "column") and hasattr(pit_items, "item_ids"):
            # recsys.features.ItemFeatures: read whole columns instead of building a dict per item.
            row_of = {item: r for r, item in enumerate(pit_items.item_ids)}
            rows_idx = np.fromiter((row_of.get(i, -1) for i in candidate_ids), np.int64, count=n)
            for name in schema.pit_item:
                values = np.asarray(pit_items.column(name), np.float64)[np.maximum(rows_idx, 0)] if len(row_of) else \
                    np.full(n, np.nan)
                columns[pit_name(name)] = coerce(np.where(rows_idx >= 0, values, np.nan))
        elif schema.pit_item:
            pit_rows = [pit_items.get(i, empty) for i in candidate_ids]
            for name in schema.pit_item:
                columns[pit_name(name)] = coerce([row.get(name) for row in pit_rows])
        return cls(columns)

    @classmethod
    def from_frame(cls, schema: FeatureSchema, frame: pd.DataFrame) -> "ExternalColumns":
        """From a training frame whose columns carry the spec names (PIT columns with or without "pit_")."""
        columns: dict[str, np.ndarray] = {}
        for name in schema.user + schema.item + schema.pair:
            columns[name] = coerce(frame[name].to_numpy()) if name in frame else np.full(len(frame), np.nan, np.float32)
        for name in schema.pit_user + schema.pit_item:
            source = pit_name(name) if pit_name(name) in frame else name
            columns[pit_name(name)] = (coerce(frame[source].to_numpy()) if source in frame
                                       else np.full(len(frame), np.nan, np.float32))
        return cls(columns)

    def take(self, rows: np.ndarray) -> "ExternalColumns":
        return ExternalColumns({name: values[rows] for name, values in self.columns.items()})


def _log1p(values: np.ndarray) -> np.ndarray:
    return np.log1p(np.maximum(values, 0.0)).astype(np.float32)


def model_feature_columns(models: CandidateModels, query: Query, items: np.ndarray, names: Sequence[str]
                          ) -> dict[str, np.ndarray]:
    """The model features of catalog items (index -1: unknown item, all NaN) for one resolved query."""
    n = len(items)
    known = items >= 0
    idx = items[known]
    out = {name: np.full(n, np.nan, np.float32) for name in names}

    def put(name: str, compute) -> None:
        if name in out:
            out[name][known] = compute()

    popularity = models.of_kind("popularity")
    trending = models.of_kind("trending")
    new = models.of_kind("new")
    affinity = models.of_kind("affinity")
    embeddings = models.of_kind("embeddings")
    if isinstance(popularity, PopularityCount):
        put("m_popularity", lambda: _log1p(popularity.score_query(query, idx)))
        put("m_mean_value", lambda: popularity.mean_value(idx))
        put("m_creator_popularity", lambda: _log1p(popularity.creator_popularity(idx)))
    if isinstance(trending, TrendingNow):
        put("m_recent", lambda: _log1p(trending.recent_count(idx)))
        put("m_trend", lambda: trending.score_query(query, idx))
    if isinstance(new, NewItems):
        put("m_age_days", lambda: new.age_days(idx, query.now))
    if isinstance(affinity, UserAffinity):
        put("m_topic_affinity", lambda: affinity.topic_affinity(query, idx))
        put("m_creator_affinity", lambda: affinity.creator_affinity(query, idx))
        put("m_affinity", lambda: affinity.score_query(query, idx))
    if isinstance(embeddings, ItemEmbeddings):
        put("m_embedding", lambda: embeddings.score_query(query, idx))
    for name, kind in (("m_cooccurrence", "cooccurrence"), ("m_jaccard", "jaccard"), ("m_ease", "ease")):
        model = models.of_kind(kind)
        if model is not None:
            put(name, lambda model=model: model.score_query(query, idx))
    if "u_history_length" in out:
        out["u_history_length"][:] = len(query.history)
    if "u_days_since_last" in out and len(query.history_times) and np.isfinite(query.history_times).any():
        out["u_days_since_last"][:] = (query.now - np.nanmax(query.history_times)) / DAY
    when = time.gmtime(query.now)
    if "ctx_hour" in out:
        out["ctx_hour"][:] = when.tm_hour
    if "ctx_weekday" in out:
        out["ctx_weekday"][:] = when.tm_wday
    return out


def assemble(models: CandidateModels, schema: FeatureSchema, query: Query, items: np.ndarray,
             external: ExternalColumns | None = None) -> np.ndarray:
    """Ranker rows (len(items) × len(schema.names), float32) for one query and its candidate catalog indices."""
    n = len(items)
    matrix = np.empty((n, len(schema.names)), np.float32)
    model_columns = model_feature_columns(models, query, np.asarray(items, np.int64), schema.model)
    for j, name in enumerate(schema.model):
        matrix[:, j] = model_columns[name]
    offset = len(schema.model)
    external_columns = external.columns if external is not None else {}
    for j, name in enumerate(schema.external):
        values = external_columns.get(name)
        if values is not None and len(values) != n:
            raise ValueError(f"feature {name}: {len(values)} values for {n} candidates")
        matrix[:, offset + j] = np.nan if values is None else values
    return matrix


def assemble_request(models: CandidateModels, schema: FeatureSchema, request: CandidateRequest,
                     candidate_ids: Sequence[str], *, user: Mapping[str, Any] | None = None,
                     items: Mapping[str, Mapping[str, Any]] | None = None, pit_user: Mapping[str, Any] | None = None,
                     pit_items: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """Serving: rows for one user's candidates from the request dicts. Returns (matrix, feature names)."""
    external = ExternalColumns.from_serving(schema, candidate_ids, user=user, items=items, pit_user=pit_user,
                                            pit_items=pit_items)
    matrix = assemble(models, schema, models.query(request), models.catalog.indices(candidate_ids), external)
    return matrix, schema.names


def request_from_pit(user_id: str, pit_user: Mapping[str, Any], now: float, *,
                     exclude: frozenset[str] = frozenset()) -> CandidateRequest:
    """The serving request of a user from the FeatureReader's user features: `user_recent_items` (newest first)
    becomes the history, oldest first."""
    recent = sorted(pit_user.get("user_recent_items") or (), key=lambda e: (e["timestamp"], e["item_id"]))
    return CandidateRequest(user_id=user_id, history=tuple(e["item_id"] for e in recent),
                            history_times=tuple(float(e["timestamp"]) for e in recent), exclude=exclude, now=now)


def user_requests(models: CandidateModels, interactions: Interactions, cutoff: float, max_items: int | None = None
                  ) -> dict[str, CandidateRequest]:
    """Per user, the request as the recommend API builds it at time `cutoff`: the user's last items before it
    (by default as many as the real-time features keep) with their times, now = cutoff."""
    histories = interactions.before(cutoff).histories(max_items or models.history.max_items)
    ids = models.catalog.item_ids
    return {
        str(interactions.user_ids[user]): CandidateRequest(
            user_id=str(interactions.user_ids[user]), history=tuple(ids[items].tolist()),
            history_times=tuple(times.tolist()), now=cutoff)
        for user, (items, times) in histories.items()
    }


def assemble_frame(models: CandidateModels, schema: FeatureSchema, frame: pd.DataFrame,
                   requests: Mapping[str, CandidateRequest], cutoff: float) -> np.ndarray:
    """Training: rows for a frame of (user_id, item_id[, external feature columns]) pairs at time `cutoff`.

    Each user's rows go through `assemble` exactly as a serving request with that user's history would.
    """
    external = ExternalColumns.from_frame(schema, frame)
    matrix = np.empty((len(frame), len(schema.names)), np.float32)
    user_ids = frame["user_id"].astype(str).to_numpy()
    item_idx = models.catalog.indices(frame["item_id"].astype(str))
    order = np.argsort(user_ids, kind="stable")
    bounds = np.flatnonzero(user_ids[order][1:] != user_ids[order][:-1]) + 1
    for rows in np.split(order, bounds):
        if len(rows) == 0:
            continue
        user = user_ids[rows[0]]
        request = requests.get(user) or CandidateRequest(user_id=user, now=cutoff)
        matrix[rows] = assemble(models, schema, models.query(request), item_idx[rows], external.take(rows))
    return matrix
