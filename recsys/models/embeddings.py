"""128-dimensional item embeddings learned from interactions, served through an IVF nearest-neighbour index.

Fit: the item co-occurrence matrix (as in `cooccurrence`) becomes a positive PMI matrix, with the context
distribution smoothed by `smoothing` (0.75, as word2vec does) so rare items do not get inflated scores; its
truncated SVD gives vectors U * sqrt(S), normalized to unit length. Items without co-occurrences get no vector.

Serve (KION): "see also" for an item is its nearest vectors, with the metadata Jaccard blended into the score
(`jaccard_weight`); a user's exploit candidates are the nearest vectors to the recency-weighted mean of their
history's vectors. Nearness is the cosine, which on unit vectors orders like the Euclidean distance.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils.extmath import randomized_svd
from threadpoolctl import threadpool_limits

from recsys.models.ann import IVFIndex
from recsys.models.base import CandidateModel, Query, make_info, top_k
from recsys.models.cooccurrence import capped_user_item_matrix
from recsys.models.data import Catalog, Interactions
from recsys.models.metadata import jaccard_to


def ppmi(co: sp.csr_matrix, smoothing: float) -> sp.csr_matrix:
    """Positive pointwise mutual information of a symmetric co-occurrence matrix."""
    co = co.tocoo()
    total = co.data.sum()
    row_sum = np.asarray(co.tocsr().sum(axis=1)).ravel()
    context = np.power(row_sum, smoothing)
    context = context / context.sum() * total
    pmi = np.log(co.data * total / (row_sum[co.row] * context[co.col]))
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep].astype(np.float32), (co.row[keep], co.col[keep])), shape=co.shape)


class ItemEmbeddings(CandidateModel):
    kind = "embeddings"
    item_to_item = True

    def __init__(self, catalog: Catalog, arrays: dict[str, np.ndarray], info) -> None:
        super().__init__(catalog, arrays, info)
        self.index = IVFIndex.from_arrays(arrays)
        self.position = arrays["position"]  # catalog index -> row of index.vectors, -1 without a vector
        self.n_probe = int(info.params["n_probe"])
        self.jaccard_weight = float(info.params["jaccard_weight"])

    @classmethod
    def fit(cls, catalog: Catalog, interactions: Interactions, cutoff: float, *, dim: int = 128,
            smoothing: float = 0.75, max_user_items: int = 100, n_lists: int | None = None, n_probe: int = 8,
            jaccard_weight: float = 0.2, seed: int = 0, name: str = "embeddings") -> "ItemEmbeddings":
        n = len(catalog)
        x = capped_user_item_matrix(interactions.before(cutoff), n, max_user_items)
        co = (x.T @ x).tocsr()
        co.setdiag(0)
        co.eliminate_zeros()
        has_vector = np.flatnonzero(np.diff(co.indptr) > 0)
        vectors = np.zeros((len(has_vector), dim), np.float32)
        if len(has_vector) > 1:
            sub = ppmi(co[has_vector][:, has_vector], smoothing)
            rank = min(dim, len(has_vector) - 1)
            # Single-threaded BLAS: OpenBLAS threads on small shared machines make QR/LU several times slower.
            with threadpool_limits(limits=1, user_api="blas"):
                u, s, _ = randomized_svd(sub, n_components=rank, n_iter=5, random_state=seed)
            vectors[:, :rank] = u * np.sqrt(s)
        nonzero = np.linalg.norm(vectors, axis=1) > 0
        has_vector, vectors = has_vector[nonzero], vectors[nonzero]
        with threadpool_limits(limits=1, user_api="blas"):
            index = IVFIndex.build(vectors, has_vector, n_lists=n_lists, seed=seed)
        position = np.full(n, -1, np.int64)
        position[index.members] = np.arange(len(index.members))
        arrays = {**index.arrays(), "position": position}
        params = {"dim": dim, "smoothing": smoothing, "max_user_items": max_user_items, "n_lists": len(index.centroids),
                  "n_probe": n_probe, "jaccard_weight": jaccard_weight, "seed": seed}
        stats = {"items_with_vector": len(index)}
        return cls(catalog, arrays, make_info(cls.kind, name, cutoff, params, arrays, stats))

    def vectors_of(self, items: np.ndarray) -> np.ndarray:
        """Unit vectors of catalog items (zero rows for items without one)."""
        pos = self.position[items]
        out = np.zeros((len(items), self.index.vectors.shape[1]), np.float32)
        out[pos >= 0] = self.index.vectors[pos[pos >= 0]]
        return out

    def profile(self, query: Query) -> np.ndarray:
        """The recency-weighted mean vector of the query's history (zero if none has a vector)."""
        if len(query.history) == 0:
            return np.zeros(self.index.vectors.shape[1], np.float32)
        return query.weights @ self.vectors_of(query.history)

    def _recommend(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        vector = self.profile(query)
        fetch = k * 3 if self.jaccard_weight > 0 else k
        ids, cos = self.index.search(vector, fetch, n_probe=self.n_probe, exclude=query.exclude)
        if self.jaccard_weight <= 0:
            return ids, cos
        if len(ids) == 0:
            # Cold query (no vector): metadata alone finds its neighbours.
            scores = jaccard_to(self.catalog, query.history, query.weights)
            return top_k(scores, k, query.exclude, positive_only=True)
        blended = (1.0 - self.jaccard_weight) * cos + self.jaccard_weight * jaccard_to(
            self.catalog, query.history, query.weights, ids)
        order = top_k(blended, k)[0]
        return ids[order], blended[order]

    def _score(self, query: Query, items: np.ndarray) -> np.ndarray:
        vector = self.profile(query)
        norm = np.linalg.norm(vector)
        if norm == 0:
            return np.zeros(len(items), np.float32)
        return (self.vectors_of(items) @ (vector / norm)).astype(np.float32)
