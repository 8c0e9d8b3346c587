"""Reflection time through the local real-time path: from an event POSTed to the tracker until FeatureReader sees it.

Path: HTTP POST /events (local API Gateway stand-in, real handler) -> SNS (moto server) -> SQS (raw delivery) ->
local event source (real batching rules) -> feature-writer handler -> Valkey -> FeatureReader.

Each event is a `like` on its own item, so it is visible the moment `item_likes` of that item reads 1. Senders
POST one event per call at a fixed rate; a watcher polls FeatureReader for the pending items every 2 ms. Two
event-source settings are measured:

- the stage config (`feature_writer.batch_size` and `batching_window_s`), what the CDK event source mapping deploys;
- batch size 10, no batching window: the lowest-latency setting AWS allows (a batch size above 10 requires a
  batching window of at least 1 s).

    .venv/bin/python -m benchmarks.bench_reflection [--events 1000] [--rate 100]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import redis

from benchmarks.common import percentile, record
from recsys.config import StageConfig, load_stage
from recsys.features import FeatureReader
from recsys.local.http_api import post_json
from recsys.local.realtime import serve_realtime_path
from recsys.local.resources import LocalResources, create_resources
from recsys.local.services import LocalPlatform

TARGET_P99_S = 1.0
POLL_S = 0.002
SENDERS = 4


@dataclass
class Measurement:
    reflection_s: list[float]
    post_s: list[float]
    batches: int
    lost: int


def measure(
    config: StageConfig,
    resources: LocalResources,
    store: redis.Redis,
    *,
    label: str,
    events: int,
    rate: float,
    batch_size: int,
    window_s: float,
) -> Measurement:
    reader = FeatureReader(store, config.pit_features)
    user = f"bench-{label}"
    pending: dict[str, float] = {}
    reflection: list[float] = []
    post_latency: list[float] = []
    lock = threading.Lock()
    sending_done = threading.Event()

    def watch() -> None:
        deadline = None
        while True:
            with lock:
                waiting = dict(pending)
            if not waiting:
                if sending_done.is_set():
                    return
                time.sleep(POLL_S)
                continue
            items = reader.read(user, list(waiting)).items
            seen_at = time.time()
            with lock:
                for item_id, posted_at in waiting.items():
                    if items[item_id]["item_likes"] >= 1:
                        reflection.append(seen_at - posted_at)
                        del pending[item_id]
            if sending_done.is_set():
                deadline = deadline or time.monotonic() + 30
                if time.monotonic() > deadline:
                    return
            time.sleep(POLL_S)

    def send(url: str, index: int, start: float) -> None:
        time.sleep(max(0.0, start + index / rate - time.monotonic()))
        item_id = f"{label}-item-{index}"
        posted_at = time.time()
        with lock:
            pending[item_id] = posted_at
        body = {"user_id": user, "session_id": "bench", "events": [{"event_type": "like", "item_id": item_id,
                                                                   "sent_at": posted_at}]}
        status, answer = post_json(url, body)
        post_latency.append(time.time() - posted_at)
        if status != 200 or answer["accepted"] != 1:
            raise RuntimeError(f"POST /events answered {status}: {answer}")

    settings = {"batch_size": batch_size, "batching_window_s": window_s}
    with serve_realtime_path(resources, config, quiet=True, **settings) as path:
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start = time.monotonic()
        with ThreadPoolExecutor(SENDERS) as senders:
            for future in [senders.submit(send, path.api.url + "/events", i, start) for i in range(events)]:
                future.result()
        sending_done.set()
        watcher.join()
        batches = len(path.runner.summary.batches)
    return Measurement(reflection, post_latency, batches, lost=len(pending))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="events per second (one event per POST)")
    args = parser.parse_args(argv)

    config = load_stage("dev")
    writer = config.feature_writer
    scenarios = [
        ("config", f"batch size {writer.batch_size}, window {writer.batching_window_s} s (dev config)",
         writer.batch_size, writer.batching_window_s),
        ("window0", "batch size 10, no window", 10, 0.0),
    ]
    with tempfile.TemporaryDirectory(prefix="bench-reflection-") as tmp:
        platform = LocalPlatform.start(Path(tmp))
        try:
            platform.apply_env()
            resources = create_resources(config)
            store = redis.Redis.from_url(platform.valkey.url)
            for key, description, batch_size, window_s in scenarios:
                result = measure(
                    config, resources, store, label=key, events=args.events, rate=args.rate,
                    batch_size=batch_size, window_s=window_s,
                )
                conditions = (
                    f"{args.events} events at {args.rate:g}/s, 1 event per POST, {SENDERS} senders; event source "
                    f"{description}; {result.batches} batches; moto server + Valkey 8 on the same machine; "
                    f"POST p50 {percentile(result.post_s, 50) * 1000:.0f} ms"
                )
                if result.lost:
                    raise RuntimeError(f"{result.lost} events never became readable")
                for q in (50, 99):
                    value = percentile(result.reflection_s, q) * 1000
                    record(
                        f"reflection_p{q}_{key}",
                        figure=f"Reflection time p{q}, POST -> readable ({description})",
                        value=value,
                        unit="ms",
                        conditions=conditions,
                        target="p99 ≤ 1,000 ms" if q == 99 else "",
                        meets=value <= TARGET_P99_S * 1000 if q == 99 else None,
                    )
        finally:
            platform.stop()
            os.environ.pop("AWS_ENDPOINT_URL", None)


if __name__ == "__main__":
    main()
