"""The candidate pool of one request: several channels with quotas, deduplicated, plus exploration.

- exploit and the other channels: `CandidateModels.pool` takes each channel's top `quota` items in the configured
  order (affinity, item-to-item from the recent items, popular, trending, new); the first channel that offers an
  item keeps it;
- explore: `exploration_weight` of the pool is reserved for young items (created at most
  `exploration_item_age_cutoff_days` ago, as Personalize's explorationWeight / explorationItemAgeCutOff), drawn
  by a daily-stable shuffle seeded by (user, day) so that a returning user sees the same pool that day;
- a pool still short of `max_candidates` is topped up from the popularity ranking.

Items in `query.exclude` (the user's recent items) never enter the pool.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recsys.models.base import DAY, Query
from recsys.models.bundle import CandidateModels
from recsys.models.popularity import NewItems

EXPLORE = "explore"


@dataclass(frozen=True)
class Pool:
    items: np.ndarray  # catalog indices, in channel priority order
    channels: tuple[str, ...]  # the channel that contributed each item

    def __len__(self) -> int:
        return len(self.items)


def daily_seed(user_id: str, day: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{user_id}|{day}".encode(), digest_size=8).digest(), "big")


def item_created(models: CandidateModels) -> np.ndarray:
    """Creation time per catalog item: the `new` channel's (which falls back to the first interaction)."""
    new = models.of_kind("new")
    return new.arrays["created"] if isinstance(new, NewItems) else models.catalog.created


def young_items(created: np.ndarray, now: float, cutoff_days: float) -> np.ndarray:
    age_days = (now - created) / DAY
    return np.flatnonzero(np.isfinite(age_days) & (age_days >= 0) & (age_days <= cutoff_days))


def candidate_pool(models: CandidateModels, query: Query, quotas: Sequence[tuple[str, int]], max_candidates: int, *,
                   exploration_weight: float, young: np.ndarray, seed: int) -> Pool:
    explore_slots = int(round(exploration_weight * max_candidates)) if len(young) else 0
    pooled = models.pool(query, dict(quotas))
    keep = max_candidates - explore_slots
    items = pooled.items[:keep].tolist()
    channels = list(pooled.channels[:keep])
    taken = set(items) | set(query.exclude.tolist())
    if explore_slots:
        fresh = young[~np.isin(young, np.fromiter(taken, np.int64, len(taken)))]
        chosen = np.random.default_rng(seed).permutation(fresh)[:explore_slots].tolist()
        items += chosen
        channels += [EXPLORE] * len(chosen)
        taken.update(chosen)
    if len(items) < max_candidates and "popularity" in models:
        deeper, _ = models["popularity"].recommend_query(query, max_candidates + len(taken))
        for i in deeper.tolist():
            if i not in taken:
                items.append(i)
                channels.append("popularity")
                taken.add(i)
                if len(items) == max_candidates:
                    break
    return Pool(np.asarray(items, dtype=np.int64), tuple(channels))
