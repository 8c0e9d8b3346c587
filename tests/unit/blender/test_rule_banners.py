"""Banner dedup: one banner per title on the page, the earliest published."""

from datetime import date

from hypothesis import given, settings

from recsys.blender import BlenderConfig, BlendRequest, Candidate, ShelfInput, blend
from recsys.blender.model import BANNER, BANNER_DEDUP
from recsys.blender.rules.banners import banner_winners
from tests.unit.blender.blender_strategies import NOW, events, requests


def test_the_earliest_published_banner_of_a_title_is_kept_wherever_it_is():
    top = ShelfInput(
        "hero", [Candidate("film", 0.9, published_at=200.0), Candidate("show", 0.5, published_at=50.0)], BANNER
    )
    lower = ShelfInput("carousel", [Candidate("film", 0.9, published_at=100.0), Candidate("other", 0.1)], BANNER)
    showcase = blend(
        BlendRequest("u1", date(2024, 5, 1), NOW, "web", [top, lower]), BlenderConfig.from_dict({"dedup": {"top_n": 0}})
    )
    assert showcase.item_ids("hero") == ["show"]
    assert showcase.item_ids("carousel") == ["film", "other"]
    (event,) = events(showcase, BANNER_DEDUP)
    assert (event.item_id, event.shelf_id, event.detail) == ("film", "hero", "kept the earlier banner on carousel")


def test_without_publication_times_the_higher_banner_wins():
    winners, removed = banner_winners([("a", [Candidate("t", 1.0)]), ("b", [Candidate("t", 1.0, published_at=None)])])
    assert winners == {"t": ("a", 0)} and [(e.item_id, e.shelf_id) for e in removed] == [("t", "b")]


@settings(max_examples=200, deadline=None)
@given(requests(kinds=(BANNER, BANNER, "ml"), with_history=False, with_boosts=False))
def test_one_banner_per_title_and_it_is_the_earliest_published(request):
    config = BlenderConfig.from_dict(
        {"dedup": {"top_n": 0}, "spacing": {"coefficient": 0}, "shelves": {"max_items": 50}}
    )
    showcase = blend(request, config)
    shown = [(i.item_id, s.shelf_id) for s in showcase.shelves if s.kind == BANNER for i in s.items]
    titles = [title for title, _ in shown]
    assert len(titles) == len(set(titles))
    earliest: dict[str, float] = {}
    for shelf in request.shelves:
        if shelf.kind == BANNER:
            for banner in shelf.items:
                at = float("inf") if banner.published_at is None else banner.published_at
                earliest[banner.item_id] = min(at, earliest.get(banner.item_id, float("inf")))
    for title, shelf_id in shown:
        kept = [c for c in next(s for s in request.shelves if s.shelf_id == shelf_id).items if c.item_id == title]
        assert min(float("inf") if c.published_at is None else c.published_at for c in kept) == earliest[title]
