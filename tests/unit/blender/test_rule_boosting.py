"""Boosting: a flagged item goes first in every ML shelf containing it, unless its visible neighbours' CTR is
much higher (then it keeps its ML position, exactly as if it were not flagged)."""

from datetime import date

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from recsys.blender import BlenderConfig, BlendRequest, Candidate, ShelfInput, blend
from recsys.blender.config import BoostConfig
from recsys.blender.model import BOOST
from recsys.blender.rules.boosting import choose_boosts, low_ctr_reason
from tests.unit.blender.blender_strategies import ITEM_IDS, NOW, events, shelves

CONFIG = BoostConfig(ctr_ratio_threshold=2.0, min_impressions=100, neighbour_window=3)


def test_low_ctr_reason_compares_neighbours_pooled_ctr_with_the_threshold():
    ctr = {"b": (1000, 10), "n1": (500, 20), "n2": (500, 20)}  # boosted 1%, neighbours 4%
    assert low_ctr_reason("b", ["n1", "n2"], ctr, CONFIG) == "neighbours' CTR 0.0400 > 2 x boosted CTR 0.0100"
    ctr["n1"] = ctr["n2"] = (500, 10)  # neighbours 2% = exactly 2x: not *more* than the threshold
    assert low_ctr_reason("b", ["n1", "n2"], ctr, CONFIG) is None


def test_too_few_impressions_on_either_side_keeps_the_boost():
    assert low_ctr_reason("b", ["n1"], {"b": (99, 0), "n1": (10_000, 900)}, CONFIG) is None
    assert low_ctr_reason("b", ["n1"], {"b": (1000, 0), "n1": (99, 99)}, CONFIG) is None
    assert low_ctr_reason("b", ["n1"], {"b": (1000, 0), "n1": (100, 1)}, CONFIG) is not None  # zero CTR loses to any


def test_only_the_visible_neighbours_are_compared():
    ranked = ["b", "n1", "n2", "n3", "far"]
    ctr = {"b": (1000, 10), "n1": (1000, 10), "n2": (1000, 10), "n3": (1000, 10), "far": (100_000, 90_000)}
    winners, found = choose_boosts("s", ranked, {"b"}, ctr, CONFIG, page_used=0)
    assert winners == ["b"] and [e.action for e in found] == ["boosted"]


def request_with(shelf_items, boosts, ctr=None):
    return BlendRequest(
        "u1", date(2024, 5, 1), NOW, "web", [ShelfInput("s", shelf_items)], boosts=frozenset(boosts), ctr=ctr or {}
    )


LOOSE = BlenderConfig.from_dict({"spacing": {"coefficient": 0}, "boost": {"max_per_shelf": 5, "max_per_page": 5}})


def test_the_boosted_item_goes_first_and_is_tagged():
    items = [Candidate("a", 0.9), Candidate("b", 0.8), Candidate("c", 0.1)]
    showcase = blend(request_with(items, {"c"}), LOOSE)
    assert showcase.item_ids("s") == ["c", "a", "b"]
    assert showcase.shelf("s").items[0].rules == (BOOST,)
    assert [(e.item_id, e.shelf_id) for e in events(showcase, BOOST, "boosted")] == [("c", "s")]


def test_a_boost_outperformed_by_its_neighbours_falls_back_to_its_ml_position():
    items = [Candidate("a", 0.9), Candidate("b", 0.8), Candidate("c", 0.1)]
    ctr = {"c": (1000, 5), "a": (1000, 100), "b": (1000, 100)}
    showcase = blend(request_with(items, {"c"}, ctr), LOOSE)
    assert showcase.item_ids("s") == ["a", "b", "c"]
    (disabled,) = events(showcase, BOOST, "disabled_low_ctr")
    assert disabled.item_id == "c" and "0.1000 > 2 x boosted CTR 0.0050" in disabled.detail


def test_a_flagged_item_absent_from_a_shelf_is_not_added():
    showcase = blend(request_with([Candidate("a", 0.9)], {"zzz"}), LOOSE)
    assert showcase.item_ids("s") == ["a"] and not events(showcase, BOOST)


@settings(max_examples=200, deadline=None)
@given(shelves(kinds=("ml",)), st.frozensets(st.sampled_from(ITEM_IDS), min_size=1, max_size=3))
def test_the_first_flagged_item_of_every_shown_ml_shelf_is_first_when_the_boost_is_enabled(shelf_inputs, boosts):
    config = BlenderConfig.from_dict({"boost": {"max_per_shelf": 1, "max_per_page": 99}, "dedup": {"top_n": 0}})
    showcase = blend(BlendRequest("u1", date(2024, 5, 1), NOW, "web", shelf_inputs, boosts=boosts), config)
    for shelf in showcase.shelves:
        ids = [i.item_id for i in shelf.items]
        flagged = [i for i in ids if i in boosts]
        if flagged:
            assert ids[0] == flagged[0] and BOOST in shelf.items[0].rules
            assert all(BOOST not in i.rules for i in shelf.items[1:])


ctr_values = st.tuples(st.integers(100, 5000), st.integers(0, 100))


@settings(max_examples=200, deadline=None)
@given(shelves(kinds=("ml",), max_shelves=1), st.dictionaries(st.sampled_from(ITEM_IDS), ctr_values), st.data())
def test_boost_is_disabled_exactly_when_neighbours_ctr_exceeds_the_ratio_and_then_changes_nothing(
    shelf_inputs, ctr, data
):
    present = sorted({c.item_id for c in shelf_inputs[0].items})
    assume(present)
    flagged = data.draw(st.sampled_from(present))
    config = BlenderConfig.from_dict(
        {
            "boost": {"ctr_ratio_threshold": 1.5, "min_impressions": 100, "neighbour_window": 4},
            "spacing": {"coefficient": 0},
        }
    )
    unflagged = blend(BlendRequest("u1", date(2024, 5, 1), NOW, "web", shelf_inputs, ctr=ctr), config)
    request = BlendRequest("u1", date(2024, 5, 1), NOW, "web", shelf_inputs, boosts=frozenset({flagged}), ctr=ctr)
    showcase = blend(request, config)

    neighbours = [i for i in unflagged.item_ids("s0") if i != flagged][:4]
    shown, clicked = ctr.get(flagged, (0, 0))
    pooled_shown = sum(ctr.get(n, (0, 0))[0] for n in neighbours)
    pooled_clicked = sum(ctr.get(n, (0, 0))[1] for n in neighbours)
    should_disable = shown >= 100 and pooled_shown >= 100 and pooled_clicked / pooled_shown > 1.5 * clicked / shown

    assert bool(events(showcase, BOOST, "disabled_low_ctr")) == should_disable
    if should_disable:
        assert showcase.shelves == unflagged.shelves  # back at its ML position, nothing else moved
    else:
        assert showcase.item_ids("s0")[0] == flagged


@pytest.mark.parametrize("enabled", [True, False])
def test_boosting_can_be_switched_off(enabled):
    config = BlenderConfig.from_dict({"boost": {"enabled": enabled}})
    showcase = blend(request_with([Candidate("a", 0.9), Candidate("c", 0.1)], {"c"}), config)
    assert showcase.item_ids("s") == (["c", "a"] if enabled else ["a", "c"])
