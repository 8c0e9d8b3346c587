"""EASE (Steck, 2019): a closed-form linear item-to-item model, the strong collaborative-filtering baseline and
an exploit channel.

    B = argmin ||X - X B||² + λ||B||²  subject to diag(B) = 0
    P = (XᵀX + λI)⁻¹,  B = -P / diag(P) column-wise,  diag(B) = 0

X is the binary users × items matrix. The inverse is dense, so the model is restricted to the `max_items` most
popular items (the others get no score); memory is max_items² × 4 bytes. A user's score of item j is
Σ_h w_h B[h, j] over their history h (binary weights reproduce the paper; recency weights favour recent taste).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as la
from threadpoolctl import threadpool_limits

from recsys.models.base import CandidateModel, Query, make_info, top_k
from recsys.models.cooccurrence import capped_user_item_matrix
from recsys.models.data import Catalog, Interactions


def _ease_weights(gram: np.ndarray) -> np.ndarray:
    """B = -P / diag(P) with P = gram⁻¹ by Cholesky (gram is symmetric positive definite thanks to λ > 0).

    Single-threaded BLAS: on small shared machines OpenBLAS threads contend and run several times slower.
    """
    if len(gram) == 0:
        return gram
    with threadpool_limits(limits=1, user_api="blas"):
        factor, info = la.lapack.spotrf(gram, lower=False)
        if info != 0:
            raise ValueError(f"l2: the regularized Gram matrix is not positive definite (LAPACK info {info})")
        precision, info = la.lapack.spotri(factor, lower=False)
    precision = np.triu(precision) + np.triu(precision, 1).T
    weights = precision / -np.diag(precision)
    np.fill_diagonal(weights, 0.0)
    return weights.astype(np.float32)


class EASE(CandidateModel):
    kind = "ease"
    item_to_item = True

    def __init__(self, catalog: Catalog, arrays: dict[str, np.ndarray], info) -> None:
        super().__init__(catalog, arrays, info)
        self.items = arrays["items"]  # catalog indices of the modelled items
        self.weights = arrays["weights"]  # (m, m) float32
        self.position = np.full(len(catalog), -1, np.int64)
        self.position[self.items] = np.arange(len(self.items))

    @classmethod
    def fit(cls, catalog: Catalog, interactions: Interactions, cutoff: float, *, l2: float = 200.0,
            max_items: int = 4000, max_user_items: int = 500, name: str = "ease") -> "EASE":
        x = capped_user_item_matrix(interactions.before(cutoff), len(catalog), max_user_items)
        counts = np.asarray(x.sum(axis=0)).ravel()
        ranked = np.argsort(-counts, kind="stable")
        items = np.sort(ranked[: min(max_items, int((counts > 0).sum()))]).astype(np.int64)
        xs = x[:, items]
        gram = (xs.T @ xs).toarray().astype(np.float32)
        gram[np.diag_indices_from(gram)] += l2
        weights = _ease_weights(gram)
        arrays = {"items": items, "weights": weights}
        return cls(catalog, arrays, make_info(cls.kind, name, cutoff, {"l2": l2, "max_items": max_items,
                                                                       "max_user_items": max_user_items},
                                              arrays, {"items": len(items)}))

    def _scores(self, query: Query) -> np.ndarray:
        pos = self.position[query.history]
        known = pos >= 0
        if not known.any():
            return np.zeros(len(self.items), np.float32)
        return query.weights[known] @ self.weights[pos[known]]

    def _recommend(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores = self._scores(query)
        exclude = self.position[query.exclude] if len(query.exclude) else np.empty(0, np.int64)
        order, values = top_k(scores, k, exclude[exclude >= 0], positive_only=True)
        return self.items[order], values

    def _score(self, query: Query, items: np.ndarray) -> np.ndarray:
        scores = self._scores(query)
        pos = self.position[items]
        return np.where(pos >= 0, scores[np.maximum(pos, 0)], 0.0).astype(np.float32)
