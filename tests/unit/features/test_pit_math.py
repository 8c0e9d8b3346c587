"""Feature maths against hand-computed values: decay, windows, recent-item entries, event validation."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from recsys.events import Event
from recsys.features import validate_event
from recsys.features.reader import window_mask
from recsys.features.writer import AFFINITY_EPOCH, affinity_term, recent_entry

DAY = 86400.0
HALF_LIFE_DAYS = 14.0


def log_add_exp2(a: float, b: float) -> float:
    """What the USER Lua script does to add a term to a stored affinity."""
    high, low = max(a, b), min(a, b)
    return high + math.log2(1 + 2 ** (low - high))


def score_at(stored: float, now: float, half_life_days: float = HALF_LIFE_DAYS) -> float:
    """What the reader does with a stored affinity."""
    return 2 ** (stored - (now - AFFINITY_EPOCH) / (half_life_days * DAY))


def test_one_half_life_halves_an_affinity():
    t = 1_700_000_000.0
    stored = affinity_term(2.0, t, HALF_LIFE_DAYS)
    assert score_at(stored, t) == pytest.approx(2.0)
    assert score_at(stored, t + 14 * DAY) == pytest.approx(1.0)
    assert score_at(stored, t + 28 * DAY) == pytest.approx(0.5)


def test_affinity_sums_decayed_weights_whatever_the_order():
    now = 1_700_000_000.0
    # like (3) now, purchase (5) one half-life ago, view (1) two half-lives ago: 3 + 2.5 + 0.25
    terms = [affinity_term(3.0, now, 14), affinity_term(5.0, now - 14 * DAY, 14),
             affinity_term(1.0, now - 28 * DAY, 14)]
    forward = log_add_exp2(log_add_exp2(terms[0], terms[1]), terms[2])
    backward = log_add_exp2(log_add_exp2(terms[2], terms[1]), terms[0])
    assert score_at(forward, now) == pytest.approx(5.75)
    assert score_at(backward, now) == pytest.approx(5.75)


def test_stored_affinities_stay_finite_far_from_the_epoch():
    # A half-life of one hour, 50 years after the epoch: 2^((t - epoch)/h) would overflow a float; its log does not.
    t = AFFINITY_EPOCH + 50 * 365 * DAY
    stored = affinity_term(1.0, t, 1 / 24)
    assert math.isfinite(stored)
    assert score_at(stored, t + 3600, 1 / 24) == pytest.approx(0.5)


@given(st.lists(st.tuples(st.floats(0.1, 10), st.floats(0, 60 * DAY)), min_size=1, max_size=20))
def test_log_add_exp_matches_the_direct_sum(events):
    now = 1_700_000_000.0
    stored = affinity_term(events[0][0], now - events[0][1], HALF_LIFE_DAYS)
    for weight, age in events[1:]:
        stored = log_add_exp2(stored, affinity_term(weight, now - age, HALF_LIFE_DAYS))
    direct = sum(w * 2 ** (-age / (HALF_LIFE_DAYS * DAY)) for w, age in events)
    assert score_at(stored, now) == pytest.approx(direct, rel=1e-9)


def test_the_window_mask_counts_the_buckets_up_to_now_and_nothing_later():
    # 5-minute buckets, 12 of them (1 h). now = 10_000: its bucket, 33, starts at 9_900; bucket b sits in slot b % 12.
    now = 10_000
    heads = np.array([
        9_950,   # head in now's bucket, before now: the 12 buckets 22..33 count
        10_050,  # head in now's bucket, after now: that bucket (slot 9) is left out (no leak from the future)
        10_200,  # head in the next bucket (slot 10): it and now's bucket (slot 9) are left out, 23..32 count
        6_600,   # head in bucket 22, 11 buckets back: only its own bucket (slot 10) counts
        6_599,   # head in bucket 21: 12 buckets back, nothing counts
        0,       # an empty ring
    ])
    every = [True] * 12
    assert window_mask(heads, now, 300, 12).tolist() == [
        every,
        every[:9] + [False] + every[10:],
        every[:9] + [False, False] + every[11:],
        [False] * 10 + [True, False],
        [False] * 12,
        [False] * 12,
    ]


def test_the_window_covers_between_n_minus_1_and_n_buckets():
    # A read at a bucket boundary covers exactly 11 full buckets plus the bucket starting at now.
    assert window_mask(np.array([9_900 - 11 * 300]), 9_900, 300, 12)[0].sum() == 1
    assert window_mask(np.array([9_900 - 11 * 300 - 1]), 9_900, 300, 12)[0].sum() == 0


@given(st.integers(1, 10**6), st.integers(0, 10**6), st.sampled_from([1, 7, 60, 300]), st.integers(1, 30))
@example(head=10_500, second=10_199, bucket_seconds=300, buckets=12)  # the read's bucket ends at the read: counted
@example(head=10_500, second=10_198, bucket_seconds=300, buckets=12)
@example(head=86_400 * 40 + 5, second=86_400 * 41, bucket_seconds=86_400, buckets=30)  # no flag table above 16
def test_the_window_mask_matches_its_definition(head, second, bucket_seconds, buckets):
    """Slot by slot: the bucket it holds is among the N newest up to the read's, and holds nothing after it."""
    head_bucket, read_bucket = head // bucket_seconds, second // bucket_seconds
    expected = []
    for slot in range(buckets):
        held = next(b for b in range(head_bucket - buckets + 1, head_bucket + 1) if b % buckets == slot)
        newest_event = head if held == head_bucket else held * bucket_seconds + bucket_seconds - 1
        expected.append(read_bucket - buckets < held <= read_bucket and newest_event <= second)
    assert window_mask(np.array([head]), second, bucket_seconds, buckets)[0].tolist() == expected


def make_event(**changes) -> Event:
    base = Event("e1", "u1", "watch", 1_700_000_000.7, item_id="i1", event_value=1800.0, properties={"progress": "0.4"})
    return replace(base, **changes)


def test_recent_entries_carry_time_type_seconds_and_progress():
    assert recent_entry(make_event()) == "1700000000|watch|1800.0|0.4"
    assert recent_entry(make_event(event_type="like", event_value=None, properties={})) == "1700000000|like||"
    # EVENT_VALUE is a duration only for plays (a purchase's value is a price)
    assert recent_entry(make_event(event_type="purchase", event_value=9.5, properties={})) == "1700000000|purchase||"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"event_id": ""}, "event_id must be a non-empty string"),
        ({"user_id": ""}, "user_id must be a non-empty string"),
        ({"event_type": ""}, "event_type must be a non-empty string"),
        ({"item_id": ""}, "item_id must be a non-empty string or absent"),
        ({"timestamp": 0.0}, "timestamp must be unix seconds"),
        ({"timestamp": 1_700_000_000_000.0}, "timestamp must be unix seconds"),
        ({"event_value": math.inf}, "event_value must be finite"),
        ({"properties": {"progress": "1.5"}}, "properties.progress must be a number in \\[0, 1\\]"),
        ({"properties": {"progress": "half"}}, "properties.progress must be a number in \\[0, 1\\]"),
    ],
)
def test_invalid_events_are_rejected_naming_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        validate_event(make_event(**changes))


def test_a_valid_event_passes():
    validate_event(make_event())
    validate_event(make_event(item_id=None, event_value=None, properties={}))
