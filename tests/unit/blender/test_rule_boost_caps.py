"""Caps on boosted items per shelf and per page: the excess is un-boosted (keeps its ML position) and reported."""

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.blender import BlenderConfig, BlendRequest, Candidate, ShelfInput, blend
from recsys.blender.model import BOOST, BOOST_CAP
from tests.unit.blender.blender_strategies import ITEM_IDS, NOW, events, shelves


def test_excess_boosts_are_dropped_and_reported_per_shelf_and_per_page():
    config = BlenderConfig.from_dict(
        {"boost": {"max_per_shelf": 1, "max_per_page": 2}, "spacing": {"coefficient": 0}, "dedup": {"top_n": 0}}
    )
    shelf = lambda name: ShelfInput(name, [Candidate("a", 0.9), Candidate("x", 0.5), Candidate("y", 0.2)])  # noqa: E731
    request = BlendRequest(
        "u1", date(2024, 5, 1), NOW, "web", [shelf("s1"), shelf("s2"), shelf("s3")], boosts={"x", "y"}
    )
    showcase = blend(request, config)
    assert showcase.item_ids("s1") == ["x", "a", "y"]  # y over the shelf cap keeps its ML position
    assert showcase.item_ids("s2") == ["x", "a", "y"]
    assert showcase.item_ids("s3") == ["a", "x", "y"]  # page cap 2 reached
    caps = [(e.action, e.item_id, e.shelf_id) for e in events(showcase, BOOST_CAP)]
    assert caps == [
        ("dropped_shelf_cap", "y", "s1"),
        ("dropped_shelf_cap", "y", "s2"),
        ("dropped_page_cap", "x", "s3"),
        ("dropped_page_cap", "y", "s3"),
    ]
    assert showcase.summary["boost_cap.dropped_page_cap"] == 2  # what the editors' alarm counts


@settings(max_examples=200, deadline=None)
@given(
    shelves(kinds=("ml",)),
    st.frozensets(st.sampled_from(ITEM_IDS), max_size=6),
    st.integers(0, 3),
    st.integers(0, 4),
)
def test_caps_hold_and_every_flagged_item_is_either_boosted_or_reported(shelf_inputs, boosts, per_shelf, per_page):
    config = BlenderConfig.from_dict(
        {
            "boost": {"max_per_shelf": per_shelf, "max_per_page": per_page},
            "dedup": {"top_n": 0},
            "spacing": {"coefficient": 0},
        }
    )
    showcase = blend(BlendRequest("u1", date(2024, 5, 1), NOW, "web", shelf_inputs, boosts=boosts), config)
    boosted_per_shelf = [[i.item_id for i in s.items if BOOST in i.rules] for s in showcase.shelves]
    assert all(len(b) <= per_shelf for b in boosted_per_shelf)
    assert sum(len(b) for b in boosted_per_shelf) <= per_page
    reported = {(e.item_id, e.shelf_id) for e in events(showcase, BOOST_CAP)}
    for shelf in showcase.shelves:
        for item in shelf.items:
            if item.item_id in boosts:
                assert (BOOST in item.rules) != ((item.item_id, shelf.shelf_id) in reported)
    for shelf, boosted in zip(showcase.shelves, boosted_per_shelf, strict=True):
        ids = [i.item_id for i in shelf.items]
        assert ids[: len(boosted)] == boosted  # boosted first, the rest (incl. capped) in ML order
        rest = ids[len(boosted) :]
        scores = {i.item_id: i.score for i in shelf.items}
        assert [scores[i] for i in rest] == sorted((scores[i] for i in rest), reverse=True)
