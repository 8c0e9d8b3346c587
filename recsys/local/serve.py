"""`make up`: the local platform kept running for exploration, its APIs served until Ctrl-C.

If the services are not running yet, or no model has been deployed, it first runs `make demo`'s flow and keeps
the services up (data imported, features written, a model trained and deployed). Then it serves, in the
foreground, the event tracker API and the recommend API on fixed ports, with the deployed variants' inference
servers, and prints the calls to try. Ctrl-C stops the APIs; moto and Valkey keep running until `make down`.
"""

from __future__ import annotations

import signal
import threading
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from recsys.config import CHAMPION_VARIANT, StageConfig, load_stage
from recsys.models.base import CandidateRequest
from recsys.models.bundle import CandidateModels

TRACKER_PORT = 8080
RECOMMEND_PORT = 8081


def curl_examples(tracker_url: str, recommend_url: str, user: str, item: str) -> str:
    post = "curl -s -XPOST -H 'Content-Type: application/json'"
    return "\n".join([
        f"{post} {tracker_url}/events -d '{{\"user_id\": \"{user}\", \"session_id\": \"s1\", \"events\": "
        f"[{{\"event_type\": \"click\", \"item_id\": \"{item}\", \"sent_at\": '$(date +%s)'}}]}}'",
        f"{post} {recommend_url}/recommendations -d '{{\"userId\": \"{user}\", \"numResults\": 10}}'",
        f"{post} {recommend_url}/showcase -d '{{\"userId\": \"{user}\", \"context\": {{\"platform\": \"web\"}}}}'",
        f"{post} {recommend_url}/related -d '{{\"itemId\": \"{item}\", \"numResults\": 5}}'",
        f"{post} {recommend_url}/popular -d '{{\"numResults\": 5}}'",
        f"{post} {recommend_url}/filters -d '{{\"name\": \"no-drama\", "
        f"\"expression\": \"EXCLUDE ItemID WHERE Items.GENRES IN (\\\"Drama\\\")\"}}'",
        f"{post} {recommend_url}/recommendations -d '{{\"userId\": \"{user}\", \"filterName\": \"no-drama\"}}'",
    ])


def recommend_api_on(variants, urls: dict[str, str], config: StageConfig, resources, redis_url: str, *,
                     port: int = 0):
    """The recommend API on deployed local variants (recsys.local.daily.Variant, scored at `urls`), with the
    deployed stack's settings: the variants' weights, exposures to the events topic and the lake's stream, the
    blender rules parameter. `make demo` and `make up` both start it so."""
    from recsys.recommend.local import serve_recommend_api

    champion = next(v for v in variants if v.name == CHAMPION_VARIANT)
    return serve_recommend_api(
        champion.model_dir, scoring_url=urls, redis_url=redis_url, stage=config.stage,
        events_topic_arn=resources.events_topic_arn, firehose_stream=config.names.firehose_stream,
        blender_parameter=config.names.blender_parameter, port=port,
        config=replace(config.recommend, variant_weights=tuple((v.name, v.weight) for v in variants)))


def _some_user(store) -> str:
    """A user id with PIT features, for the printed examples (user keys are `pit:{u:<id>}:...`)."""
    for key in store.scan_iter(match="pit:{u:*", count=1000):
        return key.decode().split("{u:", 1)[1].split("}", 1)[0]
    return "u1"


def _some_item(models: CandidateModels) -> str:
    """The served catalogue's most popular item, for the printed examples (so /related has neighbours)."""
    if "popularity" in models:
        return models.recommend("popularity", CandidateRequest(), 1).item_ids[0]
    return str(models.catalog.item_ids[0])


def serve_apis(state_file: Path, stage: str | None, *, tracker_port: int = TRACKER_PORT,
               recommend_port: int = RECOMMEND_PORT, stop: threading.Event | None = None) -> None:
    """Serve until `stop` is set (or Ctrl-C), on the running services and the last deployed model."""
    from containers.inference.server import start_local_server
    from recsys.local.daily import load_deployment, pipeline_state_dir
    from recsys.local.platform import attach_or_start
    from recsys.local.realtime import serve_realtime_path
    from recsys.local.resources import create_resources
    from recsys.store import redis_from_env

    config = load_stage(stage)
    platform, _ = attach_or_start(state_file)
    resources = create_resources(config)
    variants = load_deployment(pipeline_state_dir(state_file, config.stage))
    if not variants:
        raise RuntimeError("no model deployed: run `make demo` (or `make up` on stopped services) first")
    with ExitStack() as stack:
        urls = {}
        for variant in variants:
            url, stop_server = start_local_server(variant.model_dir)
            stack.callback(stop_server)
            urls[variant.name] = url
        path = stack.enter_context(serve_realtime_path(resources, config, port=tracker_port, quiet=True))
        # The recommend API's exposures share the tracker's local Firehose (serve_realtime_path registered it).
        api = stack.enter_context(recommend_api_on(variants, urls, config, resources, platform.valkey.url,
                                                   port=recommend_port))
        store = redis_from_env()
        user, item = _some_user(store), _some_item(api.recommender.models)
        print(f"event tracker API: {path.api.url}   recommend API: {api.url}")
        print("variants: " + ", ".join(f"{v.name} {v.version} ({v.weight:.0%}) on {urls[v.name]}" for v in variants))
        print("try:\n" + curl_examples(path.api.url, api.url, user, item))
        print("Ctrl-C stops the APIs; `make down` stops moto and Valkey.", flush=True)
        if threading.current_thread() is threading.main_thread():
            # PySpark's SparkContext leaves its own SIGINT handler behind after the demo's pipeline stopped it.
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            (stop or threading.Event()).wait()
        except KeyboardInterrupt:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the shutdown short
            print("\nstopping the APIs")


def up(state_file: Path, stage: str | None, dataset: Path, *, tracker_port: int = TRACKER_PORT,
       recommend_port: int = RECOMMEND_PORT) -> None:
    from recsys.local.daily import load_deployment, pipeline_state_dir
    from recsys.local.demo import run_demo
    from recsys.local.services import LocalPlatform

    config = load_stage(stage)
    if LocalPlatform.load(state_file) is None or not load_deployment(pipeline_state_dir(state_file, config.stage)):
        run_demo(state_file, stage=stage, dataset=dataset, keep_running=True)
    serve_apis(state_file, stage, tracker_port=tracker_port, recommend_port=recommend_port)
