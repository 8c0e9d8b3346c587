"""A stalled or dead store never stalls the recommend API: its breaker opens, answers come at once, degraded,
and full; half-open trials find the store back within about a second.

A Valkey server of its own (SIGSTOP stalls it, as a hung node would), the real recommend API over HTTP, the
inference server; requests go out from several threads at once, as several clients would.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from recsys.features import ItemCatalog
from recsys.local.http_api import post_json
from recsys.local.services import start_valkey
from recsys.recommend.breaker import CLOSED, OPEN
from recsys.recommend.local import serve_recommend_api
from recsys.recommend.service import REDIS
from recsys.store import redis_from_url
from tests.integration.recommend.conftest import USERS, _rows

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def own_valkey(tmp_path, rec_dataset, stage_config):
    service = start_valkey(tmp_path)
    client = redis_from_url(service.url)
    items = [{k: v for k, v in row.items() if v not in ("", None)} for row in _rows(rec_dataset / "items.csv")]
    ItemCatalog(client, stage_config.pit_features).upsert_items(items)
    yield service
    if service.alive():
        os.kill(service.pid, signal.SIGCONT)
    service.stop()


@pytest.fixture
def api(own_valkey, rec_model_dir, scoring_url):
    server = serve_recommend_api(rec_model_dir, scoring_url=scoring_url, redis_url=own_valkey.url)
    server.recommender.filters.create("no-genre", "EXCLUDE ItemID WHERE Items.GENRES IN ($GENRE)")
    yield server
    server.stop()


def ask(api, n: int, end: float) -> tuple[int, dict, float]:
    began = time.monotonic()
    status, body = post_json(api.url + "/recommendations",
                             {"userId": USERS[n % 3], "numResults": 10, "context": {"time": end}})
    return status, body, time.monotonic() - began


def test_a_stalled_store_opens_its_breaker_answers_stay_full_and_recover(api, own_valkey, dataset_end):
    breaker = api.recommender.backends.breakers[REDIS]
    status, body, _ = ask(api, 0, dataset_end)
    assert status == 200 and body["degraded"] is False and breaker.state == CLOSED

    os.kill(own_valkey.pid, signal.SIGSTOP)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda n: ask(api, n, dataset_end), range(40)))
    assert [status for status, _, _ in answers] == [200] * 40
    assert all(body["degraded"] for _, body, _ in answers)
    assert all(any(r.startswith("store_unavailable:") for r in body["degradedReasons"]) for _, body, _ in answers)
    assert all(len(body["itemList"]) == 10 for _, body, _ in answers)  # served from the model's own channels
    assert breaker.state == OPEN or breaker.state == "half_open"
    # Only the first failures and the half-open trials waited on the store: most answers did not.
    timeout_s = api.recommender.config.store_timeout_ms / 1000.0
    waited = sum(elapsed >= timeout_s for _, _, elapsed in answers)
    assert waited <= 20, sorted(round(e, 3) for _, _, e in answers)

    os.kill(own_valkey.pid, signal.SIGCONT)
    deadline = time.monotonic() + 10.0
    while True:
        status, body, _ = ask(api, 0, dataset_end)
        if not body["degraded"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert status == 200 and body["degraded"] is False and breaker.state == CLOSED


def test_a_dead_store_fails_fast_and_a_filter_never_read_is_a_503_not_a_5xx_stack(api, own_valkey, dataset_end):
    own_valkey.stop()
    statuses = [ask(api, n, dataset_end)[0] for n in range(6)]
    assert statuses == [200] * 6
    status, body = post_json(api.url + "/recommendations", {
        "userId": USERS[0], "filterName": "no-genre", "filterValues": {"GENRE": '"Comedy"'}})
    assert status == 503 and body["message"] == "filters: the filter store is unavailable; retry later"
    status, body = post_json(api.url + "/filters/list", {})
    assert status == 503 and body["message"] == "filters: the filter store is unavailable; retry later"
