"""Daily-stable randomization: the same user on the same day sees the same page; the seed changes by day."""

import random
from dataclasses import replace
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.blender import BlenderConfig, BlendRequest, Candidate, ShelfInput, blend
from recsys.blender.rules.randomization import daily_seed, rank, shuffle
from tests.unit.blender.blender_strategies import NOW, configs, requests


def shuffled_inputs(request, seed):
    rng = random.Random(seed)
    shelves = []
    for shelf in request.shelves:
        items = list(shelf.items)
        rng.shuffle(items)
        shelves.append(replace(shelf, items=items))
    return replace(request, shelves=shelves)


@settings(max_examples=150, deadline=None)
@given(requests(), configs(), st.integers(0, 2**32), st.floats(0, 3600))
def test_same_user_and_day_give_the_same_page_whatever_the_input_order_or_time_of_day(request, config, seed, later):
    first = blend(request, config)
    again = blend(
        replace(shuffled_inputs(request, seed), now=request.now + later if not request.exposures else request.now),
        config,
    )
    assert again.shelves == first.shelves
    assert again.fingerprint == first.fingerprint


def test_ties_and_shuffled_shelves_change_with_the_day_and_the_user():
    tied = [Candidate(f"i{n}", 0.5) for n in range(12)]
    days = [date(2024, 5, 1) + timedelta(days=d) for d in range(5)]
    orders = {tuple(c.item_id for c in rank(tied, daily_seed("u1", d))) for d in days}
    assert len(orders) > 1
    assert [c.item_id for c in rank(tied, daily_seed("u1", days[0]))] != [
        c.item_id for c in rank(tied, daily_seed("u2", days[0]))
    ]
    assert {tuple(c.item_id for c in shuffle(tied, daily_seed("u1", d), "new")) for d in days} != {
        tuple(c.item_id for c in tied)
    }


def test_the_seed_is_a_fixed_function_of_user_and_day_not_of_the_process():
    assert daily_seed("u1", date(2024, 5, 1)) == 0xF5BDC01F6354FC01  # golden value: hash() would vary per process


def test_distinct_scores_keep_score_order_and_a_shuffled_shelf_is_marked():
    request = BlendRequest(
        "u1",
        date(2024, 5, 1),
        NOW,
        "web",
        [
            ShelfInput("new", [Candidate(f"i{n}", n / 10) for n in range(8)]),
            ShelfInput("top", [Candidate(f"j{n}", n / 10) for n in range(8)]),
        ],
    )
    showcase = blend(request, BlenderConfig.from_dict({"shelves": {"shuffled": ["new"]}, "dedup": {"top_n": 0}}))
    assert showcase.item_ids("top") == [f"j{n}" for n in range(7, -1, -1)]
    assert sorted(showcase.item_ids("new")) == sorted(f"i{n}" for n in range(8))
    assert showcase.shelf("new").rules == ("daily_shuffle",)
