"""User affinity → items (exploit; Amp's topic/creator affinity, Meesho's known preferences).

A user's affinity to a topic is the recency-weighted share of their history in that topic (an item with several
topics splits its weight); likewise for creators. Items are scored by

    score(i) = (topic_affinity(i) + creator_affinity(i)) * log1p(popularity(i))

where topic_affinity(i) sums the user's affinity over the item's topics. Candidates come from per-topic and
per-creator lists of the `per_group` most popular items, precomputed at fit time, so a request touches only
the lists of the user's strongest topics and creators.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.models.base import DAY, CandidateModel, Query, make_info, top_k
from recsys.models.data import Catalog, Interactions


def _group_lists(membership: sp.csr_matrix, popularity: np.ndarray, per_group: int) -> sp.csr_matrix:
    """groups × items: each group's `per_group` most popular items (with any popularity)."""
    by_group = membership.T.tocsr()
    indptr = [0]
    indices: list[np.ndarray] = []
    for g in range(by_group.shape[0]):
        items = by_group.indices[by_group.indptr[g]:by_group.indptr[g + 1]]
        items = items[popularity[items] > 0]
        items = items[np.argsort(-popularity[items], kind="stable")[:per_group]]
        indices.append(items)
        indptr.append(indptr[-1] + len(items))
    flat = np.concatenate(indices) if indices else np.empty(0, np.int32)
    return sp.csr_matrix((np.ones(len(flat), np.float32), flat, np.asarray(indptr)), shape=by_group.shape)


class UserAffinity(CandidateModel):
    kind = "affinity"

    def __init__(self, catalog: Catalog, arrays: dict[str, np.ndarray], info) -> None:
        super().__init__(catalog, arrays, info)
        n = len(catalog)
        self.popularity = arrays["popularity"]
        self.log_popularity = np.log1p(self.popularity).astype(np.float32)
        self.topic_lists = sp.csr_matrix((np.ones(len(arrays["topic_items"]), np.float32), arrays["topic_items"],
                                          arrays["topic_indptr"]), shape=(catalog.topics.shape[1], n))
        self.creator_lists = sp.csr_matrix((np.ones(len(arrays["creator_items"]), np.float32),
                                            arrays["creator_items"], arrays["creator_indptr"]),
                                           shape=(max(len(catalog.creator_names), 1), n))
        topic_counts = np.diff(catalog.topics.indptr).astype(np.float32)
        # Row-normalized topic membership: an item with 3 topics gives each a third of its weight.
        self.topic_share = sp.diags(1.0 / np.maximum(topic_counts, 1.0)) @ catalog.topics
        self.top_groups = int(info.params["top_groups"])

    @classmethod
    def fit(cls, catalog: Catalog, interactions: Interactions, cutoff: float, *, window_days: float = 60.0,
            per_group: int = 200, top_groups: int = 5, name: str = "affinity") -> "UserAffinity":
        data = interactions.before(cutoff).positives()
        data = data.select(data.timestamp >= cutoff - window_days * DAY)
        popularity = np.bincount(data.item, weights=data.weight, minlength=len(catalog)).astype(np.float32)
        topic_lists = _group_lists(catalog.topics, popularity, per_group)
        has_creator = np.flatnonzero(catalog.creators >= 0)
        creator_membership = sp.csr_matrix(
            (np.ones(len(has_creator), np.float32), (has_creator, catalog.creators[has_creator])),
            shape=(len(catalog), max(len(catalog.creator_names), 1)))
        creator_lists = _group_lists(creator_membership, popularity, per_group)
        arrays = {"popularity": popularity, "topic_indptr": topic_lists.indptr.astype(np.int64),
                  "topic_items": topic_lists.indices.astype(np.int32),
                  "creator_indptr": creator_lists.indptr.astype(np.int64),
                  "creator_items": creator_lists.indices.astype(np.int32)}
        params = {"window_days": window_days, "per_group": per_group, "top_groups": top_groups}
        return cls(catalog, arrays, make_info(cls.kind, name, cutoff, params, arrays))

    def topic_weights(self, query: Query) -> np.ndarray:
        """The user's affinity to each topic (sums to ≤ 1)."""
        if len(query.history) == 0:
            return np.zeros(self.topic_share.shape[1], np.float32)
        return np.asarray(self.topic_share[query.history].T @ query.weights).ravel().astype(np.float32)

    def creator_weights(self, query: Query) -> np.ndarray:
        creators = self.catalog.creators[query.history]
        known = creators >= 0
        return np.bincount(creators[known], weights=query.weights[known],
                           minlength=self.creator_lists.shape[0]).astype(np.float32)

    def topic_affinity(self, query: Query, items: np.ndarray) -> np.ndarray:
        return np.asarray(self.catalog.topics[items] @ self.topic_weights(query)).ravel().astype(np.float32)

    def creator_affinity(self, query: Query, items: np.ndarray) -> np.ndarray:
        creators = self.catalog.creators[items]
        weights = self.creator_weights(query)
        return np.where(creators >= 0, weights[np.maximum(creators, 0)], 0.0).astype(np.float32)

    def _recommend(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        topics = self.topic_weights(query)
        creators = self.creator_weights(query)
        pool: list[np.ndarray] = []
        for weights, lists in ((topics, self.topic_lists), (creators, self.creator_lists)):
            strongest = np.argsort(-weights)[: self.top_groups]
            strongest = strongest[weights[strongest] > 0]
            pool.extend(lists.indices[lists.indptr[g]:lists.indptr[g + 1]] for g in strongest)
        if not pool:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        candidates = np.unique(np.concatenate(pool)).astype(np.int64)
        scores = self._score(query, candidates)
        order, values = top_k(scores, k, np.flatnonzero(np.isin(candidates, query.exclude)), positive_only=True)
        return candidates[order], values

    def _score(self, query: Query, items: np.ndarray) -> np.ndarray:
        return ((self.topic_affinity(query, items) + self.creator_affinity(query, items))
                * self.log_popularity[items]).astype(np.float32)
