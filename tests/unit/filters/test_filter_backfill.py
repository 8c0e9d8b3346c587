"""Backfill: a filtered result is filled back to k from further candidates, lazily and without duplicates."""

import itertools

from hypothesis import given
from hypothesis import strategies as st

from recsys.filters import compile_filter, fill_to_k

NOT_EVEN = compile_filter('EXCLUDE ItemID WHERE Items.EVEN IN ("yes")')


def evenness(ids):
    return {i: {"EVEN": "yes" if int(i) % 2 == 0 else "no"} for i in ids}


def test_fills_to_k_from_the_supply_in_order():
    items = evenness(str(n) for n in range(100))
    result = fill_to_k(NOT_EVEN, ["0", "1", "2", "3"], 5, (str(n) for n in range(4, 100)), items=items)
    assert result == ["1", "3", "5", "7", "9"]


def test_never_repeats_an_item_and_stops_when_the_supply_runs_out():
    items = evenness(str(n) for n in range(10))
    result = fill_to_k(NOT_EVEN, ["1", "2"], 10, ["1", "3", "3", "4", "5"], items=items)
    assert result == ["1", "3", "5"]


def test_reads_an_endless_supply_lazily():
    supply = (str(n) for n in itertools.count())
    items = evenness(str(n) for n in range(1000))
    assert fill_to_k(NOT_EVEN, [], 3, supply, items=items) == ["1", "3", "5"]
    assert next(supply) == "6"  # read only as far as needed


def test_without_a_filter_it_only_dedups_and_truncates():
    assert fill_to_k(None, ["a", "b", "a"], 4, ["b", "c", "d", "e"]) == ["a", "b", "c", "d"]


@given(
    st.lists(st.integers(0, 40).map(str), max_size=20),
    st.lists(st.integers(0, 40).map(str), max_size=40),
    st.integers(0, 15),
)
def test_result_is_the_first_k_distinct_kept_items(candidates, more, k):
    items = evenness(str(n) for n in range(41))
    result = fill_to_k(NOT_EVEN, candidates, k, more, items=items)
    expected = [i for i in dict.fromkeys(candidates + more) if int(i) % 2 == 1][:k]
    assert result == expected
