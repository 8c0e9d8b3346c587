"""Candidate channels: hand-computed scores, the uniform request/response contract, and versioned artifacts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.models import (
    EASE,
    Catalog,
    CandidateConfig,
    CandidateModel,
    CandidateModels,
    CandidateRequest,
    CoOccurrence,
    DataError,
    Interactions,
    ItemEmbeddings,
    MetadataJaccard,
    NewItems,
    PopularityCount,
    TrendingNow,
    UserAffinity,
)
from recsys.models.base import Query

DAY = 86_400.0
T0 = 1_700_000_000.0


def at(day: float) -> float:
    return T0 + day * DAY


# Data


def test_catalog_detects_topic_creator_and_tags_and_adds_items_seen_only_in_interactions():
    items = pd.DataFrame({"ITEM_ID": ["i1", "i2"], "GENRES": ["Comedy|Drama", None], "CREATOR": ["c1", "c2"],
                          "KEYWORDS": ["space", "space|robots"], "CREATION_TIMESTAMP": [T0, None]})
    catalog = Catalog.from_frame(items, ["i2", "i3"])
    assert catalog.item_ids.tolist() == ["i1", "i2", "i3"]
    assert sorted(catalog.topic_names.tolist()) == ["Comedy", "Drama"]
    assert catalog.topics[0].nnz == 2 and catalog.topics[1].nnz == 0
    assert catalog.creator_names[catalog.creators[:2]].tolist() == ["c1", "c2"] and catalog.creators[2] == -1
    assert sorted(catalog.tag_names[catalog.tags[1].indices].tolist()) == ["CREATOR=c2", "KEYWORDS=robots",
                                                                           "KEYWORDS=space"]
    assert catalog.created[0] == T0 and np.isnan(catalog.created[1:]).all()


def test_catalog_round_trips_through_npz(tmp_path, clustered):
    catalog, _ = clustered
    catalog.save(tmp_path / "catalog.npz")
    loaded = Catalog.load(tmp_path / "catalog.npz")
    assert loaded.item_ids.tolist() == catalog.item_ids.tolist()
    assert (loaded.tags != catalog.tags).nnz == 0 and (loaded.topics != catalog.topics).nnz == 0
    assert loaded.index_of("p") == catalog.index_of("p")


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"ITEM_ID": ["a"], "TIMESTAMP": [1.0]}), "column USER_ID is required"),
    (pd.DataFrame({"USER_ID": ["u"], "ITEM_ID": ["a"], "TIMESTAMP": ["soon"]}), "TIMESTAMP is not a number in row 0"),
    (pd.DataFrame({"USER_ID": ["u"], "ITEM_ID": ["zzz"], "TIMESTAMP": [1.0]}), "ITEM_ID zzz is not in the catalog"),
])
def test_bad_interactions_name_the_column(frame, message):
    catalog = Catalog.from_frame(pd.DataFrame({"ITEM_ID": ["a"]}))
    with pytest.raises(DataError, match=message):
        Interactions.from_frame(frame, catalog)


def test_histories_keep_each_items_latest_time_oldest_first_and_cut_to_the_newest(make_log):
    catalog, log = make_log([("u", "a", 1), ("u", "b", 2), ("u", "a", 3), ("u", "c", 4), ("v", "a", 0)])
    items, times = log.histories(max_items=2)[int(np.flatnonzero(log.user_ids == "u")[0])]
    assert catalog.ids(items) == ["a", "c"]
    assert times.tolist() == [at(3), at(4)]


# Popularity, trending, new


def test_popularity_counts_signal_before_the_cutoff_and_skips_excluded(make_log):
    catalog, log = make_log([("u1", "a", 0), ("u2", "a", 1), ("u1", "b", 1), ("u3", "c", 2), ("u4", "c", 3),
                             ("u5", "c", 4), ("u6", "b", 9)])
    model = PopularityCount.fit(catalog, log, at(5))
    top = model.recommend(CandidateRequest(now=at(5)), k=3)
    assert top.item_ids == ["c", "a", "b"] and top.scores.tolist() == [3, 2, 1]
    assert model.recommend(CandidateRequest(exclude=frozenset({"c"})), k=2).item_ids == ["a", "b"]


def test_trending_is_growth_over_the_previous_window(make_log):
    # Window 2 days before cutoff day 10: recent = days [8, 10), previous = [6, 8).
    rows = [("u%d" % k, "steady", 6.5) for k in range(3)] + [("v%d" % k, "steady", 8.5) for k in range(3)]
    rows += [("w%d" % k, "rising", 9.0) for k in range(4)] + [("x0", "rising", 7.0)]
    rows += [("y%d" % k, "falling", 6.1) for k in range(5)]
    catalog, log = make_log(rows)
    model = TrendingNow.fit(catalog, log, at(10), window_days=2)
    scores = dict(zip(catalog.item_ids.tolist(), model.score(CandidateRequest(), catalog.item_ids.tolist())))
    assert scores["rising"] == pytest.approx((4 - 1) / np.sqrt(2))
    assert scores["steady"] == pytest.approx(0.0)
    assert scores["falling"] == pytest.approx(-5 / np.sqrt(6))
    assert model.recommend(CandidateRequest(), k=1).item_ids == ["rising"]


def test_new_items_are_recent_creations_known_at_the_cutoff(make_log):
    items = {"old": {"CREATION_TIMESTAMP": at(-100)}, "fresh": {"CREATION_TIMESTAMP": at(8)},
             "fresher": {"CREATION_TIMESTAMP": at(9)}, "future": {"CREATION_TIMESTAMP": at(20)}}
    catalog, log = make_log([("u", "old", 1), ("u", "fresh", 9), ("u", "seen_only", 5)], items)
    model = NewItems.fit(catalog, log, at(10), max_age_days=7)
    assert model.recommend(CandidateRequest(), k=10).item_ids == ["fresher", "fresh", "seen_only"]
    ages = model.age_days(catalog.indices(["old", "future"]), at(10))
    assert ages[0] == pytest.approx(110) and ages[1] < 0


# Item-to-item and personal channels


def test_cooccurrence_follows_the_formula(make_log):
    # a co-occurs with b for 2 users and with c for 1; n_a = 3, n_b = 2, n_c = 3.
    catalog, log = make_log([("u1", "a", 0), ("u1", "b", 0), ("u2", "a", 0), ("u2", "b", 0), ("u3", "a", 0),
                             ("u3", "c", 0), ("u4", "c", 0), ("u5", "c", 0)])
    model = CoOccurrence.fit(catalog, log, at(1), beta=0.7, shrink=0.5)
    similar = model.recommend(CandidateRequest(item_id="a"), k=5)
    expected_b = 2 / (3 ** 0.3 * 2 ** 0.7 + 0.5)
    expected_c = 1 / (3 ** 0.3 * 3 ** 0.7 + 0.5)
    assert similar.item_ids == ["b", "c"]
    assert similar.scores.tolist() == pytest.approx([expected_b, expected_c], rel=1e-5)


def test_ease_matches_the_closed_form(make_log):
    rng = np.random.default_rng(0)
    rows = [(f"u{u}", f"i{i}", 0) for u in range(40) for i in range(8) if rng.random() < 0.4]
    catalog, log = make_log(rows)
    model = EASE.fit(catalog, log, at(1), l2=5.0)
    x = log.user_item_matrix(len(catalog)).toarray()
    p = np.linalg.inv(x.T @ x + 5.0 * np.eye(len(catalog)))
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    order = catalog.indices([f"i{i}" for i in range(8)])
    got = model.weights[np.ix_(model.position[order], model.position[order])]
    assert got == pytest.approx(b[np.ix_(order, order)], abs=1e-4)
    assert np.allclose(np.diag(model.weights), 0.0)


def test_ease_keeps_only_the_most_popular_items(make_log):
    catalog, log = make_log([("u1", "a", 0), ("u2", "a", 0), ("u1", "b", 0), ("u3", "c", 0), ("u4", "c", 0)])
    model = EASE.fit(catalog, log, at(1), max_items=2)
    assert sorted(catalog.ids(model.items)) == ["a", "c"]
    assert model.score(CandidateRequest(history=("a",)), ["b"]).tolist() == [0.0]


def test_jaccard_is_intersection_over_union_of_metadata(make_log):
    items = {"x": {"GENRES": "A|B", "CREATOR": "c1"}, "y": {"GENRES": "B", "CREATOR": "c1"},
             "z": {"GENRES": "C", "CREATOR": "c2"}}
    catalog, log = make_log([("u", "x", 0)], items)
    model = MetadataJaccard.fit(catalog, log, at(1))
    # x = {A, B, c1}, y = {B, c1}: 2 / 3; x and z share nothing.
    assert model.score(CandidateRequest(history=("x",)), ["y", "z", "x"]).tolist() == pytest.approx([2 / 3, 0, 1])
    assert model.recommend(CandidateRequest(item_id="x"), k=5).item_ids == ["y"]


def test_embeddings_are_128_dimensional_unit_vectors_and_find_the_cluster(clustered):
    catalog, log = clustered
    model = ItemEmbeddings.fit(catalog, log, T0 + 20 * DAY, jaccard_weight=0.0)
    vectors = model.vectors_of(catalog.indices([f"a{i}" for i in range(5)] + ["cold"]))
    assert vectors.shape == (6, 128)
    assert np.linalg.norm(vectors[:5], axis=1) == pytest.approx(np.ones(5), abs=1e-5)
    assert not vectors[5].any()  # no interactions: no vector
    neighbours = model.recommend(CandidateRequest(item_id="a0"), k=4).item_ids
    assert set(neighbours) <= {"a1", "a2", "a3", "a4", "p"} and "a0" not in neighbours
    assert sum(n.startswith("a") for n in neighbours) >= 3


def test_embeddings_fall_back_to_metadata_for_a_cold_item(clustered):
    catalog, log = clustered
    model = ItemEmbeddings.fit(catalog, log, T0 + 20 * DAY, jaccard_weight=0.3)
    similar = model.recommend(CandidateRequest(item_id="cold"), k=5).item_ids
    assert similar and all(i.startswith("a") for i in similar)  # same genre and creator as the a* items


def test_affinity_recommends_the_users_topics_and_creators(clustered):
    catalog, log = clustered
    model = UserAffinity.fit(catalog, log, T0 + 20 * DAY)
    request = CandidateRequest(history=("a0", "a1"), history_times=(T0, T0 + DAY), now=T0 + 20 * DAY,
                               exclude=frozenset({"a0", "a1"}))
    top = model.recommend(request, k=4).item_ids
    assert set(top) == {"a2", "a3", "a4", "p"}
    query = Query.resolve(request, catalog)
    affinity = model.topic_affinity(query, catalog.indices(["a2", "b2", "p"]))
    assert affinity[0] == pytest.approx(1.0) and affinity[1] == 0.0 and affinity[2] == pytest.approx(1.0)
    assert model.creator_affinity(query, catalog.indices(["a2", "b2"])).tolist() == pytest.approx([1.0, 0.0])


def test_recency_weights_halve_every_half_life(clustered):
    catalog, _ = clustered
    query = Query.resolve(CandidateRequest(history=("a0", "a1"), history_times=(T0, T0 + 14 * DAY),
                                           now=T0 + 14 * DAY), catalog)
    assert query.weights.tolist() == pytest.approx([1 / 3, 2 / 3])


# The uniform contract, for every channel


@pytest.fixture(scope="module")
def bundle(clustered):
    catalog, log = clustered
    config = CandidateConfig().with_params({"ease": {"l2": 10.0}})
    return CandidateModels.fit(catalog, log, T0 + 20 * DAY, config)


ITEMS = ["a0", "a1", "a2", "a3", "a4", "b0", "b1", "b2", "b3", "b4", "p", "cold", "unknown"]


@settings(max_examples=40, deadline=None)
@given(history=st.lists(st.sampled_from(ITEMS), max_size=6), exclude=st.sets(st.sampled_from(ITEMS), max_size=5),
       k=st.integers(min_value=0, max_value=12), item=st.none() | st.sampled_from(ITEMS))
def test_every_channel_answers_at_most_k_distinct_unexcluded_items_best_first(bundle, history, exclude, k, item):
    request = CandidateRequest(user_id="x", history=tuple(history), item_id=item, exclude=frozenset(exclude),
                               now=T0 + 20 * DAY)
    for channel in bundle.models:
        result = bundle.recommend(channel, request, k)
        assert len(result.item_ids) <= k
        assert len(set(result.item_ids)) == len(result.item_ids)
        assert not set(result.item_ids) & set(exclude)
        if item is not None and bundle[channel].item_to_item:
            assert item not in result.item_ids
            if item == "unknown":
                assert result.item_ids == []
        assert np.all(np.diff(result.scores) <= 1e-6)


def test_pool_merges_channels_by_quota_without_duplicates(bundle):
    query = bundle.query(CandidateRequest(history=("a0",), now=T0 + 20 * DAY, exclude=frozenset({"a0"})))
    pool = bundle.pool(query, {"popularity": 3, "cooccurrence": 3, "jaccard": 2})
    ids = bundle.catalog.ids(pool.items)
    assert len(ids) == len(set(ids)) and "a0" not in ids
    assert pool.channels[0] == "popularity"
    assert set(pool.channels) <= {"popularity", "cooccurrence", "jaccard"}


def test_bundle_round_trips_with_versions(tmp_path, bundle):
    bundle.save(tmp_path)
    loaded = CandidateModels.load(tmp_path)
    assert loaded.version == bundle.version
    request = CandidateRequest(history=("a0", "b1"), now=T0 + 20 * DAY)
    for channel in bundle.models:
        assert loaded.recommend(channel, request, 5).item_ids == bundle.recommend(channel, request, 5).item_ids
        assert loaded[channel].version.startswith(f"{channel}-")
    single = CandidateModel.load(tmp_path, "trending")
    assert single.version == bundle["trending"].version
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["version"] = "candidates-tampered"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="do not match the manifest"):
        CandidateModels.load(tmp_path)


def test_version_changes_with_the_data(clustered):
    catalog, log = clustered
    first = PopularityCount.fit(catalog, log, T0 + 5 * DAY)
    again = PopularityCount.fit(catalog, log, T0 + 5 * DAY)
    later = PopularityCount.fit(catalog, log, T0 + 6 * DAY)
    assert first.version == again.version != later.version


def test_unknown_channel_and_kind_are_named(bundle, clustered):
    with pytest.raises(KeyError, match="unknown channel 'nope'"):
        bundle.recommend("nope", CandidateRequest(), 3)
    with pytest.raises(ValueError, match="unknown channel 'nope'"):
        CandidateConfig().with_params({"nope": {}})
    catalog, log = clustered
    with pytest.raises(ValueError, match="unknown model kind 'magic'"):
        CandidateModels.fit(catalog, log, T0, CandidateConfig(channels={"x": ("magic", {})}))
