"""A feed never runs dry: a user who refreshes without clicking keeps getting full lists and shelves.

The real recommend API over real HTTP, Valkey (impressions, PIT features) and the inference server: every
refresh is shown (its impressions recorded), so "not interested" demotes, then excludes, what keeps being shown;
the supply deepens into the popularity ranking of the whole catalogue, and only when nothing else is left do
excluded items come back.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recsys.local.http_api import post_json
from recsys.recommend.local import serve_recommend_api
from tests.integration.recommend.conftest import USERS

pytestmark = pytest.mark.timeout(600)
CATALOG_ITEMS = 100  # the session bundle's catalogue (conftest.rec_dataset)


@pytest.fixture
def api(loaded_store, rec_model_dir, scoring_url, local_platform):
    server = serve_recommend_api(rec_model_dir, scoring_url=scoring_url, redis_url=local_platform.valkey.url)
    server.recommender.filters.create("no-genre", "EXCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")
    yield server
    server.stop()


def refresh(api, route: str, body: dict) -> dict:
    status, answer = post_json(api.url + route, body)
    assert status == 200, answer
    api.recommender.side_effects.drain()  # the impressions are recorded before the next refresh
    return answer


def forget_impressions(api, user_id: str) -> None:
    store = api.recommender.backends.impressions
    store.redis.delete(store.user_key(user_id))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(k=st.integers(1, 40), refreshes=st.integers(8, 30), filtered=st.booleans(), user=st.sampled_from(USERS),
       step_s=st.sampled_from([1.0, 60.0, 3_600.0]))
def test_refreshing_without_clicks_keeps_every_list_full(api, dataset_end, k, refreshes, filtered, user, step_s):
    forget_impressions(api, user)
    body = {"userId": user, "numResults": k}
    if filtered:
        body.update(filterName="no-genre", filterValues={"GENRE": '"Comedy"'})
    seen: set[str] = set()
    sizes = []
    for n in range(refreshes):
        answer = refresh(api, "/recommendations", {**body, "context": {"time": dataset_end + n * step_s}})
        items = [item["itemId"] for item in answer["itemList"]]
        assert len(items) == len(set(items))
        sizes.append(len(items))
        seen.update(items)
        assert answer["degraded"] is False
        assert ("shortfall" in answer) == (len(items) < k)
    assert sizes == [sizes[0]] * refreshes  # every answer keeps its size
    if k <= 20:  # the catalogue, less the user's history and the filter's exclusions, has 20 items to give
        assert sizes[0] == k
    if refreshes * k > 6 * k:  # more than "exclude after 6 unclicked impressions": the feed moved on
        assert len(seen) > k


def test_the_demoted_and_excluded_items_give_way_to_the_rest_of_the_catalogue(api, dataset_end):
    user, k = USERS[0], 10
    forget_impressions(api, user)
    lists = [[item["itemId"] for item in refresh(api, "/recommendations", {
        "userId": user, "numResults": k, "context": {"time": dataset_end + n}})["itemList"]] for n in range(14)]
    first = lists[0]
    assert all(len(items) == k for items in lists)
    # shown 3 times without a click: demoted (still shown after the others); 6 times: excluded
    assert lists[6] != first and not set(first) & set(lists[7])
    assert len({item for items in lists for item in items}) >= 2 * k


def test_a_user_who_saw_the_whole_catalogue_still_gets_a_full_list_marked_by_the_rule(api, dataset_end):
    user, k = USERS[1], 40
    forget_impressions(api, user)
    answers = [refresh(api, "/recommendations", {"userId": user, "numResults": k,
                                                "context": {"time": dataset_end + n}}) for n in range(25)]
    assert all(len(answer["itemList"]) == k for answer in answers)
    last = answers[-1]["itemList"]
    # Every catalogue item has been shown at least 6 times by now: what is shown came back from exclusion
    assert sum("not_interested" in item["rules"] for item in last) > 0
    assert len({item["itemId"] for answer in answers for item in answer["itemList"]}) <= CATALOG_ITEMS


@pytest.mark.parametrize("route", ["/showcase", "/related", "/popular", "/trending"])
def test_other_routes_keep_their_size_over_refreshes(api, dataset_end, route):
    user = USERS[2]
    forget_impressions(api, user)
    body: dict = {"userId": user}
    if route == "/related":
        body["itemId"] = api.recommender.models.catalog.item_ids[0]
    if route != "/showcase":
        body["numResults"] = 30
    answers = [refresh(api, route, {**body, "context": {"time": dataset_end + n}}) for n in range(12)]
    if route == "/showcase":
        sizes = [[len(shelf["items"]) for shelf in answer["shelves"]] for answer in answers]
        assert all(size == sizes[0] for size in sizes) and all(n == 20 for n in sizes[0][:4] if n)
    else:
        assert all(len(answer["itemList"]) == 30 for answer in answers)
