"""The request flow in process (no store: the parts it would give are off), with an in-process scorer."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from recsys.blender import BlenderConfig
from recsys.config import RecommendConfig
from recsys.filters import FilterRegistry
from recsys.models.base import CandidateRequest
from recsys.models.bundle import CandidateModels
from recsys.models.data import Catalog, Interactions
from recsys.ranking.features import FeatureSchema
from recsys.recommend import candidates as pools
from recsys.recommend.breaker import CircuitBreaker
from recsys.recommend.request import parse_request
from recsys.recommend.scoring import GuardedScorer
from recsys.recommend.service import Backends, Recommender
from recsys.tracker.validation import RequestRejected

DAY = 86_400.0


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from recsys.datasets.synthetic import generate
    from recsys.evaluation.data import load_dataset

    folder = tmp_path_factory.mktemp("service-data")
    generate(folder, n_users=100, n_items=120, n_events=3_000, days=20, seed=5)
    frames = load_dataset(folder)
    catalog = Catalog.from_frame(frames.items, frames.interactions["ITEM_ID"].astype(str))
    log = Interactions.from_frame(frames.interactions, catalog)
    end = float(frames.interactions["TIMESTAMP"].max()) + 1.0
    return CandidateModels.fit(catalog, log, end), end


class PopularityScorer:
    """Scores rows by their popularity column: a stand-in for the endpoint."""

    def __init__(self, names) -> None:
        self.column = list(names).index("m_popularity")
        self.calls = 0
        self.fail = False

    def score(self, rows, variant, schema_id):
        self.calls += 1
        if self.fail:
            raise ConnectionError("endpoint down")
        return np.nan_to_num(rows[:, self.column].astype(float)) + np.arange(len(rows)) * 1e-6


def recommender(models, config=RecommendConfig(max_candidates=80), scorer=None, stats=None):
    schema = FeatureSchema()
    scorer = scorer or PopularityScorer(schema.names)
    guarded = GuardedScorer(scorer, 2.0, CircuitBreaker(3, 30.0))
    return Recommender(models, schema, config, BlenderConfig, FilterRegistry(), Backends(scorer=guarded),
                       on_response=(stats.append if stats is not None else lambda s: None))


def test_same_request_gives_the_same_list_and_metrics(world):
    models, end = world
    stats = []
    rec = recommender(models, stats=stats)
    request = parse_request("recommendations", {"userId": "u0000001", "numResults": 10, "context": {"time": end}},
                            rec.config)
    first, second = rec.handle(request), rec.handle(request)
    assert [i["itemId"] for i in first["itemList"]] == [i["itemId"] for i in second["itemList"]]
    assert len(first["itemList"]) == 10 and first["degraded"] is False
    assert len(stats) == 2 and stats[0].latency_ms > 0 and not stats[0].fallback
    assert stats[0].exposures == 1  # one impression event per list


def test_endpoint_failures_fall_back_then_the_breaker_opens(world):
    models, end = world
    stats = []
    scorer = PopularityScorer(FeatureSchema().names)
    rec = recommender(models, scorer=scorer, stats=stats)
    scorer.fail = True
    request = parse_request("recommendations", {"userId": "u0000002", "context": {"time": end}}, rec.config)
    reasons = [rec.handle(request)["degradedReasons"] for _ in range(4)]
    assert reasons == [["endpoint_error"]] * 3 + [["endpoint_circuit_open"]]
    assert scorer.calls == 3
    assert all(s.fallback and s.degraded for s in stats) and [s.circuit_open for s in stats] == [False] * 3 + [True]


def test_unknown_filter_is_404_and_filtered_lists_are_backfilled(world):
    models, end = world
    rec = recommender(models)
    rec.backends.item_metadata = lambda ids: {item: {"ITEM_ID": item} for item in ids}
    with pytest.raises(RequestRejected) as caught:
        rec.handle(parse_request("popular", {"filterName": "missing"}, rec.config))
    assert caught.value.status == 404 and caught.value.errors[0].field == "filterName"
    top = [i["itemId"] for i in rec.handle(parse_request("popular", {"numResults": 8}, rec.config))["itemList"]]
    rec.filters.create("no-ids", "EXCLUDE ItemID WHERE Items.ITEM_ID IN ($IDS)")
    values = {"IDS": ",".join(f'"{item}"' for item in top[:3])}
    body = rec.handle(parse_request("popular", {"numResults": 5, "filterName": "no-ids", "filterValues": values},
                                    rec.config))
    assert [i["itemId"] for i in body["itemList"]] == top[3:8]


@pytest.mark.parametrize("weight", [0.0, 0.25, 0.5])
def test_candidate_pool_quotas_exploration_and_exclusions(world, weight):
    models, end = world
    history = tuple(models.catalog.item_ids[:5].tolist())
    query = models.query(CandidateRequest(user_id="u", history=history, now=end, exclude=frozenset(history)))
    created = pools.item_created(models)
    young = pools.young_items(created, end, 10.0)
    pool = pools.candidate_pool(models, query, RecommendConfig().channel_quotas, 60, exploration_weight=weight,
                                young=young, seed=7)
    items = pool.items.tolist()
    assert len(items) == len(set(items)) == 60
    assert not set(items) & set(query.exclude.tolist())
    explored = [i for i, channel in zip(items, pool.channels) if channel == pools.EXPLORE]
    assert len(explored) <= round(weight * 60)
    assert set(explored) <= set(young.tolist())
    again = pools.candidate_pool(models, query, RecommendConfig().channel_quotas, 60, exploration_weight=weight,
                                 young=young, seed=7)
    assert again.items.tolist() == items and again.channels == pool.channels


def test_young_items_respect_the_age_cutoff(world):
    models, end = world
    created = pools.item_created(models)
    young = pools.young_items(created, end, 5.0)
    ages = (end - created[young]) / DAY
    assert np.all((ages >= 0) & (ages <= 5.0))
    older = np.setdiff1d(np.flatnonzero(np.isfinite(created)), young)
    assert np.all(((end - created[older]) / DAY > 5.0) | (created[older] > end))


def test_related_items_of_an_unknown_item_is_404(world):
    models, end = world
    rec = recommender(models)
    with pytest.raises(RequestRejected) as caught:
        rec.handle(parse_request("related", {"itemId": "nope"}, rec.config))
    assert caught.value.status == 404 and caught.value.errors[0].field == "itemId"


def test_no_exposure_is_logged_for_batch_requests(world):
    models, end = world
    rec = recommender(models)
    request = replace(parse_request("recommendations", {"userId": "u1"}, rec.config), log_exposure=False)
    stats = []
    rec.on_response = stats.append
    rec.handle(request)
    assert stats[0].exposures == 0


class CapturingScorer:
    def __init__(self) -> None:
        self.rows = None

    def score(self, rows, variant, schema_id):
        self.rows = rows
        return np.arange(len(rows), dtype=float)


def test_batch_features_from_the_feature_store_and_the_item_cache_reach_the_rows(world):
    models, end = world
    schema = FeatureSchema(user=("user_plays_60d",), item=("item_plays_60d",))
    scorer = CapturingScorer()
    item_reads = []

    def item_features(ids):
        item_reads.append(len(ids))
        return {item: {"item_plays_60d": float(n)} for n, item in enumerate(ids) if n % 2 == 0}

    backends = Backends(scorer=GuardedScorer(scorer, 2.0, CircuitBreaker(3, 30.0)),
                        user_features=lambda user_id: {"user_plays_60d": 42.0} if user_id == "u0000001" else None,
                        item_features=item_features)
    rec = Recommender(models, schema, RecommendConfig(max_candidates=40), BlenderConfig, FilterRegistry(), backends)
    items = ["i000001", "i000002", "i000003"]
    request = parse_request("ranking", {"userId": "u0000001", "itemList": items, "context": {"time": end}}, rec.config)
    rec.handle(request)
    user_column, item_column = schema.names.index("user_plays_60d"), schema.names.index("item_plays_60d")
    assert scorer.rows[:, user_column].tolist() == [42.0, 42.0, 42.0]
    assert scorer.rows[0, item_column] == 0.0 and np.isnan(scorer.rows[1, item_column])
    assert scorer.rows[2, item_column] == 2.0
    rec.handle(request)
    assert item_reads == [3]  # the second request is served from the TTL cache


class FailingFilterStore:
    """A FilterStore whose backend goes down on demand."""

    def __init__(self) -> None:
        from recsys.filters import InMemoryFilterStore

        self.inner = InMemoryFilterStore()
        self.down = False

    def __getattr__(self, name):
        if self.down:
            raise ConnectionError("filter store down")
        return getattr(self.inner, name)


def test_a_filter_store_outage_serves_known_filters_degraded_and_refuses_unknown_ones(world):
    from recsys.tracker.service import ServiceUnavailable

    models, end = world
    store = FailingFilterStore()
    rec = recommender(models, config=RecommendConfig(max_candidates=40, blender_reload_s=0.001))
    rec.backends.store_errors = (ConnectionError,)
    rec.filters = FilterRegistry(store)
    rec.filters.create("no-clicked", 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")')
    request = parse_request("popular", {"filterName": "no-clicked", "numResults": 3}, rec.config)
    assert rec.handle(request)["degraded"] is False
    store.down = True
    time.sleep(0.01)  # past the cache's TTL: the store is asked, and fails
    body = rec.handle(request)
    assert body["degradedReasons"] == ["store_unavailable:filters"] and len(body["itemList"]) == 3
    with pytest.raises(ServiceUnavailable, match="filter store is unavailable"):
        rec.handle(parse_request("popular", {"filterName": "other"}, rec.config))


def test_the_make_up_banner_names_an_item_of_the_served_catalogue(world):
    from recsys.local.serve import _some_item

    models, _ = world
    item = _some_item(models)
    assert models.catalog.index_of(item) >= 0  # a real item id (not a Redis key's bucket tag): /related answers
    assert item == models.recommend("popularity", CandidateRequest(), 1).item_ids[0]
