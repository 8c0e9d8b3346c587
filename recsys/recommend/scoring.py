"""Scoring candidate rows on the ranking endpoint, with a deadline, a circuit breaker and a fallback.

- `Scorer` (protocol): `score(rows, variant, schema_id) -> scores`. Two adapters:
  `SageMakerScorer` (sagemaker-runtime InvokeEndpoint with TargetVariant, the .npy body) in AWS, and
  `HttpScorer` (the inference container's own HTTP contract, POST /invocations) locally;
- `GuardedScorer`: every call runs under a deadline (`timeout_s`) and through a `CircuitBreaker`; any failure,
  a refusal by the open breaker or a late answer becomes `ScoringUnavailable`, and the caller answers with
  `fallback_scores` (Amp's baseline: affinity x popularity), marking the response degraded.
"""

from __future__ import annotations

import concurrent.futures
import http.client
import io
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol
from urllib.parse import urlsplit

import numpy as np

from recsys.recommend.breaker import CircuitBreaker

NPY = "application/x-npy"
CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


class ScoringUnavailable(Exception):
    """The endpoint failed, was too slow, or the breaker is open; `reason` is one of error, timeout, circuit_open."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class Scorer(Protocol):
    def score(self, rows: np.ndarray, variant: str, schema_id: str) -> np.ndarray:
        """One score per row (higher is better); raises on any failure."""


def encode_rows(rows: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(rows, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()


def decode_scores(body: bytes, expected: int) -> np.ndarray:
    """The score column of the endpoint's (n, 3) pctr/pcvr/score answer."""
    answer = np.load(io.BytesIO(body), allow_pickle=False)
    if answer.ndim != 2 or answer.shape[0] != expected or answer.shape[1] < 3:
        raise ValueError(f"endpoint answered shape {answer.shape} for {expected} rows")
    return np.asarray(answer[:, 2], dtype=np.float64)


class SageMakerScorer:
    """InvokeEndpoint on the ranking endpoint, the variant chosen by TargetVariant."""

    def __init__(self, endpoint_name: str, client: object) -> None:
        self.endpoint_name = endpoint_name
        self.client = client

    def score(self, rows: np.ndarray, variant: str, schema_id: str) -> np.ndarray:
        answer = self.client.invoke_endpoint(  # type: ignore[attr-defined]
            EndpointName=self.endpoint_name, TargetVariant=variant, Body=encode_rows(rows), ContentType=NPY,
            Accept=NPY, CustomAttributes=f"schema_id={schema_id}")
        return decode_scores(answer["Body"].read(), len(rows))


class HttpScorer:
    """POST /invocations to a local inference server (the same container contract), one server per variant
    (`urls`: variant -> base URL; "*" serves any variant). Keeps one keep-alive connection per thread."""

    def __init__(self, urls: Mapping[str, str] | str, timeout_s: float = 5.0) -> None:
        self.urls = {"*": urls} if isinstance(urls, str) else dict(urls)
        self.timeout_s = timeout_s
        self._local = threading.local()

    def _connection(self, url: str) -> http.client.HTTPConnection:
        connections: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("connections", {})
        if url not in connections:
            parts = urlsplit(url)
            connections[url] = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self.timeout_s)
        return connections[url]

    def score(self, rows: np.ndarray, variant: str, schema_id: str) -> np.ndarray:
        url = self.urls.get(variant) or self.urls.get("*")
        if url is None:
            raise ValueError(f"no inference server for variant {variant!r}")
        connection = self._connection(url)
        try:
            connection.request("POST", "/invocations", body=encode_rows(rows), headers={
                "Content-Type": NPY, "Accept": NPY, CUSTOM_ATTRIBUTES: f"schema_id={schema_id}"})
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException):
            connection.close()  # reconnect on the next call
            raise
        if response.status != 200:
            raise RuntimeError(f"inference server answered {response.status}: {body[:200]!r}")
        return decode_scores(body, len(rows))


class GuardedScorer:
    """A scorer under a deadline and a circuit breaker."""

    def __init__(self, scorer: Scorer, timeout_s: float, breaker: CircuitBreaker, *, workers: int = 4) -> None:
        self.scorer = scorer
        self.timeout_s = timeout_s
        self.breaker = breaker
        # A pool thread runs each call, so that a hung connection costs the request no more than the deadline.
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scorer")

    def score(self, rows: np.ndarray, variant: str, schema_id: str,
              while_waiting: Callable[[], None] = lambda: None) -> np.ndarray:
        """The scores; `while_waiting` runs on this thread while the endpoint works (its time counts against the
        deadline, so it should be short: reads the rest of the request needs anyway)."""
        if not self.breaker.allow():
            while_waiting()
            raise ScoringUnavailable("circuit_open", f"the breaker is {self.breaker.state}")
        began = time.monotonic()
        future = self._pool.submit(self.scorer.score, rows, variant, schema_id)
        while_waiting()
        try:
            scores = future.result(timeout=max(0.0, self.timeout_s - (time.monotonic() - began)))
        except concurrent.futures.TimeoutError:
            self.breaker.record_failure()
            raise ScoringUnavailable("timeout", f"no answer within {self.timeout_s * 1000:.0f} ms") from None
        except Exception as exc:  # noqa: BLE001 - any endpoint failure degrades the response instead of failing it
            self.breaker.record_failure()
            raise ScoringUnavailable("error", f"{type(exc).__name__}: {exc}") from None
        if not np.all(np.isfinite(scores)):
            self.breaker.record_failure()
            raise ScoringUnavailable("error", "the endpoint answered non-finite scores")
        self.breaker.record_success()
        return scores


def fallback_scores(rows: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """Amp's baseline ranking: popularity x (1 + the user's topic and creator affinity); missing values count 0."""
    column = {name: j for j, name in enumerate(names)}

    def values(name: str) -> np.ndarray:
        if name not in column:
            return np.zeros(len(rows))
        return np.nan_to_num(rows[:, column[name]].astype(np.float64), nan=0.0)

    affinity = np.maximum(values("m_topic_affinity"), 0) + np.maximum(values("m_creator_affinity"), 0)
    return values("m_popularity") * (1.0 + affinity)

