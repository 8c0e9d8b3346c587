"""User-independent channels: Popularity-Count, Trending-Now and New items (Personalize recipes; Meesho's
popularity and recency channels)."""

from __future__ import annotations

from typing import Any

import numpy as np

from recsys.models.base import DAY, CandidateModel, Query, make_info, ranked_top_k
from recsys.models.data import Catalog, Interactions


def _ranking(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Item indices by primary score, ties by secondary, both descending."""
    return np.lexsort((-secondary, -primary)).astype(np.int64)


class _RankedChannel(CandidateModel):
    """A channel whose answer is one global ranking, precomputed at fit time."""

    def __init__(self, catalog: Catalog, arrays: dict[str, np.ndarray], info: Any) -> None:
        super().__init__(catalog, arrays, info)
        self._scores = arrays["score"].astype(np.float32)
        self._order = arrays["order"]

    def _recommend(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        return ranked_top_k(self._order, self._scores, k, query.exclude)

    def _score(self, query: Query, items: np.ndarray) -> np.ndarray:
        return self._scores[items]


class PopularityCount(_RankedChannel):
    """Items by the sum of their signal weights over the last `window_days` (None: all history) before the cutoff.

    Also keeps each item's mean EVENT_VALUE and its creator's popularity, used as ranker features.
    """

    kind = "popularity"

    @classmethod
    def fit(cls, catalog: Catalog, interactions: Interactions, cutoff: float, *, window_days: float | None = None,
            name: str = "popularity") -> "PopularityCount":
        data = interactions.before(cutoff).positives()
        if window_days is not None:
            data = data.select(data.timestamp >= cutoff - window_days * DAY)
        n = len(catalog)
        count = np.bincount(data.item, weights=data.weight, minlength=n).astype(np.float32)
        valued = ~np.isnan(data.value)
        value_sum = np.bincount(data.item[valued], weights=data.value[valued], minlength=n)
        value_n = np.bincount(data.item[valued], minlength=n)
        mean_value = np.where(value_n > 0, value_sum / np.maximum(value_n, 1), np.nan).astype(np.float32)
        creator_pop = np.zeros(n, np.float32)
        has_creator = catalog.creators >= 0
        if has_creator.any():
            per_creator = np.bincount(catalog.creators[has_creator], weights=count[has_creator],
                                      minlength=len(catalog.creator_names))
            creator_pop[has_creator] = per_creator[catalog.creators[has_creator]]
        arrays = {"score": count, "order": _ranking(count, np.zeros(n)), "mean_value": mean_value,
                  "creator_popularity": creator_pop}
        params = {"window_days": window_days}
        return cls(catalog, arrays, make_info(cls.kind, name, cutoff, params, arrays,
                                              {"interactions": len(data), "items_with_signal": int((count > 0).sum())}))

    def mean_value(self, items: np.ndarray) -> np.ndarray:
        return self.arrays["mean_value"][items]

    def creator_popularity(self, items: np.ndarray) -> np.ndarray:
        return self.arrays["creator_popularity"][items]


class TrendingNow(_RankedChannel):
    """Items gaining interactions fastest: velocity of the last `window_days` against the window before it.

    trend = (recent - previous) / sqrt(previous + 1): a growth that is large relative to the noise of the previous
    count. Steady best-sellers score about 0; items new in the recent window score about their recent count.
    Ties (e.g. no activity) are broken by the recent count.
    """

    kind = "trending"

    @classmethod
    def fit(cls, catalog: Catalog, interactions: Interactions, cutoff: float, *, window_days: float = 7.0,
            name: str = "trending") -> "TrendingNow":
        if window_days <= 0:
            raise ValueError("window_days: must be positive")
        data = interactions.before(cutoff).positives()
        n = len(catalog)
        recent_mask = data.timestamp >= cutoff - window_days * DAY
        previous_mask = ~recent_mask & (data.timestamp >= cutoff - 2 * window_days * DAY)
        recent = np.bincount(data.item[recent_mask], weights=data.weight[recent_mask], minlength=n)
        previous = np.bincount(data.item[previous_mask], weights=data.weight[previous_mask], minlength=n)
        trend = ((recent - previous) / np.sqrt(previous + 1.0)).astype(np.float32)
        arrays = {"score": trend, "order": _ranking(trend, recent), "recent": recent.astype(np.float32)}
        return cls(catalog, arrays, make_info(cls.kind, name, cutoff, {"window_days": window_days}, arrays,
                                              {"recent_interactions": int(recent_mask.sum())}))

    def recent_count(self, items: np.ndarray) -> np.ndarray:
        return self.arrays["recent"][items]


class NewItems(_RankedChannel):
    """The latest additions: items created at most `max_age_days` before the cutoff, newest first.

    Creation time is CREATION_TIMESTAMP, or the first interaction when the catalog has none. Items created after
    the cutoff are unknown at that time and never returned. The score is -age in days (larger is newer; NaN when
the creation time is unknown or after the cutoff).
    """

    kind = "new"

    @classmethod
    def fit(cls, catalog: Catalog, interactions: Interactions, cutoff: float, *, max_age_days: float = 30.0,
            name: str = "new") -> "NewItems":
        data = interactions.before(cutoff)
        n = len(catalog)
        first_seen = np.full(n, np.inf)
        np.minimum.at(first_seen, data.item, data.timestamp)
        created = np.where(np.isnan(catalog.created), first_seen, catalog.created)
        age_days = (cutoff - created) / DAY
        eligible = np.isfinite(age_days) & (age_days >= 0) & (age_days <= max_age_days)
        score = np.where(np.isfinite(age_days) & (age_days >= 0), -age_days, np.nan).astype(np.float32)
        popularity = np.bincount(data.item, weights=data.weight, minlength=n)
        order = _ranking(np.where(eligible, score, -np.inf), popularity)[: int(eligible.sum())]
        arrays = {"score": score, "order": order, "created": created}
        return cls(catalog, arrays, make_info(cls.kind, name, cutoff, {"max_age_days": max_age_days}, arrays,
                                              {"eligible_items": int(eligible.sum())}))

    def age_days(self, items: np.ndarray, now: float) -> np.ndarray:
        """Age at `now` (NaN if unknown): the ranker's recency feature, consistent between training and serving."""
        created = self.arrays["created"][items]
        return np.where(np.isfinite(created), (now - created) / DAY, np.nan).astype(np.float32)
