"""Cross-shelf dedup: an item in the top N of a higher shelf appears in no lower shelf."""

from datetime import date

from hypothesis import given, settings

from recsys.blender import BlenderConfig, BlendRequest, Candidate, ShelfInput, blend
from recsys.blender.model import CROSS_SHELF_DEDUP
from tests.unit.blender.blender_strategies import NOW, configs, events, requests


def test_items_in_the_top_n_of_a_higher_shelf_are_removed_below_and_reported():
    high = ShelfInput("high", [Candidate(f"i{n}", 1 - n / 10) for n in range(7)])
    low = ShelfInput("low", [Candidate("i6", 0.9), Candidate("i0", 0.8), Candidate("i4", 0.7), Candidate("z", 0.1)])
    showcase = blend(
        BlendRequest("u1", date(2024, 5, 1), NOW, "web", [high, low]), BlenderConfig.from_dict({"dedup": {"top_n": 5}})
    )
    assert showcase.item_ids("low") == ["i6", "z"]  # i6 was only 7th above: it stays
    assert [(e.item_id, e.shelf_id, e.detail) for e in events(showcase, CROSS_SHELF_DEDUP)] == [
        ("i0", "low", "in the top 5 of high"),
        ("i4", "low", "in the top 5 of high"),
    ]


def test_exempt_kinds_neither_claim_nor_lose_items():
    banners = ShelfInput("banners", [Candidate("i0", 1.0)], kind="banner")
    shelf = ShelfInput("s", [Candidate("i0", 1.0), Candidate("i1", 0.5)])
    request = BlendRequest("u1", date(2024, 5, 1), NOW, "web", [banners, shelf])
    assert blend(request).item_ids("s") == ["i1"]
    exempt = BlenderConfig.from_dict({"dedup": {"exempt_kinds": ["banner"]}})
    assert blend(request, exempt).item_ids("s") == ["i0", "i1"]


@settings(max_examples=200, deadline=None)
@given(requests(), configs())
def test_no_item_of_a_higher_shelfs_top_n_appears_in_a_lower_shelf(request, config):
    showcase = blend(request, config)
    top_n = config.dedup.top_n
    for upper_index, upper in enumerate(showcase.shelves):
        claimed = {i.item_id for i in upper.items[:top_n]}
        for lower in showcase.shelves[upper_index + 1 :]:
            assert not claimed & {i.item_id for i in lower.items}, (upper.shelf_id, lower.shelf_id)
    for shelf in showcase.shelves:
        ids = [i.item_id for i in shelf.items]
        assert len(ids) == len(set(ids))
