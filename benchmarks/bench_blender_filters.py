"""Latency of the blender alone and of filter evaluation alone, for 1,000 candidates.

    python -m benchmarks.bench_blender_filters [--iterations 2000]

Prints p50/p99/max per scenario, as wall time (what a request waits, including any CPU contention from other
processes) and as the thread's CPU time (the work itself), with the conditions: CPU, cores, Python, load
average. The headline figures go to benchmarks/results.json. Data is synthetic and seeded (random.Random(7)):
- blender: 10 shelves x 100 candidates (1 banner shelf, 9 ML shelves) drawn from 600 titles (so shelves
  overlap), 30% paid, 6 franchises on ~40% of titles, 80 watched titles, 120 with impression history,
  4 editor boosts, CTR for every title, a child viewer; spacing 2, dedup top 5, paid share 30%/shelf and
  25%/page, 40 paid per page; 20 items per shelf (realistic) and 100 per shelf (every survivor shown);
- filters: 1,000 candidates with 1-3 of 7 genres, downloads and price; a 200-event history.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

from benchmarks.common import percentile, record
from recsys.blender import (
    BlenderConfig,
    BlendRequest,
    Candidate,
    Exposure,
    ItemInfo,
    ShelfInput,
    WatchState,
    blend,
)
from recsys.filters import compile_filter

NOW = 1_700_000_000.0
CATALOGUE = 3000
SHELVES = 10
PER_SHELF = 100  # 10 x 100 = 1,000 candidates


def blender_request(rng: random.Random) -> BlendRequest:
    ids = [f"title-{n}" for n in range(CATALOGUE)]
    franchises = [None] * 8 + [f"franchise-{k}" for k in range(6)]
    items = {
        i: ItemInfo(franchise=rng.choice(franchises), paid=rng.random() < 0.3, animated_series=rng.random() < 0.1)
        for i in ids
    }
    hot = ids[:600]  # shelves overlap, as real ML sources do
    shelves = [
        ShelfInput(
            f"shelf-{s}",
            [
                Candidate(
                    rng.choice(hot),
                    rng.random(),
                    rng.choice(["exploit", "explore", "popular", "trending", "new"]),
                    published_at=NOW - rng.randint(0, 30) * 86400,
                )
                for _ in range(PER_SHELF)
            ],
            "banner" if s == 0 else "ml",
        )
        for s in range(SHELVES)
    ]
    watched = rng.sample(hot, 80)
    shown = rng.sample(hot, 120)
    return BlendRequest(
        user_id="user-1",
        day=date(2024, 5, 1),
        now=NOW,
        platform="web",
        shelves=shelves,
        items=items,
        boosts=frozenset(rng.sample(hot, 4)),
        ctr={i: (rng.randint(0, 5000), rng.randint(0, 200)) for i in hot},
        watch={i: WatchState(rng.random(), NOW - rng.randint(0, 10**6)) for i in watched},
        exposures={
            i: Exposure(tuple(NOW - rng.randint(1, 400) * 3600.0 for _ in range(rng.randint(0, 8)))) for i in shown
        },
        user_age=12,
    )


def blender_config(max_items: int) -> BlenderConfig:
    return BlenderConfig.from_dict(
        {
            "placement": {
                "layouts": {"web": ["shelf-0", "continue_watching", *[f"shelf-{s}" for s in range(1, SHELVES)]]}
            },
            "spacing": {"coefficient": 2},
            "quota": {"max_paid_share_per_shelf": 0.3, "max_paid_per_page": 40, "max_paid_share_per_page": 0.25},
            "shelves": {"max_items": max_items},
        }
    )


def filter_inputs(rng: random.Random) -> dict:
    genres = ["drama", "comedy", "horror", "family", "documentary", "anime", "thriller"]
    candidates = [f"title-{n}" for n in range(1000)]
    items = {
        c: {
            "GENRE": "|".join(rng.sample(genres, rng.randint(1, 3))),
            "DOWNLOADS": rng.randint(0, 100),
            "PRICE": f"{rng.random() * 20:.2f}",
        }
        for c in candidates
    }
    history = [(rng.choice(candidates), rng.choice(["click", "stream", "view", "purchase"])) for _ in range(200)]
    return {"candidates": candidates, "items": items, "history": history}


FILTERS = {
    "exclude genre param": ("EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE)", {"GENRE": '"horror","anime"'}),
    "include downloads < 20": ("INCLUDE ItemID WHERE Items.DOWNLOADS < 20", {}),
    "exclude clicked/streamed": ('EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click","stream")', {}),
    "chain of 3 with IF": (
        "INCLUDE ItemID WHERE Items.GENRE IN ($GENRE) | "
        'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("click","stream") | '
        "EXCLUDE ItemID WHERE Items.DOWNLOADS < 20 IF CurrentUser.AGE > 18 AND CurrentUser.AGE < 30",
        {"GENRE": '"drama","comedy","family"'},
    ),
}


def measure(run: Callable[[], object], iterations: int) -> dict[str, float]:
    for _ in range(min(50, iterations)):
        run()
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(iterations):
        w0, c0 = time.perf_counter(), time.thread_time()
        run()
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)

    return {
        "wall_p50_ms": percentile(wall, 50) * 1000,
        "wall_p99_ms": percentile(wall, 99) * 1000,
        "wall_max_ms": max(wall) * 1000,
        "cpu_p50_ms": percentile(cpu, 50) * 1000,
        "cpu_p99_ms": percentile(cpu, 99) * 1000,
        "mean_ms": statistics.fmean(wall) * 1000,
    }


def conditions() -> dict[str, object]:
    model = (
        next(
            (
                line.split(":", 1)[1].strip()
                for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")
            ),
            platform.processor(),
        )
        if Path("/proc/cpuinfo").exists()
        else platform.processor()
    )
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "gc": "enabled",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()
    gc.enable()
    rng = random.Random(7)
    results: dict[str, object] = {"conditions_start": conditions(), "iterations": args.iterations, "scenarios": {}}
    headline: dict[str, tuple[str, dict[str, float]]] = {}

    request = blender_request(rng)
    candidates = sum(len(s.items) for s in request.shelves)
    for max_items in (20, PER_SHELF):
        config = blender_config(max_items)
        showcase = blend(request, config)
        shown = sum(len(s.items) for s in showcase.shelves)
        name = f"blender: {candidates} candidates, {SHELVES} shelves, {shown} items shown (max {max_items}/shelf)"
        results["scenarios"][name] = measure(lambda config=config: blend(request, config), args.iterations)
        headline["blender" if max_items == 20 else "blender_all_shown"] = (name, results["scenarios"][name])

    data = filter_inputs(rng)
    for label, (expression, params) in FILTERS.items():
        flt = compile_filter(expression)
        kept = len(
            flt.apply(
                data["candidates"],
                items=data["items"],
                user_interactions=data["history"],
                current_user={"AGE": 25},
                params=params,
            )
        )
        name = f"filter: {label}, 1000 candidates -> {kept} kept"
        results["scenarios"][name] = measure(
            lambda flt=flt, params=params: flt.apply(
                data["candidates"],
                items=data["items"],
                user_interactions=data["history"],
                current_user={"AGE": 25},
                params=params,
            ),
            args.iterations * 2,
        )
        headline[f"filter {label}"] = (name, results["scenarios"][name])
    chain = FILTERS["chain of 3 with IF"][0]
    results["scenarios"]["filter: parse + compile the chain (cold, no memo)"] = measure(
        lambda: compile_filter.__wrapped__(chain), args.iterations
    )
    results["conditions_end"] = conditions()

    print("conditions:", json.dumps(results["conditions_start"]), f"iterations={args.iterations} (filters x2)")
    print(f"{'scenario':<92} {'p50':>7} {'p99':>7} {'max':>7} | {'cpu p50':>7} {'cpu p99':>7}  (ms)")
    for name, row in results["scenarios"].items():
        print(
            f"{name:<92} {row['wall_p50_ms']:7.3f} {row['wall_p99_ms']:7.3f} {row['wall_max_ms']:7.2f} | "
            f"{row['cpu_p50_ms']:7.3f} {row['cpu_p99_ms']:7.3f}"
        )
    print("load average at end:", results["conditions_end"]["load_average_1m"])
    record_headlines(headline, results, args.iterations)


def record_headlines(headline: dict[str, tuple[str, dict[str, float]]], results: dict, iterations: int) -> None:
    load = f"load average {results['conditions_start']['load_average_1m']} at start"
    cpu = results["conditions_start"]["cpu"]
    name, row = headline["blender"]
    conditions = f"{name}; {iterations} runs, wall time, GC on; {load}; {cpu}"
    extra = {"cpu_time_p50_ms": round(row["cpu_p50_ms"], 3), "cpu_time_p99_ms": round(row["cpu_p99_ms"], 3)}
    record(
        "blender_p50_ms",
        figure="Blender alone p50 (1,000 candidates)",
        value=row["wall_p50_ms"],
        unit="ms",
        conditions=conditions,
        extra=extra,
    )
    record(
        "blender_p99_ms",
        figure="Blender alone p99 (1,000 candidates)",
        value=row["wall_p99_ms"],
        unit="ms",
        conditions=conditions,
        target="p99 < 5 ms",
        meets=row["wall_p99_ms"] < 5,
        extra=extra,
    )
    name, row = headline["blender_all_shown"]
    record(
        "blender_all_shown_p99_ms",
        figure="Blender alone p99, every surviving candidate shown",
        unit="ms",
        value=row["wall_p99_ms"],
        conditions=f"{name}; {iterations} runs; {load}; {cpu}",
        extra={"cpu_time_p99_ms": round(row["cpu_p99_ms"], 3)},
    )
    simple = [headline[f"filter {label}"] for label in FILTERS if label != "chain of 3 with IF"]
    worst_name, worst = max(simple, key=lambda pair: pair[1]["wall_p99_ms"])
    record(
        "filter_simple_p99_ms",
        figure="Filter evaluation p99, slowest simple filter (1,000 candidates)",
        value=worst["wall_p99_ms"],
        unit="ms",
        conditions=f"{worst_name}; {iterations * 2} runs; {load}; {cpu}",
        target="p99 < 1 ms",
        meets=worst["wall_p99_ms"] < 1,
        extra={"cpu_time_p99_ms": round(worst["cpu_p99_ms"], 3)},
    )
    name, row = headline["filter chain of 3 with IF"]
    record(
        "filter_chain_p99_ms",
        figure="Filter evaluation p99, chain of 3 expressions with IF (1,000 candidates)",
        value=row["wall_p99_ms"],
        unit="ms",
        conditions=f"{name}; {iterations * 2} runs; {load}; {cpu}",
        extra={"cpu_time_p99_ms": round(row["cpu_p99_ms"], 3)},
    )


if __name__ == "__main__":
    main()
