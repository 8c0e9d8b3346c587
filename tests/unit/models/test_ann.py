"""The IVF index against exact search: recall, exclusions, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.models.ann import IVFIndex, recall_at_k


@pytest.fixture(scope="module")
def clustered_vectors():
    """3,000 128-d vectors loosely around 200 random directions (noise larger than the spread of the centres, so
    neighbourhoods straddle lists), and 100 queries drawn the same way."""
    rng = np.random.default_rng(7)
    centres = rng.normal(size=(200, 128))
    vectors = centres[rng.integers(0, 200, 3000)] + 1.5 * rng.normal(size=(3000, 128))
    queries = centres[rng.integers(0, 200, 100)] + 1.5 * rng.normal(size=(100, 128))
    return vectors.astype(np.float32), queries.astype(np.float32)


@pytest.fixture(scope="module")
def index(clustered_vectors):
    return IVFIndex.build(clustered_vectors[0], n_lists=48, seed=0)


def test_recall_at_10_grows_with_probes_and_is_exact_with_all_lists(index, clustered_vectors):
    queries = clustered_vectors[1]
    recall = {p: recall_at_k(index, queries, 10, n_probe=p) for p in (1, 4, 16, 48)}
    assert recall[1] < recall[4] < recall[16] < recall[48]
    assert recall[16] >= 0.85  # a third of the vectors scanned
    assert recall[48] == 1.0


def test_search_returns_cosines_best_first_without_excluded_ids(index, clustered_vectors):
    vectors, queries = clustered_vectors
    exact_ids, _ = index.exact_search(queries[0], 5)
    ids, scores = index.search(queries[0], 5, n_probe=48, exclude=exact_ids[:2])
    assert not set(ids) & set(exact_ids[:2])
    assert np.all(np.diff(scores) <= 0)
    unit = vectors[ids] / np.linalg.norm(vectors[ids], axis=1, keepdims=True)
    assert scores == pytest.approx(unit @ (queries[0] / np.linalg.norm(queries[0])), abs=1e-5)


def test_every_vector_is_in_exactly_one_list(index, clustered_vectors):
    assert sorted(index.members.tolist()) == list(range(len(clustered_vectors[0])))
    assert len(index.centroids) == 48
    assert index.offsets[0] == 0 and index.offsets[-1] == len(index.members)


def test_edge_cases_give_empty_answers():
    empty = IVFIndex.build(np.zeros((0, 128), np.float32))
    assert len(empty.search(np.ones(128), 5)[0]) == 0
    small = IVFIndex.build(np.eye(3, 128, dtype=np.float32))
    assert len(small.search(np.zeros(128), 5)[0]) == 0  # a zero query has no direction
    assert small.search(np.eye(1, 128)[0], 0)[0].size == 0
    assert small.search(np.eye(1, 128)[0], 10, n_probe=10)[0].tolist()[0] == 0


def test_arrays_round_trip(index, clustered_vectors):
    copy = IVFIndex.from_arrays(index.arrays())
    q = clustered_vectors[1][3]
    assert copy.search(q, 10)[0].tolist() == index.search(q, 10)[0].tolist()
