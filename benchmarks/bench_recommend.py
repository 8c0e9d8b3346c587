"""End-to-end recommend latency locally: POST /recommendations over HTTP at fixed request rates.

    python -m benchmarks.bench_recommend [--model-dir DIR] [--rates 10,25,50,100] [--seconds 6]

Everything a production request does runs, on one machine: the recommend API (`serve_recommend_api`: the
Lambda's handler behind a real HTTP server, one invocation at a time as in one Lambda environment) reads the
user's PIT features from a real Valkey, builds 500 or 1,000 candidates from the channels (exploration on), loads
item metadata (TTL cache), assembles the rows with the training assembly, scores them on the inference server
(a separate process, one worker, .npy over HTTP), applies the blender rules (spacing, watched, not interested,
boosts) and logs the exposure (impression events to SNS on a moto server and the impression history to Valkey,
on the API's background thread). The client is open loop: request i is due at t0 + i / rate, and its latency
counts from that due time, so queueing shows (no coordinated omission); past twice the run's length an
overloaded rate stops sending. 25 results per request.

Without --model-dir, a bundle is trained once on seeded synthetic data (1,000 users, 3,000 items, 30,000
events, 20 days) into build/bench-recommend/ and reused by later runs. Target: p99 <= 50 ms.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from benchmarks.common import percentile, record
from recsys.local.loadtest import open_loop

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "build" / "bench-recommend"
SIZES = (500, 1000)
TARGET_P99_MS = 50.0
RESULTS_PER_REQUEST = 25


def prepare(cache: Path) -> tuple[Path, Path]:
    """(dataset dir, model dir), generated and trained once."""
    from recsys.datasets.synthetic import generate
    from recsys.evaluation.pipeline import EvalConfig, train_model

    data, model = cache / "data", cache / "model"
    if not (data / "interactions.csv").exists():
        generate(data, n_users=1000, n_items=3000, n_events=30_000, days=20, seed=11)
    if not (model / "bundle.json").exists():
        config = EvalConfig(ease_l2_grid=(200.0,), negatives_per_user=30, positive_event_types=("like", "purchase"))
        train_model(data, model, config=config)
    return data, model


def load_store(redis_url: str, data: Path, users: int) -> tuple[list[str], float, str]:
    """The catalog and the events of `users` users into Valkey; returns the users, the dataset's end and its size."""
    import redis

    from recsys.config import load_stage
    from recsys.events import Event
    from recsys.features import FeatureWriter, ItemCatalog

    client = redis.Redis.from_url(redis_url)
    config = load_stage().pit_features
    with (data / "items.csv").open(newline="") as handle:
        items = [{k: v for k, v in row.items() if v} for row in csv.DictReader(handle)]
    for start in range(0, len(items), 500):
        ItemCatalog(client, config).upsert_items(items[start:start + 500])
    with (data / "interactions.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    end = max(float(row["TIMESTAMP"]) for row in rows) + 60.0
    chosen = sorted({row["USER_ID"] for row in rows})[:users]
    wanted = set(chosen)
    events = [Event(event_id=f"e{n}", user_id=r["USER_ID"], event_type=r["EVENT_TYPE"], timestamp=float(r["TIMESTAMP"]),
                    item_id=r["ITEM_ID"], event_value=float(r["EVENT_VALUE"]) if r["EVENT_VALUE"] else None)
              for n, r in enumerate(rows) if r["USER_ID"] in wanted]
    writer = FeatureWriter(client, config)
    for start in range(0, len(events), 200):
        writer.apply(events[start:start + 200])
    return chosen, end, (f"catalog of {len(items):,} items, {len(rows):,} events, none written during the run (the "
                         f"reader's item cache keeps every record it read)")


def run_rate(url: str, users: list[str], end: float, rate: float, seconds: float
             ) -> tuple[list[float], float, int, int]:
    """Open-loop load at `rate` for `seconds` (recsys.local.loadtest): (latencies ms, completed requests per
    second, errors, degraded)."""
    rng = random.Random(int(rate))
    bodies = [json.dumps({"userId": rng.choice(users), "numResults": RESULTS_PER_REQUEST,
                          "context": {"platform": "web", "time": end}}).encode()
              for _ in range(max(1, int(rate * seconds)))]
    result = open_loop(url, "/recommendations", bodies, rate)
    return list(result.latencies_ms), result.achieved_rps, result.errors, result.degraded


def record_capacity(size: int, curve: list[dict[str, float]], seconds: float) -> None:
    """Throughput: the most requests per second the API completed at any offered rate (its saturation point)."""
    capacity = max(point["achieved_rps"] for point in curve)
    offered = ", ".join(f"{point['rate']:g}" for point in curve)
    within = [point["rate"] for point in curve if point["p99_ms"] <= TARGET_P99_MS and not point["errors"]]
    record(f"recommend_capacity_rps_{size}", figure=f"recommend throughput (saturation), {size} candidates",
           value=capacity, unit="req/s",
           conditions=f"most completed req/s at offered rates {offered} rps, {seconds:g}s each; one API process "
           f"serving one request at a time; p99 met {TARGET_P99_MS:g} ms at: "
           f"{', '.join(f'{rate:g}' for rate in within) or 'none'} rps; load average {curve[-1]['load']}",
           extra={"curve": curve})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", help="a trained bundle (its dataset: --data-dir); default: trained once")
    parser.add_argument("--data-dir", help="the dataset the bundle was trained on")
    parser.add_argument("--rates", default="10,25,50,100", help="requests per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=6.0, help="per rate")
    parser.add_argument("--users", type=int, default=200, help="users whose events are loaded and who ask")
    args = parser.parse_args()
    rates = [float(rate) for rate in args.rates.split(",")]
    # A SIGTERM (e.g. from `timeout`) unwinds normally, so the servers and processes started here are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from recsys.config import load_stage
    from recsys.local.resources import create_resources
    from recsys.local.services import LocalPlatform
    from recsys.recommend.local import serve_recommend_api

    if args.model_dir:
        data, model = Path(args.data_dir), Path(args.model_dir)
    else:
        data, model = prepare(CACHE)
    stage = load_stage()
    with tempfile.TemporaryDirectory() as tmp:
        platform = LocalPlatform.start(Path(tmp))
        try:
            platform.apply_env()
            resources = create_resources(stage)
            users, end, dataset = load_store(platform.valkey.url, data, args.users)
            curves: dict[int, list[dict[str, float]]] = {}
            for size in SIZES:
                scale = size / 500
                config = replace(stage.recommend, max_candidates=size, channel_quotas=tuple(
                    (channel, int(quota * scale)) for channel, quota in stage.recommend.channel_quotas))
                with serve_recommend_api(model, redis_url=platform.valkey.url, config=config,
                                         events_topic_arn=resources.events_topic_arn) as api:
                    run_rate(api.url, users, end, 20.0, 1.5)  # warm-up: caches, connections
                    curves[size] = []
                    for rate in rates:
                        latencies, achieved, errors, degraded = run_rate(api.url, users, end, rate, args.seconds)
                        point = {"rate": rate, "achieved_rps": round(achieved, 1), "requests": len(latencies),
                                 "p50_ms": round(percentile(latencies, 50), 2),
                                 "p99_ms": round(percentile(latencies, 99), 2), "errors": errors, "degraded": degraded,
                                 "load": round(os.getloadavg()[0], 2)}
                        curves[size].append(point)
                        print(f"{size} candidates @ {rate:g} rps: {point}", flush=True)
                    api.recommender.side_effects.drain()
        finally:
            platform.stop()

    for size, curve in curves.items():
        base = curve[0]
        conditions = (f"POST /recommendations, {size} candidates, {RESULTS_PER_REQUEST} results, open loop at "
                      f"{base['rate']:g} rps for {args.seconds:g}s ({base['requests']} requests); API + inference "
                      f"server (1 worker) + Valkey + moto on one machine; {dataset}; load average {base['load']}")
        record(f"recommend_p50_ms_{size}", figure=f"recommend p50, {size} candidates", value=base["p50_ms"], unit="ms",
               conditions=conditions)
        record(f"recommend_p99_ms_{size}", figure=f"recommend p99, {size} candidates", value=base["p99_ms"], unit="ms",
               conditions=conditions, target=f"<= {TARGET_P99_MS:g} ms", meets=base["p99_ms"] <= TARGET_P99_MS,
               extra={"curve": curve})
        record_capacity(size, curve, args.seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
