"""The recommend API end to end on the local platform: real HTTP, real Valkey, moto, the inference server."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from recsys import aws
from recsys.local.http_api import post_json
from recsys.recommend.assignment import assign_variant
from recsys.recommend.local import serve_recommend_api
from recsys.recommend.wiring import endpoint_weights
from tests.integration.recommend.conftest import USERS, read_impressions

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def api(local_resources, loaded_store, rec_model_dir, scoring_url, stage_config, local_platform):
    aws.client("ssm").put_parameter(Name=stage_config.names.blender_parameter, Type="String", Overwrite=True,
                                    Value=json.dumps({"spacing": {"coefficient": 1}}))
    server = serve_recommend_api(rec_model_dir, scoring_url=scoring_url, redis_url=local_platform.valkey.url,
                                 events_topic_arn=local_resources.events_topic_arn,
                                 blender_parameter=stage_config.names.blender_parameter,
                                 config=replace(stage_config.recommend, blender_reload_s=0.0))  # rules re-read per call
    yield server
    server.stop()


def test_user_recommendations_have_the_full_shape(api, dataset_end, stage_config):
    request = {"userId": USERS[0], "numResults": 10, "context": {"platform": "web", "time": dataset_end}}
    status, body = post_json(api.url + "/recommendations", request)
    assert status == 200, body
    assert body["degraded"] is False and body["degradedReasons"] == []
    expected = assign_variant(USERS[0], stage_config.recommend.experiment, endpoint_weights(stage_config))
    assert body["variant"] == expected and len(body["recommendationId"]) == 32
    items = body["itemList"]
    assert len(items) == 10
    assert [item["position"] for item in items] == list(range(10))
    assert len({item["itemId"] for item in items}) == 10
    for item in items:
        assert set(item) == {"itemId", "score", "channel", "position", "rules", "recommendationId", "variant"}
        assert item["recommendationId"] == body["recommendationId"] and item["variant"] == expected
        assert item["channel"] in {"affinity", "cooccurrence", "embeddings", "ease", "popularity", "trending",
                                   "new", "explore"}
    scores = [item["score"] for item in items if not item["rules"]]
    assert scores == sorted(scores, reverse=True)


def test_same_user_same_day_gets_the_same_list(api, dataset_end):
    request = {"userId": USERS[1], "numResults": 15, "context": {"time": dataset_end}}
    first = post_json(api.url + "/recommendations", request)[1]
    second = post_json(api.url + "/recommendations", request)[1]
    assert [i["itemId"] for i in first["itemList"]] == [i["itemId"] for i in second["itemList"]]
    assert first["recommendationId"] != second["recommendationId"]


def test_history_items_are_not_recommended(api, dataset_end, loaded_store, stage_config):
    from recsys.features import FeatureReader

    recent = FeatureReader(loaded_store, stage_config.pit_features).read(USERS[0], [], now=dataset_end)
    seen = {entry["item_id"] for entry in recent.user["user_recent_items"]}
    assert seen
    body = post_json(api.url + "/recommendations", {"userId": USERS[0], "numResults": 30,
                                                    "context": {"time": dataset_end}})[1]
    assert not seen & {item["itemId"] for item in body["itemList"]}


def test_exposures_are_logged_as_impression_events(api, dataset_end, local_resources):
    body = post_json(api.url + "/recommendations", {"userId": USERS[0], "numResults": 5, "sessionId": "s-1",
                                                    "context": {"time": dataset_end}})[1]
    api.recommender.side_effects.drain()
    events = read_impressions(local_resources.feature_queue_url, 1)
    assert len(events) == 1
    event = events[0]
    assert event["recommendation_id"] == body["recommendationId"]
    assert event["user_id"] == USERS[0] and event["session_id"] == "s-1"
    assert event["impression"] == [item["itemId"] for item in body["itemList"]]
    assert event["properties"]["variant"] == body["variant"] and event["properties"]["degraded"] == "false"
    shown = api.recommender.backends.impressions.user_impressions(USERS[0])
    assert set(shown) == set(event["impression"])


def test_filter_by_name_with_values_and_backfill(api, dataset_end):
    status, created = post_json(api.url + "/filters", {"name": "no-genre",
                                                       "expression": "EXCLUDE ItemID WHERE Items.GENRES IN ($G)"})
    assert status == 201, created
    unfiltered = post_json(api.url + "/recommendations", {"userId": USERS[2], "numResults": 20,
                                                          "context": {"time": dataset_end}})[1]
    genres = api.recommender.item_cache.get_many([i["itemId"] for i in unfiltered["itemList"]],
                                                 api.recommender.backends.item_metadata)
    top_genre = max({g for m in genres.values() for g in m.get("GENRES", "").split("|") if g},
                    key=lambda g: sum(g in m.get("GENRES", "").split("|") for m in genres.values()))
    request = {"userId": USERS[2], "numResults": 20, "filterName": "no-genre",
               "filterValues": {"G": json.dumps(top_genre)}, "context": {"time": dataset_end}}
    status, body = post_json(api.url + "/recommendations", request)
    assert status == 200, body
    kept = [item["itemId"] for item in body["itemList"]]
    assert len(kept) == 20  # backfilled to the requested size
    metadata = api.recommender.item_cache.get_many(kept, api.recommender.backends.item_metadata)
    assert all(top_genre not in metadata[item].get("GENRES", "").split("|") for item in kept)


def test_unknown_filter_and_missing_values_are_4xx(api):
    status, body = post_json(api.url + "/recommendations", {"userId": USERS[0], "filterName": "nope"})
    assert status == 404 and body["errors"][0]["field"] == "filterName"
    post_json(api.url + "/filters", {"name": "genre-only", "expression": "INCLUDE ItemID WHERE Items.GENRES IN ($G)"})
    status, body = post_json(api.url + "/recommendations", {"userId": USERS[0], "filterName": "genre-only"})
    assert status == 400 and body["message"] == "filterValues: missing value for $G"


def test_showcase_is_a_page_of_shelves_from_the_platform_layout(api, dataset_end, stage_config, loaded_store):
    layout = {"placement": {"layouts": {"web": ["trending", "for_you", "continue_watching"]}}}
    aws.client("ssm").put_parameter(Name=stage_config.names.blender_parameter, Type="String", Overwrite=True,
                                    Value=json.dumps(layout))
    status, body = post_json(api.url + "/showcase", {"userId": USERS[0], "context": {"platform": "web",
                                                                                      "time": dataset_end}})
    assert status == 200, body
    assert [shelf["shelfId"] for shelf in body["shelves"]][:2] == ["trending", "for_you"]
    assert "popular" not in [shelf["shelfId"] for shelf in body["shelves"]]
    for shelf in body["shelves"]:
        assert all(item["recommendationId"] == body["recommendationId"] for item in shelf["items"])
    api.recommender.side_effects.drain()
    day = datetime.fromtimestamp(dataset_end, timezone.utc).date()
    snapshot = api.recommender.backends.snapshots.get(USERS[0], day)
    assert snapshot is not None and snapshot.fingerprint == body["fingerprint"]
    assert snapshot.shelves[0][0] == "trending"


def test_ranking_related_popular_trending(api, dataset_end):
    items = ["i000001", "i000002", "i000003", "unknown-item"]
    status, body = post_json(api.url + "/ranking", {"userId": USERS[0], "itemList": items,
                                                    "context": {"time": dataset_end}})
    assert status == 200, body
    assert sorted(i["itemId"] for i in body["personalizedRanking"]) == sorted(items)
    status, body = post_json(api.url + "/related", {"itemId": "i000001", "numResults": 5})
    assert status == 200 and len(body["itemList"]) == 5 and "i000001" not in [i["itemId"] for i in body["itemList"]]
    status, body = post_json(api.url + "/related", {"itemId": "missing"})
    assert status == 404 and body["errors"] == [{"field": "itemId", "message": "unknown item 'missing'"}]
    for route in ("popular", "trending"):
        status, body = post_json(api.url + f"/{route}", {"numResults": 7})
        assert status == 200 and len(body["itemList"]) == 7


def test_endpoint_down_falls_back_and_marks_degraded(api, dataset_end, rec_model_dir):
    scorer = api.recommender.backends.scorer
    real = scorer.scorer
    scorer.scorer = type(real)("http://127.0.0.1:9")  # nothing listens on the discard port
    try:
        status, body = post_json(api.url + "/recommendations", {"userId": USERS[0], "numResults": 10,
                                                                "context": {"time": dataset_end}})
    finally:
        scorer.scorer = real
    assert status == 200
    assert body["degraded"] is True and body["degradedReasons"] == ["endpoint_error"]
    assert len(body["itemList"]) == 10


def test_redis_down_degrades_instead_of_failing(rec_model_dir, scoring_url, dataset_end, stage_config):
    from recsys.local.services import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    with serve_recommend_api(rec_model_dir, scoring_url=scoring_url, redis_url=dead) as server:
        status, body = post_json(server.url + "/recommendations", {"userId": USERS[0], "numResults": 10,
                                                                   "context": {"time": dataset_end}})
        # A filter never read before cannot be applied without its store: retry later, never a 500.
        filtered = post_json(server.url + "/recommendations", {"userId": USERS[0], "filterName": "f"})
        listed = post_json(server.url + "/filters/list", {})
    assert filtered[0] == 503 and "filter store is unavailable" in filtered[1]["message"]
    assert listed[0] == 503
    assert status == 200, body
    assert body["degraded"] is True
    # every part served without its store is named, the first to fail first
    assert body["degradedReasons"][0] == "store_unavailable:pit_features"
    assert {"store_unavailable:item_metadata", "store_unavailable:impressions"} <= set(body["degradedReasons"])
    assert all(reason.startswith("store_unavailable:") for reason in body["degradedReasons"])
    assert len(body["itemList"]) == 10


def test_bad_input_is_a_4xx_naming_the_field(api):
    status, body = post_json(api.url + "/recommendations", {"userId": USERS[0], "numResults": 0})
    assert status == 400 and body["errors"][0]["field"] == "numResults"
    status, body = post_json(api.url + "/nowhere", {})
    assert status == 404 and body["errors"][0]["field"] == "path"


def test_editor_boost_goes_first_and_switches_off_on_low_ctr(api, dataset_end, loaded_store, stage_config):
    from recsys.events import Event
    from recsys.features import FeatureWriter

    request = {"userId": USERS[0], "numResults": 10, "context": {"time": dataset_end}}
    impressions = api.recommender.backends.impressions

    def forget_impressions() -> None:  # only the boost rule decides, not "not interested" after repeated views
        api.recommender.side_effects.drain()
        loaded_store.delete(impressions.user_key(USERS[0]))

    plain = [item["itemId"] for item in post_json(api.url + "/recommendations", request)[1]["itemList"]]
    forget_impressions()
    flagged = plain[5]
    loaded_store.sadd(f"{stage_config.prefix}:blender:boosts", flagged)
    stats = []
    api.recommender.on_response = stats.append
    boosted = post_json(api.url + "/recommendations", request)[1]["itemList"]
    forget_impressions()
    assert boosted[0]["itemId"] == flagged and "boost" in boosted[0]["rules"]
    assert stats[-1].boosts_disabled == 0

    # The neighbours are clicked far more often than the flagged title: the boost switches itself off.
    neighbours = [item for item in plain if item != flagged][:4]
    clicks = [Event(event_id=f"c-{item}-{n}", user_id=f"other-{n}", event_type="click", timestamp=dataset_end - 600,
                    item_id=item) for item in neighbours for n in range(300)]
    FeatureWriter(loaded_store, stage_config.pit_features).apply(clicks)
    counts_key = impressions.item_counts_key
    loaded_store.hset(counts_key, mapping={item: 1000 for item in [*neighbours, flagged]})
    after = post_json(api.url + "/recommendations", request)[1]["itemList"]
    assert after[0]["itemId"] != flagged and all("boost" not in item["rules"] for item in after)
    assert stats[-1].boosts_disabled == 1


def test_items_shown_repeatedly_without_a_click_make_room_for_others(api, dataset_end):
    request = {"userId": USERS[1], "numResults": 5, "context": {"time": dataset_end}}
    shown = []
    for _ in range(4):
        shown.append([item["itemId"] for item in post_json(api.url + "/recommendations", request)[1]["itemList"]])
        api.recommender.side_effects.drain()  # the impression history is written off the hot path
    assert shown[0] == shown[1] == shown[2]
    assert not set(shown[3]) & set(shown[0])  # demoted after 3 unclicked impressions (not_interested.demote_after)


def test_filters_are_created_listed_described_and_deleted_by_name(api):
    expression = 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click")'
    status, created = post_json(api.url + "/filters", {"name": "no-clicked", "expression": expression})
    assert status == 201 and created["name"] == "no-clicked" and created["expression"] == expression
    assert post_json(api.url + "/filters", {"name": "no-clicked", "expression": expression})[0] == 409
    status, body = post_json(api.url + "/filters", {"name": "bad", "expression": "EXCLUDE ItemID WHERE Items GENRE"})
    assert status == 400 and body["errors"][0]["field"] == "expression" and "at column 28" in body["message"]
    status, body = post_json(api.url + "/filters", {"name": "-bad", "expression": expression})
    assert status == 400 and body["errors"][0]["field"] == "name"
    assert [f["name"] for f in post_json(api.url + "/filters/list", {})[1]["filters"]] == ["no-clicked"]
    assert post_json(api.url + "/filters/describe", {"name": "no-clicked"})[1]["expression"] == expression
    assert post_json(api.url + "/filters/delete", {"name": "no-clicked"}) == (200, {"deleted": "no-clicked"})
    status, body = post_json(api.url + "/filters/delete", {"name": "no-clicked"})
    assert status == 404 and body["message"] == "name: no filter named 'no-clicked'"


def test_anonymous_showcase_logs_nothing_and_stores_no_snapshot(api, dataset_end, local_resources, loaded_store):
    status, body = post_json(api.url + "/showcase", {"context": {"platform": "web", "time": dataset_end}})
    assert status == 200 and body["shelves"] and body["degraded"] is False
    api.recommender.side_effects.drain()
    assert read_impressions(local_resources.feature_queue_url, 0) == []
    assert not list(loaded_store.scan_iter(match="*:showcase:*"))
