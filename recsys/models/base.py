"""The uniform shape of every candidate channel: request in, scored item ids out; artifacts as .npz + JSON.

Every model is fitted on interactions before a cutoff and answers from memory:

    model = PopularityCount.fit(catalog, interactions, cutoff)
    model.recommend(CandidateRequest(user_id="u1", history=("i1", "i2")), k=100)  # -> Candidates
    model.score(request, ["i7", "i9"])  # the channel's score of given items (a ranker feature)
    model.save(directory); CandidateModel.load(directory, model.name)

`recommend` of an item-to-item model with `request.item_id` set answers "see also" for that item.
"""

from __future__ import annotations

import hashlib
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from recsys.config import PitFeatureConfig
from recsys.models.data import Catalog, Interactions

CATALOG_FILE = "catalog.npz"
DAY = 86_400.0


@dataclass(frozen=True)
class CandidateRequest:
    """Who or what to recommend for. `history` is oldest first; `history_times` is empty or of the same length."""

    user_id: str | None = None
    history: tuple[str, ...] = ()
    history_times: tuple[float, ...] = ()
    item_id: str | None = None
    exclude: frozenset[str] = frozenset()
    now: float | None = None


@dataclass(frozen=True)
class HistoryConfig:
    """How a request's history is weighted: at most `max_items`, newest first; halved every `half_life_days`.

    The defaults are the real-time features' (PitFeatureConfig): the recommend API's history is their
    `user_recent_items`, so training histories are cut the same way.
    """

    max_items: int = PitFeatureConfig().recent_items
    half_life_days: float = PitFeatureConfig().affinity_half_life_days


@dataclass(frozen=True)
class Query:
    """A request resolved against a catalog: item indices, recency weights (summing to 1), exclusions."""

    history: np.ndarray
    history_times: np.ndarray
    weights: np.ndarray
    item: int  # -1: none requested, or unknown (see item_requested)
    exclude: np.ndarray
    now: float
    item_requested: bool = False

    @classmethod
    def resolve(cls, request: CandidateRequest, catalog: Catalog, config: HistoryConfig = HistoryConfig()) -> "Query":
        if request.history_times and len(request.history_times) != len(request.history):
            raise ValueError("history_times: must be empty or as long as history")
        history = catalog.indices(request.history[-config.max_items:])
        times = np.asarray(request.history_times[-config.max_items:] or np.full(len(history), np.nan), float)
        known = history >= 0
        history, times = history[known], times[known]
        now = float(request.now) if request.now is not None else time.time()
        return cls(
            history=history,
            history_times=times,
            weights=recency_weights(times, now, config.half_life_days),
            item=catalog.index_of(request.item_id) if request.item_id is not None else -1,
            exclude=catalog.indices(request.exclude) if request.exclude else np.empty(0, np.int64),
            now=now,
            item_requested=request.item_id is not None,
        )


def recency_weights(times: np.ndarray, now: float, half_life_days: float) -> np.ndarray:
    """Exponential decay by age (uniform where times are unknown), normalized to sum to 1."""
    if len(times) == 0:
        return np.empty(0, np.float32)
    age_days = np.clip((now - times) / DAY, 0.0, None)
    w = np.where(np.isnan(age_days), 1.0, np.exp2(-np.nan_to_num(age_days) / half_life_days))
    w = np.maximum(w, 1e-6)
    return (w / w.sum()).astype(np.float32)


@dataclass(frozen=True)
class Candidates:
    channel: str
    item_ids: list[str]
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.item_ids)


@dataclass(frozen=True)
class ModelInfo:
    """Identity of a fitted artifact. `version` changes whenever the fitted state or the parameters change."""

    kind: str
    name: str
    version: str
    cutoff: float
    trained_at: float
    params: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


def top_k(scores: np.ndarray, k: int, exclude: np.ndarray | None = None, *, positive_only: bool = False
          ) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the k largest finite scores, best first, without `exclude`."""
    scores = np.asarray(scores, dtype=np.float32)
    if exclude is not None and len(exclude):
        scores = scores.copy()
        scores[exclude[exclude >= 0]] = -np.inf
    valid = np.isfinite(scores) & (scores > 0) if positive_only else np.isfinite(scores)
    n_valid = int(valid.sum())
    k = min(k, n_valid)
    if k <= 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    masked = np.where(valid, scores, -np.inf)
    part = np.argpartition(-masked, k - 1)[:k] if k < len(masked) else np.arange(len(masked))
    part = part[np.isfinite(masked[part])]
    order = part[np.argsort(-masked[part], kind="stable")]
    return order.astype(np.int64), masked[order]


def ranked_top_k(order: np.ndarray, values: np.ndarray, k: int, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first k entries of a precomputed ranking `order`, skipping excluded items (O(k + |exclude|))."""
    if k <= 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    if len(exclude) == 0:
        chosen = order[:k]
    else:
        excluded = set(exclude.tolist())
        chosen_list: list[int] = []
        for i in order[: k + len(excluded)].tolist():
            if i not in excluded:
                chosen_list.append(i)
                if len(chosen_list) == k:
                    break
        chosen = np.asarray(chosen_list, dtype=np.int64)
    return chosen, values[chosen].astype(np.float32)


_REGISTRY: dict[str, type["CandidateModel"]] = {}


def _digest(arrays: dict[str, np.ndarray], params: dict[str, Any]) -> str:
    h = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    for name in sorted(arrays):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()[:10]


def make_info(kind: str, name: str, cutoff: float, params: dict[str, Any], arrays: dict[str, np.ndarray],
              stats: dict[str, Any] | None = None) -> ModelInfo:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(cutoff))
    return ModelInfo(kind=kind, name=name, version=f"{name}-{stamp}-{_digest(arrays, params)}", cutoff=float(cutoff),
                     trained_at=time.time(), params=params, stats=stats or {})


class CandidateModel(ABC):
    """A fitted candidate channel. Subclasses implement `fit`, `_recommend` and `_score` over item indices."""

    kind: ClassVar[str]
    item_to_item: ClassVar[bool] = False

    def __init__(self, catalog: Catalog, arrays: dict[str, np.ndarray], info: ModelInfo) -> None:
        self.catalog = catalog
        self.arrays = arrays
        self.info = info

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            _REGISTRY[cls.kind] = cls

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def version(self) -> str:
        return self.info.version

    @classmethod
    @abstractmethod
    def fit(cls, catalog: Catalog, interactions: Interactions, cutoff: float, **params: Any) -> "CandidateModel":
        """Fit on the interactions before `cutoff`."""

    @abstractmethod
    def _recommend(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item indices and scores for a resolved query (query.exclude and query.item left out)."""

    @abstractmethod
    def _score(self, query: Query, items: np.ndarray) -> np.ndarray:
        """Scores of the given item indices (all valid) for a resolved query, float32."""

    def recommend(self, request: CandidateRequest, k: int, history: HistoryConfig = HistoryConfig()) -> Candidates:
        idx, scores = self.recommend_query(Query.resolve(request, self.catalog, history), k)
        return Candidates(self.name, self.catalog.ids(idx), scores)

    def score(self, request: CandidateRequest, item_ids: Sequence[str], history: HistoryConfig = HistoryConfig()
              ) -> np.ndarray:
        """Scores of `item_ids`; unknown items get NaN."""
        return self.score_query(Query.resolve(request, self.catalog, history), self.catalog.indices(item_ids))

    def recommend_query(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top k for the query; item-to-item channels answer for `query.item` when one was requested (nothing for
        an unknown item)."""
        if self.item_to_item and query.item_requested:
            if query.item < 0:
                return np.empty(0, np.int64), np.empty(0, np.float32)
            query = Query(np.array([query.item]), np.array([query.now]), np.ones(1, np.float32), query.item,
                          np.append(query.exclude, query.item), query.now, True)
        return self._recommend(query, k)

    def score_query(self, query: Query, items: np.ndarray) -> np.ndarray:
        out = np.full(len(items), np.nan, np.float32)
        known = items >= 0
        if known.any():
            out[known] = self._score(query, items[known])
        return out

    # Persistence
    def save(self, directory: Path | str) -> Path:
        """Write <name>.npz and <name>.json (and the shared catalog.npz) into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        catalog_path = directory / CATALOG_FILE
        if not catalog_path.exists():
            self.catalog.save(catalog_path)
        np.savez(directory / f"{self.name}.npz", **self.arrays)
        (directory / f"{self.name}.json").write_text(json.dumps(asdict(self.info), indent=2, sort_keys=True))
        return directory / f"{self.name}.json"

    @staticmethod
    def load(directory: Path | str, name: str, catalog: Catalog | None = None) -> "CandidateModel":
        directory = Path(directory)
        info = ModelInfo(**json.loads((directory / f"{name}.json").read_text()))
        if info.kind not in _REGISTRY:
            raise ValueError(f"{name}: unknown model kind {info.kind!r}")
        with np.load(directory / f"{name}.npz", allow_pickle=False) as z:
            arrays = {key: z[key] for key in z.files}
        catalog = catalog if catalog is not None else Catalog.load(directory / CATALOG_FILE)
        return _REGISTRY[info.kind].from_state(catalog, arrays, info)

    @classmethod
    def from_state(cls, catalog: Catalog, arrays: dict[str, np.ndarray], info: ModelInfo) -> "CandidateModel":
        return cls(catalog, arrays, info)


def model_kinds() -> Iterable[str]:
    return tuple(_REGISTRY)
