"""Faults under steady load: the recommend API while Valkey, then the inference server, stall and come back.

    python -m benchmarks.bench_faults [--rate 20] [--stall-s 10] [--calm-s 10]

An open-loop client (recsys.local.loadtest) sends POST /recommendations at a fixed rate through five phases:
calm; Valkey stalled (SIGSTOP: connections stay open and nothing answers, as a hung node); calm after it
(SIGCONT); the inference server stalled; calm after it. Each phase prints p50 / p99 latency (from each
request's due time, so queueing shows), the share of degraded answers, errors, and, after a stall, the
recovery time: from the SIGCONT to the first answer from which every later one in the phase is not degraded.
CPU time per request (this process: the API and the client; and the inference server) is printed beside them.

The bundle and store are bench_recommend's (synthetic data, 1,000 candidates, 25 results); the API serves
requests concurrently (`serve_recommend_api(concurrency=8)`, as 8 Lambda environments would).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.bench_recommend import CACHE, RESULTS_PER_REQUEST, load_store, prepare
from benchmarks.common import percentile, record
from recsys.local.loadtest import LoadResult, Sample, open_loop

TARGET_RECOVERY_S = 2.0


# The degraded reasons each stall gives: recovery is when answers stop giving them.
STALL_REASONS = {"valkey": "store_unavailable:", "inference": "endpoint_"}


def cpu_s(group: int) -> float:
    """utime + stime, reaped children included, of every process in process group `group`, in seconds."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended
        if int(fields[2]) == group:
            total += sum(int(value) for value in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def recovery_s(samples: list[Sample], resumed_at: float, reason: str) -> float | None:
    """From `resumed_at` to the due time of the first answer after which none is degraded for `reason` (a prefix
    of the stall's degraded reasons) or fails; None: answers never stopped giving it."""
    def hit(sample: Sample) -> bool:
        return not sample.ok or any(r.startswith(reason) for r in sample.reasons)

    ordered = sorted(samples, key=lambda s: s.due_s)
    last_bad = max((s.due_s for s in ordered if hit(s)), default=None)
    if last_bad is None:
        return 0.0
    after = [s.due_s for s in ordered if s.due_s > last_bad]
    return max(0.0, after[0] - resumed_at) if after else None


def phase_figures(name: str, samples: list[Sample]) -> dict[str, float]:
    latencies = [s.latency_ms for s in samples]
    return {"phase": name, "requests": len(samples), "p50_ms": round(percentile(latencies, 50), 2),
            "p99_ms": round(percentile(latencies, 99), 2),
            "degraded_share": round(sum(s.degraded for s in samples) / len(samples), 3),
            "errors": sum(not s.ok for s in samples)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--stall-s", type=float, default=10.0, help="how long each stall lasts")
    parser.add_argument("--calm-s", type=float, default=10.0, help="calm phases before and after each stall")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from containers.inference.server import start_local_server
    from recsys.config import load_stage
    from recsys.local.resources import create_resources
    from recsys.local.services import LocalPlatform
    from recsys.recommend.local import serve_recommend_api

    data, model = prepare(CACHE)
    stage = load_stage()
    phases = [("calm", args.calm_s, None), ("valkey stalled", args.stall_s, "valkey"),
              ("after valkey", args.calm_s, None), ("inference stalled", args.stall_s, "inference"),
              ("after inference", args.calm_s, None)]
    with tempfile.TemporaryDirectory() as tmp:
        platform = LocalPlatform.start(Path(tmp))
        scoring_url, stop_server = start_local_server(model, workers=1)
        try:
            platform.apply_env()
            resources = create_resources(stage)
            users, end, dataset = load_store(platform.valkey.url, data, 200)
            rng = random.Random(7)
            total_s = sum(seconds for _, seconds, _ in phases)
            bodies = [json.dumps({"userId": rng.choice(users), "numResults": RESULTS_PER_REQUEST,
                                  "context": {"platform": "web", "time": end}}).encode()
                      for _ in range(int(args.rate * total_s))]
            targets = {"valkey": platform.valkey.pid, "inference": stop_server.pid}
            with serve_recommend_api(model, scoring_url=scoring_url, redis_url=platform.valkey.url,
                                     events_topic_arn=resources.events_topic_arn, concurrency=8) as api:
                open_loop(api.url, "/recommendations", bodies[:40], 20.0)  # warm-up: caches, connections
                cpu_before = (cpu_s(os.getpgid(0)), cpu_s(stop_server.pid))
                result: list[LoadResult] = []
                load = threading.Thread(target=lambda: result.append(
                    open_loop(api.url, "/recommendations", bodies, args.rate)))
                started = time.perf_counter() + 0.05  # open_loop's own start
                load.start()
                boundaries = []
                for name, seconds, target in phases:
                    boundaries.append((name, time.perf_counter() - started))
                    if target:
                        os.killpg(targets[target], signal.SIGSTOP)
                    time.sleep(seconds)
                    if target:
                        os.killpg(targets[target], signal.SIGCONT)
                load.join()
                cpu_after = (cpu_s(os.getpgid(0)), cpu_s(stop_server.pid))
                api.recommender.side_effects.drain()
        finally:
            stop_server()
            platform.stop()

    samples = list(result[0].samples)
    ends = [start for _, start in boundaries[1:]] + [float("inf")]
    figures = []
    for (name, start), stop in zip(boundaries, ends):
        in_phase = [s for s in samples if start <= s.due_s < stop]
        figure = phase_figures(name, in_phase)
        if name.startswith("after"):
            recovered = recovery_s(in_phase, start, STALL_REASONS[name.removeprefix("after ")])
            figure["recovery_s"] = round(recovered, 2) if recovered is not None else None
        figures.append(figure)
        print(figure, flush=True)
    requests = len(samples)
    cpu_api_ms = (cpu_after[0] - cpu_before[0]) / requests * 1000
    cpu_inference_ms = (cpu_after[1] - cpu_before[1]) / requests * 1000
    conditions = (f"POST /recommendations at {args.rate:g} req/s open loop, 1,000 candidates, {RESULTS_PER_REQUEST} "
                  f"results; phases of {args.calm_s:g} s calm / {args.stall_s:g} s stall (SIGSTOP) each; API serving "
                  f"8 requests at once, inference server (1 worker), Valkey, moto on one machine; {dataset}; CPU "
                  f"per request: API + client {cpu_api_ms:.1f} ms, inference {cpu_inference_ms:.1f} ms; load average "
                  f"{os.getloadavg()[0]:.2f}")
    by_name = {figure["phase"]: figure for figure in figures}
    for store in ("valkey", "inference"):
        stalled, after = by_name[f"{store} stalled"], by_name[f"after {store}"]
        record(f"fault_{store}_stall_p99_ms", figure=f"recommend p99 while {store} is stalled",
               value=stalled["p99_ms"], unit="ms", conditions=conditions,
               extra={"phases": figures})
        record(f"fault_{store}_stall_degraded_share", figure=f"degraded share while {store} is stalled",
               value=stalled["degraded_share"], unit="", conditions=conditions)
        recovered = after["recovery_s"]
        record(f"fault_{store}_recovery_s", figure=f"recovery after a {store} stall", unit="s",
               value=recovered if recovered is not None else float("nan"), conditions=conditions,
               target=f"<= {TARGET_RECOVERY_S:g} s",
               meets=recovered is not None and recovered <= TARGET_RECOVERY_S)
    errors = sum(figure["errors"] for figure in figures)
    record("fault_errors", figure="recommend errors (non-200) across the fault run", value=errors, unit="requests",
           conditions=conditions, target="0", meets=errors == 0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
