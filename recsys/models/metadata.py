"""Metadata similarity (KION): Jaccard = |A ∩ B| / |A ∪ B| over the items' metadata sets.

The sets are the catalog's tags: topic, creator and the further metadata columns (keywords, actors, directors,
country, ...), each value prefixed by its column so "DIRECTOR=x" and "ACTORS=x" differ. Needs no interactions, so
it also finds neighbours for items nobody has interacted with yet.
"""

from __future__ import annotations

import numpy as np

from recsys.models.base import CandidateModel, Query, make_info, top_k
from recsys.models.data import Catalog, Interactions


def jaccard_to(catalog: Catalog, sources: np.ndarray, weights: np.ndarray, items: np.ndarray | None = None
               ) -> np.ndarray:
    """Weighted mean Jaccard of each item in `items` (None: all) to the `sources` items, float32.

    Computed between groups of identical tag sets (Catalog.tag_groups), then spread back to the items.
    """
    group, group_tags = catalog.tag_groups
    target_groups = group if items is None else group[items]
    if len(sources) == 0 or catalog.tags.nnz == 0:
        return np.zeros(len(target_groups), np.float32)
    source_groups, inverse = np.unique(group[sources], return_inverse=True)
    source_weights = np.bincount(inverse, weights=weights, minlength=len(source_groups)).astype(np.float32)
    if items is None:
        wanted, back = np.arange(group_tags.shape[0]), group
    else:
        wanted, back = np.unique(target_groups, return_inverse=True)
    targets, source_tags = group_tags[wanted], group_tags[source_groups]
    intersection = (targets @ source_tags.T).toarray()  # (target groups, source groups)
    target_sizes = np.diff(targets.indptr).astype(np.float32)[:, None]
    source_sizes = np.diff(source_tags.indptr).astype(np.float32)[None, :]
    union = target_sizes + source_sizes - intersection
    similarity = np.divide(intersection, union, out=np.zeros_like(intersection, dtype=np.float32), where=union > 0)
    return (similarity @ source_weights)[back].astype(np.float32)


class MetadataJaccard(CandidateModel):
    kind = "jaccard"
    item_to_item = True

    @classmethod
    def fit(cls, catalog: Catalog, interactions: Interactions, cutoff: float, *, name: str = "jaccard"
            ) -> "MetadataJaccard":
        # The state is the catalog's tags; the digest covers them so the version follows metadata changes.
        arrays = {"tag_indptr": catalog.tags.indptr.astype(np.int64), "tag_indices": catalog.tags.indices}
        return cls(catalog, arrays, make_info(cls.kind, name, cutoff, {}, arrays, {"tags": int(catalog.tags.shape[1])}))

    def _recommend(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = jaccard_to(self.catalog, query.history, query.weights)
        return top_k(scores, k, query.exclude, positive_only=True)

    def _score(self, query: Query, items: np.ndarray) -> np.ndarray:
        return jaccard_to(self.catalog, query.history, query.weights, items)
