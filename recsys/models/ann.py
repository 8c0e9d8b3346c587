"""An inverted-file (IVF) approximate nearest-neighbour index over unit vectors, in numpy.

Build: spherical k-means (on a sample) places `n_lists` centroids; every vector goes to the list of its nearest
centroid, and vectors are stored contiguously by list. Search: the `n_probe` centroids nearest to the query pick
the lists, whose members are scored exactly (inner product = cosine on unit vectors). Recall against the exact
search rises with n_probe; `recall_at_k` measures it.
"""

from __future__ import annotations

import numpy as np


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def spherical_kmeans(vectors: np.ndarray, n_clusters: int, *, iterations: int = 15, seed: int = 0) -> np.ndarray:
    """Unit centroids maximizing the summed cosine of each vector to its centroid."""
    rng = np.random.default_rng(seed)
    n_clusters = min(n_clusters, len(vectors))
    centroids = vectors[rng.choice(len(vectors), n_clusters, replace=False)].copy()
    for _ in range(iterations):
        assign = np.argmax(vectors @ centroids.T, axis=1)
        sums = np.zeros_like(centroids)
        np.add.at(sums, assign, vectors)
        empty = np.flatnonzero(np.linalg.norm(sums, axis=1) == 0)
        # Re-seed empty clusters with random vectors so every list is used.
        sums[empty] = vectors[rng.choice(len(vectors), len(empty), replace=False)]
        centroids = _normalize(sums)
    return centroids


class IVFIndex:
    def __init__(self, centroids: np.ndarray, offsets: np.ndarray, members: np.ndarray, vectors: np.ndarray) -> None:
        self.centroids = centroids  # (n_lists, d)
        self.offsets = offsets  # (n_lists + 1,) list boundaries into members/vectors
        self.members = members  # (m,) ids of the indexed vectors, by list
        self.vectors = vectors  # (m, d) the indexed vectors, by list

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray | None = None, *, n_lists: int | None = None,
              sample: int = 50_000, iterations: int = 15, seed: int = 0) -> "IVFIndex":
        vectors = _normalize(np.asarray(vectors, np.float32))
        ids = np.arange(len(vectors)) if ids is None else np.asarray(ids)
        if len(vectors) == 0:
            d = vectors.shape[1] if vectors.ndim == 2 else 0
            return cls(np.zeros((0, d), np.float32), np.zeros(1, np.int64), ids.astype(np.int64), vectors)
        n_lists = n_lists or max(1, int(round(4 * np.sqrt(len(vectors)))))
        rng = np.random.default_rng(seed)
        train = vectors if len(vectors) <= sample else vectors[rng.choice(len(vectors), sample, replace=False)]
        centroids = spherical_kmeans(train, n_lists, iterations=iterations, seed=seed)
        assign = np.concatenate([np.argmax(chunk @ centroids.T, axis=1) for chunk in np.array_split(
            vectors, max(1, len(vectors) // 65_536))])
        order = np.argsort(assign, kind="stable")
        offsets = np.searchsorted(assign[order], np.arange(len(centroids) + 1)).astype(np.int64)
        return cls(centroids, offsets, ids[order].astype(np.int64), vectors[order])

    def __len__(self) -> int:
        return len(self.members)

    def search(self, query: np.ndarray, k: int, *, n_probe: int = 8, exclude: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """The ids and cosines of (about) the k nearest indexed vectors to `query`, best first."""
        if len(self.members) == 0 or k <= 0 or not np.any(query):
            return np.empty(0, np.int64), np.empty(0, np.float32)
        query = _normalize(np.asarray(query, np.float32))
        n_probe = min(n_probe, len(self.centroids))
        probe = np.argpartition(-(self.centroids @ query), n_probe - 1)[:n_probe]
        slices = [np.arange(self.offsets[c], self.offsets[c + 1]) for c in probe]
        rows = np.concatenate(slices) if slices else np.empty(0, np.int64)
        scores = self.vectors[rows] @ query
        ids = self.members[rows]
        if exclude is not None and len(exclude):
            keep = ~np.isin(ids, exclude)
            ids, scores = ids[keep], scores[keep]
        k = min(k, len(ids))
        if k == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return ids[top], scores[top].astype(np.float32)

    def exact_search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Brute force over every indexed vector: the ground truth for recall."""
        scores = self.vectors @ _normalize(np.asarray(query, np.float32))
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return self.members[top], scores[top]

    def arrays(self, prefix: str = "ann_") -> dict[str, np.ndarray]:
        return {f"{prefix}centroids": self.centroids, f"{prefix}offsets": self.offsets,
                f"{prefix}members": self.members, f"{prefix}vectors": self.vectors}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], prefix: str = "ann_") -> "IVFIndex":
        return cls(arrays[f"{prefix}centroids"], arrays[f"{prefix}offsets"], arrays[f"{prefix}members"],
                   arrays[f"{prefix}vectors"])


def recall_at_k(index: IVFIndex, queries: np.ndarray, k: int, *, n_probe: int) -> float:
    """Mean share of the exact top-k neighbours that the approximate search also returns."""
    hits = 0
    total = 0
    for q in queries:
        exact, _ = index.exact_search(q, k)
        approx, _ = index.search(q, k, n_probe=n_probe)
        hits += len(np.intersect1d(exact, approx))
        total += len(exact)
    return hits / max(total, 1)
