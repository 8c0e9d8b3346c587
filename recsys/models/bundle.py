"""All candidate channels, fitted together at one cutoff, saved and loaded as one versioned directory.

    models = CandidateModels.fit(catalog, interactions, cutoff, CandidateConfig())
    models.save("artifacts/candidates")           # catalog.npz, <channel>.npz/.json, manifest.json
    models = CandidateModels.load("artifacts/candidates")
    query = models.query(CandidateRequest(user_id="u1", history=(...), history_times=(...), now=...))
    models.recommend("trending", query, k=100)    # -> Candidates; any channel, the same signature
    models.pool(query, quotas={"ease": 300, "trending": 100, ...})  # merged, deduplicated candidate indices
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recsys.models.affinity import UserAffinity
from recsys.models.base import CATALOG_FILE, CandidateModel, CandidateRequest, Candidates, HistoryConfig, Query
from recsys.models.cooccurrence import CoOccurrence
from recsys.models.data import Catalog, Interactions
from recsys.models.ease import EASE
from recsys.models.embeddings import ItemEmbeddings
from recsys.models.metadata import MetadataJaccard
from recsys.models.popularity import NewItems, PopularityCount, TrendingNow

MANIFEST_FILE = "manifest.json"

# channel name -> (model kind, fit parameters)
DEFAULT_CHANNELS: dict[str, tuple[str, dict[str, Any]]] = {
    "popularity": ("popularity", {}),
    "trending": ("trending", {"window_days": 7.0}),
    "new": ("new", {"max_age_days": 30.0}),
    "cooccurrence": ("cooccurrence", {"beta": 0.6, "shrink": 1.0, "neighbours": 100}),
    "embeddings": ("embeddings", {"dim": 128, "jaccard_weight": 0.2}),
    "jaccard": ("jaccard", {}),
    "affinity": ("affinity", {"window_days": 60.0}),
    "ease": ("ease", {"l2": 200.0, "max_items": 4000}),
}
# How many candidates each channel contributes to the ranker's pool, before deduplication.
DEFAULT_QUOTAS: dict[str, int] = {"ease": 200, "cooccurrence": 100, "embeddings": 100, "affinity": 100,
                                  "trending": 100, "popularity": 100, "new": 50, "jaccard": 50}

_MODEL_CLASSES = (PopularityCount, TrendingNow, NewItems, CoOccurrence, ItemEmbeddings, MetadataJaccard, UserAffinity,
                  EASE)
_KINDS: dict[str, type[CandidateModel]] = {cls.kind: cls for cls in _MODEL_CLASSES}


@dataclass(frozen=True)
class CandidateConfig:
    channels: Mapping[str, tuple[str, Mapping[str, Any]]] = field(default_factory=lambda: dict(DEFAULT_CHANNELS))
    history: HistoryConfig = field(default_factory=HistoryConfig)

    def with_params(self, overrides: Mapping[str, Mapping[str, Any]]) -> "CandidateConfig":
        """A copy with some channels' fit parameters overridden, e.g. {"ease": {"l2": 50}}."""
        channels = {name: (kind, dict(params)) for name, (kind, params) in self.channels.items()}
        for name, params in overrides.items():
            if name not in channels:
                raise ValueError(f"channels: unknown channel {name!r}; known: {', '.join(channels)}")
            channels[name][1].update(params)
        return CandidateConfig(channels, self.history)


@dataclass
class CandidatePool:
    """Merged candidates of one query: catalog indices, and the channel that contributed each first."""

    items: np.ndarray
    channels: list[str]


class CandidateModels:
    def __init__(self, catalog: Catalog, models: dict[str, CandidateModel], history: HistoryConfig) -> None:
        self.catalog = catalog
        self.models = models
        self.history = history

    @classmethod
    def fit(cls, catalog: Catalog, interactions: Interactions, cutoff: float,
            config: CandidateConfig = CandidateConfig()) -> "CandidateModels":
        models: dict[str, CandidateModel] = {}
        for name, (kind, params) in config.channels.items():
            if kind not in _KINDS:
                raise ValueError(f"channels.{name}: unknown model kind {kind!r}; known: {', '.join(_KINDS)}")
            models[name] = _KINDS[kind].fit(catalog, interactions, cutoff, name=name, **params)
        return cls(catalog, models, config.history)

    def __getitem__(self, channel: str) -> CandidateModel:
        return self.models[channel]

    def __contains__(self, channel: str) -> bool:
        return channel in self.models

    def of_kind(self, kind: str) -> CandidateModel | None:
        """The first channel of a model kind (the ranker's features look channels up by kind)."""
        return next((m for m in self.models.values() if m.info.kind == kind), None)

    @property
    def version(self) -> str:
        digest = hashlib.sha256("|".join(sorted(m.version for m in self.models.values())).encode()).hexdigest()
        return f"candidates-{digest[:10]}"

    def query(self, request: CandidateRequest) -> Query:
        return Query.resolve(request, self.catalog, self.history)

    def recommend(self, channel: str, request: CandidateRequest | Query, k: int) -> Candidates:
        if channel not in self.models:
            raise KeyError(f"channel: unknown channel {channel!r}; known: {', '.join(self.models)}")
        query = request if isinstance(request, Query) else self.query(request)
        idx, scores = self.models[channel].recommend_query(query, k)
        return Candidates(channel, self.catalog.ids(idx), scores)

    def pool(self, query: Query, quotas: Mapping[str, int] | None = None) -> CandidatePool:
        """Each channel's top `quota` items, deduplicated in quota order (the first channel to offer an item keeps
        it)."""
        quotas = DEFAULT_QUOTAS if quotas is None else quotas
        seen: set[int] = set()
        items: list[int] = []
        channels: list[str] = []
        for channel, quota in quotas.items():
            if channel not in self.models or quota <= 0:
                continue
            idx, _ = self.models[channel].recommend_query(query, quota)
            for i in idx.tolist():
                if i not in seen:
                    seen.add(i)
                    items.append(i)
                    channels.append(channel)
        return CandidatePool(np.asarray(items, dtype=np.int64), channels)

    def save(self, directory: Path | str) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.catalog.save(directory / CATALOG_FILE)
        for model in self.models.values():
            model.save(directory)
        manifest = {"version": self.version, "history": asdict(self.history),
                    "channels": {name: {"kind": m.info.kind, "version": m.version} for name, m in self.models.items()}}
        path = directory / MANIFEST_FILE
        path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
        return path

    @classmethod
    def load(cls, directory: Path | str) -> "CandidateModels":
        directory = Path(directory)
        manifest = json.loads((directory / MANIFEST_FILE).read_text())
        catalog = Catalog.load(directory / CATALOG_FILE)
        models = {name: CandidateModel.load(directory, name, catalog) for name in manifest["channels"]}
        bundle = cls(catalog, models, HistoryConfig(**manifest["history"]))
        if bundle.version != manifest["version"]:
            raise ValueError(f"{directory}: artifacts do not match the manifest version {manifest['version']}")
        return bundle
