"""Open-loop HTTP load at a fixed request rate: what `make demo`'s load test and benchmarks/bench_recommend.py run.

Request i is due at t0 + i / rate and its latency counts from that due time, so queueing shows (no coordinated
omission). Past twice the run's length an overloaded rate stops sending what is still queued.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Sample:
    due_s: float  # when the request was due, from the run's start
    latency_ms: float
    ok: bool
    degraded: bool
    reasons: tuple[str, ...] = ()  # the answer's degradedReasons


@dataclass(frozen=True)
class LoadResult:
    rate: float
    latencies_ms: tuple[float, ...]
    achieved_rps: float
    errors: int
    degraded: int
    samples: tuple[Sample, ...] = ()  # every request, in the order answers came

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q, method="inverted_cdf")) if self.latencies_ms else 0.0

    @property
    def p50_ms(self) -> float:
        return self.percentile(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile(99)


def open_loop(url: str, path: str, bodies: Sequence[bytes], rate: float, *, senders: int = 16) -> LoadResult:
    """POST each of `bodies` to `url` + `path` at `rate` per second (len(bodies) / rate seconds in all)."""
    if rate <= 0 or not bodies:
        raise ValueError("rate: must be > 0, with at least one request body")
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    samples: list[Sample] = []
    lock = threading.Lock()
    counter = iter(range(len(bodies)))
    began = time.perf_counter() + 0.05
    deadline = began + 2 * len(bodies) / rate

    def sender() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        while True:
            with lock:
                index = next(counter, None)
            if index is None or time.perf_counter() > deadline:
                break
            due = began + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                connection.request("POST", path, body=bodies[index], headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                answer = json.loads(response.read())
                ok = response.status == 200
            except (OSError, http.client.HTTPException, ValueError):
                connection.close()
                ok, answer = False, {}
            elapsed = (time.perf_counter() - due) * 1000.0
            answer = answer if isinstance(answer, dict) else {}
            sample = Sample(due - began, elapsed, ok, bool(answer.get("degraded")),
                            tuple(answer.get("degradedReasons") or ()))
            with lock:
                samples.append(sample)
        connection.close()

    threads = [threading.Thread(target=sender, daemon=True) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return LoadResult(rate, tuple(s.latency_ms for s in samples), len(samples) / wall,
                      sum(not s.ok for s in samples), sum(s.degraded for s in samples), tuple(samples))
