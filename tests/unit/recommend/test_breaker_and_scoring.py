"""The circuit breaker, the guarded scorer (deadline, breaker) and the fallback ranking."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest

from recsys.recommend.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from recsys.recommend.scoring import GuardedScorer, ScoringUnavailable, decode_scores, encode_rows, fallback_scores


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures_and_recovers_through_one_trial():
    clock = Clock()
    breaker = CircuitBreaker(failures=3, reset_s=10.0, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    breaker.record_success()  # a success resets the count
    for _ in range(2):
        breaker.record_failure()
    assert breaker.state == CLOSED and breaker.allow()
    breaker.record_failure()
    assert breaker.state == OPEN and not breaker.allow()
    clock.now = 9.9
    assert not breaker.allow()
    clock.now = 10.0
    assert breaker.state == HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.record_failure()  # the trial failed: open again for reset_s
    assert breaker.state == OPEN
    clock.now = 20.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == CLOSED and breaker.allow()


class FakeScorer:
    def __init__(self, answer=None, error: Exception | None = None, block: threading.Event | None = None) -> None:
        self.answer, self.error, self.block, self.calls = answer, error, block, 0

    def score(self, rows, variant, schema_id):
        self.calls += 1
        if self.block is not None:
            self.block.wait(5)
        if self.error is not None:
            raise self.error
        return self.answer if self.answer is not None else rows[:, 0].astype(float)


def test_guarded_scorer_passes_answers_through():
    guarded = GuardedScorer(FakeScorer(), 1.0, CircuitBreaker(2, 10.0))
    assert guarded.score(np.array([[3.0], [1.0]]), "champion", "s").tolist() == [3.0, 1.0]


def test_a_slow_endpoint_times_out_and_failures_open_the_breaker():
    release = threading.Event()
    slow = FakeScorer(block=release)
    guarded = GuardedScorer(slow, 0.05, CircuitBreaker(2, 60.0))
    rows = np.ones((3, 2))
    for _ in range(2):
        with pytest.raises(ScoringUnavailable) as caught:
            guarded.score(rows, "champion", "s")
        assert caught.value.reason == "timeout"
    with pytest.raises(ScoringUnavailable) as caught:
        guarded.score(rows, "champion", "s")
    assert caught.value.reason == "circuit_open"
    assert slow.calls == 2  # the open breaker did not call
    release.set()


@pytest.mark.parametrize("scorer", [FakeScorer(error=RuntimeError("500")), FakeScorer(answer=np.array([np.nan]))])
def test_errors_and_non_finite_scores_are_unavailable(scorer):
    with pytest.raises(ScoringUnavailable) as caught:
        GuardedScorer(scorer, 1.0, CircuitBreaker(5, 1.0)).score(np.ones((1, 1)), "champion", "s")
    assert caught.value.reason == "error"


def test_fallback_is_affinity_times_popularity_with_missing_values_as_zero():
    names = ("m_popularity", "m_topic_affinity", "m_creator_affinity", "other")
    rows = np.array([[2.0, 0.5, 0.5, 9.0], [3.0, 0.0, np.nan, 9.0], [np.nan, 5.0, 5.0, 9.0]], np.float32)
    assert fallback_scores(rows, names).tolist() == pytest.approx([4.0, 3.0, 0.0])
    assert fallback_scores(rows, ("other",)).tolist() == [0.0, 0.0, 0.0]


def test_npy_round_trip():
    body = encode_rows(np.ones((4, 3)))
    answer = np.load(io.BytesIO(body))
    assert answer.dtype == np.float32 and answer.shape == (4, 3)
    with pytest.raises(ValueError, match="shape"):
        decode_scores(body, 5)


def test_work_while_waiting_runs_during_the_call_and_counts_against_the_deadline():
    release = threading.Event()
    calls = []
    guarded = GuardedScorer(FakeScorer(block=release), 0.2, CircuitBreaker(5, 10.0))

    def meanwhile():
        calls.append("read")
        release.set()  # the endpoint answers only once this ran: they overlap

    assert guarded.score(np.array([[1.0]]), "champion", "s", meanwhile).tolist() == [1.0]
    assert calls == ["read"]
    release.clear()
    with pytest.raises(ScoringUnavailable) as caught:
        guarded.score(np.array([[1.0]]), "champion", "s", lambda: time.sleep(0.25))
    assert caught.value.reason == "timeout"
    release.set()
