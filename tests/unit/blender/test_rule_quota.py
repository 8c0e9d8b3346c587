"""Paid-content quota per shelf and per page, as a count and as a share of what is shown."""

from datetime import date

from hypothesis import given, settings

from recsys.blender import BlenderConfig, BlendRequest, Candidate, ItemInfo, ShelfInput, blend
from recsys.blender.model import CONTINUE_WATCHING_KIND, PAID_QUOTA
from tests.unit.blender.blender_strategies import NOW, configs, events, requests


def paid_page(quota, shelf_count=2):
    items = {f"p{n}": ItemInfo(paid=True) for n in range(12)}
    shelves = [
        ShelfInput(f"s{k}", [Candidate(f"p{n}" if n % 2 == 0 else f"f{k}{n}", 1 - n / 20) for n in range(12)])
        for k in range(shelf_count)
    ]
    config = BlenderConfig.from_dict({"quota": quota, "dedup": {"top_n": 0}, "spacing": {"coefficient": 0}})
    return blend(BlendRequest("u1", date(2024, 5, 1), NOW, "web", shelves, items=items), config), items


def paid_ids(showcase, shelf_id, items):
    return [i for i in showcase.item_ids(shelf_id) if i in items]


def test_a_shelf_count_keeps_the_highest_ranked_paid_items():
    showcase, items = paid_page({"max_paid_per_shelf": 2})
    assert paid_ids(showcase, "s0", items) == ["p0", "p2"]
    # the others would have shown: they are reported
    assert [e.item_id for e in events(showcase, PAID_QUOTA) if e.shelf_id == "s0"] == ["p4", "p6", "p8", "p10"]


def test_a_shelf_share_is_of_the_items_shown():
    showcase, items = paid_page({"max_paid_share_per_shelf": 0.25})
    for shelf in showcase.shelves:
        assert len(paid_ids(showcase, shelf.shelf_id, items)) <= 0.25 * len(shelf.items)
    # 6 paid + 6 free: 3 paid of 9 is over 25%, so the count is tightened to 2 of 8
    assert len(showcase.item_ids("s0")) == 8 and len(paid_ids(showcase, "s0", items)) == 2


def test_the_page_count_is_shared_by_shelves_top_to_bottom():
    showcase, items = paid_page({"max_paid_per_page": 5})
    assert len(paid_ids(showcase, "s0", items)) == 5 and paid_ids(showcase, "s1", items) == []


@settings(max_examples=250, deadline=None)
@given(requests(), configs())
def test_quotas_hold_on_every_shelf_and_on_the_page(request, config):
    showcase = blend(request, config)
    quota = config.quota
    paid = lambda item: request.items.get(item.item_id, ItemInfo()).paid  # noqa: E731
    page_paid = page_total = 0
    for shelf in showcase.shelves:
        count = sum(1 for i in shelf.items if paid(i))
        page_total += len(shelf.items)
        if shelf.kind == CONTINUE_WATCHING_KIND:
            continue
        page_paid += count
        if quota.max_paid_per_shelf is not None:
            assert count <= quota.max_paid_per_shelf
        if quota.max_paid_share_per_shelf is not None:
            assert count <= quota.max_paid_share_per_shelf * len(shelf.items) + 1e-9
    if quota.max_paid_per_page is not None:
        assert page_paid <= quota.max_paid_per_page
    if quota.max_paid_share_per_page is not None:
        assert page_paid <= quota.max_paid_share_per_page * page_total + 1e-9
