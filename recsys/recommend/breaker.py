"""A circuit breaker for the scoring endpoint and the stores: stop calling a failing dependency, try again later.

closed: calls go through; `failures` consecutive failures open it. open: calls are refused (the caller answers
with its fallback at once instead of waiting for a timeout) until `reset_s` have passed; then half-open: one
trial call goes through, and its success closes the breaker, its failure opens it again for another `reset_s`.
Thread-safe; the clock is injectable for tests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


class CircuitBreaker:
    def __init__(self, failures: int, reset_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1 or reset_s <= 0:
            raise ValueError("failures must be >= 1 and reset_s > 0")
        self.failures_to_open = failures
        self.reset_s = reset_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> str:
        with self._lock:
            return self._state(self._clock())

    def _state(self, now: float) -> str:
        if self._opened_at is None:
            return CLOSED
        return HALF_OPEN if now - self._opened_at >= self.reset_s else OPEN

    def allow(self) -> bool:
        """Whether a call may go out now (in half-open state, only one trial at a time)."""
        with self._lock:
            state = self._state(self._clock())
            if state == CLOSED:
                return True
            if state == HALF_OPEN and not self._trial_running:
                self._trial_running = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_running = False

    def record_failure(self) -> None:
        with self._lock:
            now = self._clock()
            self._failures += 1
            if self._trial_running or self._failures >= self.failures_to_open:
                self._opened_at = now
            self._trial_running = False


class StoreSkipped(Exception):
    """A store call that did not happen (its breaker is open) or that failed (then `__cause__` is the error)."""


def guarded_call(breaker: CircuitBreaker | None, read: Callable[[], T],
                 errors: tuple[type[BaseException], ...]) -> T:
    """`read()` through `breaker` (None: no breaker); a refusal or one of `errors` raises StoreSkipped."""
    if breaker is not None and not breaker.allow():
        raise StoreSkipped(f"the breaker is {breaker.state}")
    try:
        value = read()
    except errors as exc:
        if breaker is not None:
            breaker.record_failure()
        raise StoreSkipped(str(type(exc).__name__)) from exc
    except BaseException:
        if breaker is not None:
            breaker.record_success()  # not a store error (e.g. "not found"): the store answered
        raise
    if breaker is not None:
        breaker.record_success()
    return value
