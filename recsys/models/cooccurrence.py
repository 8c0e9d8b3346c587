"""Item-to-item co-occurrence (SIMS-like), also the item-kNN baseline.

Two items co-occur when one user interacted with both (each user's last `max_user_items` items count). The
similarity of item i to item j is

    s(i, j) = C(i, j) / (n_i^(1 - beta) * n_j^beta + shrink)

with C the co-occurrence count and n the item's user count. beta = 0.5 is the cosine; beta > 0.5 penalizes
popular targets j more (so "see also" is not the best-seller list); `shrink` damps pairs seen by few users.
Only the `neighbours` most similar items per item are kept. A user's score of item j is the recency-weighted
sum of s(h, j) over the items h in their history.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys.models.base import CandidateModel, Query, make_info, top_k
from recsys.models.data import Catalog, Interactions


def capped_user_item_matrix(interactions: Interactions, n_items: int, max_user_items: int) -> sp.csr_matrix:
    """Binary users × items over each user's most recent `max_user_items` distinct items."""
    pos = interactions.positives()
    histories = pos.histories(max_user_items * 4)
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for user, (items, _) in histories.items():
        # Most recent distinct items: reverse, unique keeps first occurrence.
        rev = items[::-1]
        _, first = np.unique(rev, return_index=True)
        distinct = rev[np.sort(first)][:max_user_items]
        rows.append(np.full(len(distinct), user, np.int32))
        cols.append(distinct)
    if not rows:
        return sp.csr_matrix((pos.n_users, n_items), dtype=np.float32)
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(pos.n_users, n_items))


def keep_top_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """The k largest entries of each row of a CSR matrix (indices sorted within rows)."""
    matrix = matrix.tocsr()
    indptr = [0]
    indices: list[np.ndarray] = []
    data: list[np.ndarray] = []
    for r in range(matrix.shape[0]):
        start, end = matrix.indptr[r], matrix.indptr[r + 1]
        vals = matrix.data[start:end]
        cols = matrix.indices[start:end]
        if len(vals) > k:
            keep = np.argpartition(-vals, k - 1)[:k]
            vals, cols = vals[keep], cols[keep]
        order = np.argsort(cols)
        indices.append(cols[order])
        data.append(vals[order])
        indptr.append(indptr[-1] + len(cols))
    return sp.csr_matrix(
        (np.concatenate(data) if data else np.empty(0, np.float32),
         np.concatenate(indices) if indices else np.empty(0, np.int32), np.asarray(indptr)),
        shape=matrix.shape,
    )


def weighted_row_sum(matrix: sp.csr_matrix, rows: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sum_r weights[r] * matrix[rows[r]] as (sorted column indices, values) — sparse, any catalog size."""
    if len(rows) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    combined = sp.csr_matrix(weights.reshape(1, -1).astype(np.float32)) @ matrix[rows]
    combined.sum_duplicates()
    return combined.indices.astype(np.int64), combined.data.astype(np.float32)


def lookup(columns: np.ndarray, values: np.ndarray, items: np.ndarray) -> np.ndarray:
    """values at `items` of a sparse vector given by sorted `columns`; 0 where absent."""
    if len(columns) == 0:
        return np.zeros(len(items), np.float32)
    pos = np.clip(np.searchsorted(columns, items), 0, len(columns) - 1)
    return np.where(columns[pos] == items, values[pos], 0.0).astype(np.float32)


class CoOccurrence(CandidateModel):
    kind = "cooccurrence"
    item_to_item = True

    def __init__(self, catalog: Catalog, arrays: dict[str, np.ndarray], info) -> None:
        super().__init__(catalog, arrays, info)
        n = len(catalog)
        self.similarity = sp.csr_matrix((arrays["data"], arrays["indices"], arrays["indptr"]), shape=(n, n))

    @classmethod
    def fit(cls, catalog: Catalog, interactions: Interactions, cutoff: float, *, beta: float = 0.5,
            shrink: float = 0.0, neighbours: int = 100, max_user_items: int = 100,
            name: str = "cooccurrence") -> "CoOccurrence":
        n = len(catalog)
        x = capped_user_item_matrix(interactions.before(cutoff), n, max_user_items)
        counts = np.asarray(x.sum(axis=0)).ravel().astype(np.float32)
        co = (x.T @ x).tocsr()
        co.setdiag(0)
        co.eliminate_zeros()
        co = co.tocoo()
        denom = np.power(counts[co.row], 1.0 - beta) * np.power(counts[co.col], beta) + shrink
        sim = sp.csr_matrix((co.data / denom, (co.row, co.col)), shape=(n, n))
        sim = keep_top_per_row(sim, neighbours)
        arrays = {"indptr": sim.indptr.astype(np.int64), "indices": sim.indices.astype(np.int32),
                  "data": sim.data.astype(np.float32), "counts": counts}
        params = {"beta": beta, "shrink": shrink, "neighbours": neighbours, "max_user_items": max_user_items}
        return cls(catalog, arrays, make_info(cls.kind, name, cutoff, params, arrays, {"pairs": int(sim.nnz)}))

    def _recommend(self, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
        cols, vals = weighted_row_sum(self.similarity, query.history, query.weights)
        exclude = query.exclude[np.isin(query.exclude, cols)]
        idx, scores = top_k(vals, k, np.searchsorted(cols, exclude), positive_only=True)
        return cols[idx], scores

    def _score(self, query: Query, items: np.ndarray) -> np.ndarray:
        cols, vals = weighted_row_sum(self.similarity, query.history, query.weights)
        return lookup(cols, vals, items)
