"""A stalled or dead store or endpoint never stalls the recommend API: its breaker opens, answers come at once,
degraded and full; half-open trials find it back within about a second of its return.

A Valkey server and an inference server of their own (SIGSTOP stalls a process, as a hung node would), the real
recommend API over HTTP; requests go out from several threads at once, as several clients would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from containers.inference.server import start_local_server
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


@pytest.fixture
def own_inference(rec_model_dir):
    url, stop = start_local_server(rec_model_dir, workers=1)
    yield url, stop.pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(stop.pid, signal.SIGCONT)
    stop()


def test_a_stalled_endpoint_falls_back_and_serves_again_within_seconds_of_its_return(
        own_valkey, own_inference, rec_model_dir, dataset_end):
    url, pid = own_inference
    with serve_recommend_api(rec_model_dir, scoring_url=url, redis_url=own_valkey.url) as api:
        breaker = api.recommender.backends.scorer.breaker
        assert ask(api, 0, dataset_end)[1]["degraded"] is False
        os.killpg(pid, signal.SIGSTOP)
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda n: ask(api, n, dataset_end), range(30)))
        assert all(status == 200 and len(body["itemList"]) == 10 for status, body, _ in answers)
        reasons = {reason for _, body, _ in answers for reason in body["degradedReasons"]}
        assert reasons <= {"endpoint_timeout", "endpoint_circuit_open"} and "endpoint_circuit_open" in reasons
        os.killpg(pid, signal.SIGCONT)
        resumed = time.monotonic()
        while ask(api, 0, dataset_end)[1]["degraded"] and time.monotonic() - resumed < 10.0:
            time.sleep(0.05)
        # within a few of the breaker's 1 s resets (the server first answers the stale calls it queued)
        assert time.monotonic() - resumed < 5.0 and breaker.state == CLOSED
