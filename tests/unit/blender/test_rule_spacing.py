"""Franchise spacing: never two same-franchise items within the coefficient; the longest arrangement when it
cannot be satisfied; priority order otherwise kept."""

import itertools
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.blender import Candidate, ItemInfo, blend
from recsys.blender.model import CONTINUE_WATCHING_KIND, FRANCHISE_SPACING
from recsys.blender.rules.spacing import arrange, max_fill, spacing_holds
from tests.unit.blender.blender_strategies import configs, requests

franchise_lists = st.lists(st.sampled_from([None, "A", "B", "C"]), max_size=7)


def shelf_of(franchises):
    items = [Candidate(f"i{n}", 1.0 - n / 100) for n in range(len(franchises))]
    return items, {f"i{n}": f for n, f in enumerate(franchises)}


def arranged(franchises, coefficient, max_items=10, pinned=False):
    items, _ = shelf_of(franchises)
    return arrange(
        items,
        franchises=franchises,
        paid=[False] * len(items),
        coefficient=coefficient,
        max_items=max_items,
        pinned=pinned,
    )


def brute_force_longest(franchises, coefficient, length, pinned):
    for size in range(min(length, len(franchises)), 0, -1):
        for order in itertools.permutations(range(len(franchises)), size):
            if pinned and order[0] != 0:
                continue
            if spacing_holds([franchises[i] for i in order], coefficient):
                return size
    return 0


def test_coefficient_one_means_not_adjacent_two_means_two_others_between():
    assert spacing_holds(["A", None, "A"], 1) and not spacing_holds(["A", "A"], 1)
    assert not spacing_holds(["A", None, "A"], 2) and spacing_holds(["A", None, None, "A"], 2)
    assert spacing_holds(["A", "A"], 0)


def test_an_item_too_close_waits_for_the_first_slot_where_it_fits():
    result = arranged(["A", "A", None, None, "A"], coefficient=1)
    assert [c.item_id for c in result.placed] == ["i0", "i2", "i1", "i3", "i4"]
    assert result.moved == frozenset({"i1"})
    assert result.spacing_dropped == []


def test_when_unsatisfiable_the_shelf_is_the_longest_arrangement_and_the_rest_is_reported():
    result = arranged(["A", "A", "A", None], coefficient=1)
    assert [c.item_id for c in result.placed] == ["i0", "i3", "i1"]  # A x A: the third A cannot be placed
    assert result.spacing_dropped == ["i2"]


def test_greedy_first_fit_is_not_enough_the_exact_search_finds_the_full_arrangement():
    # first fit gives x A B and then stalls; A B x A B exists
    franchises = [None, "A", "A", "B", "B"]
    result = arranged(franchises, coefficient=2)
    placed = [franchises[int(c.item_id[1:])] for c in result.placed]
    assert len(placed) == 5 and spacing_holds(placed, 2)


@settings(max_examples=400, deadline=None)
@given(franchise_lists, st.integers(1, 3), st.integers(1, 8), st.booleans())
def test_arrangement_keeps_spacing_and_is_as_long_as_any_arrangement_can_be(franchises, coefficient, max_items, pinned):
    items, franchise = shelf_of(franchises)
    result = arranged(franchises, coefficient, max_items, pinned)
    placed = [c.item_id for c in result.placed]
    assert spacing_holds([franchise[i] for i in placed], coefficient)
    assert len(set(placed)) == len(placed) and set(placed) <= set(franchise)
    assert len(placed) == brute_force_longest(franchises, coefficient, max_items, pinned)
    if pinned and placed:
        assert placed[0] == "i0"
    if spacing_holds(franchises[:max_items], coefficient):
        assert placed == [c.item_id for c in items[:max_items]]  # nothing to fix: priority order untouched


@settings(max_examples=300, deadline=None)
@given(franchise_lists, st.integers(1, 3), st.integers(0, 3))
def test_most_remaining_first_fill_matches_exhaustive_search(franchises, coefficient, start):
    counts = Counter(f for f in franchises if f is not None)
    free = franchises.count(None)
    best = brute_force_longest(franchises, coefficient, len(franchises), pinned=False)
    assert max_fill(counts, free, {}, start, coefficient, len(franchises)) == best


@settings(max_examples=150, deadline=None)
@given(requests(), configs())
def test_no_shown_shelf_has_same_franchise_items_within_the_coefficient(request, config):
    showcase = blend(request, config)
    for shelf in showcase.shelves:
        if shelf.kind == CONTINUE_WATCHING_KIND:
            continue  # the user's own titles are exempt
        franchises = [request.items.get(i.item_id, ItemInfo()).franchise for i in shelf.items]
        assert spacing_holds(franchises, config.spacing.coefficient), (shelf.shelf_id, franchises)
    for event in showcase.events:
        if event.rule == FRANCHISE_SPACING:
            shelf = showcase.shelf(event.shelf_id)
            assert shelf is None or event.item_id not in [i.item_id for i in shelf.items]


def test_the_quota_runs_before_the_spacing_and_reports_only_what_would_have_shown():
    items, _ = shelf_of(["A", None, "A", None, None])
    result = arrange(
        items,
        franchises=["A", None, "A", None, None],
        paid=[True, True, True, False, False],
        coefficient=1,
        max_items=3,
        paid_limit=1,
    )
    assert [c.item_id for c in result.placed] == ["i0", "i3", "i4"]
    assert result.quota_removed == ["i1", "i2"] and result.paid_shown == 1
