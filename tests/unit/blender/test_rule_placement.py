"""Shelf placement per platform from CMS layouts, plus the A/B placement override of the user's arm."""

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.blender import BlenderConfig, BlendRequest, Candidate, ConfigError, ShelfInput, blend, layouts_from_cms
from recsys.blender.config import PlacementConfig, PlacementOverride
from recsys.blender.model import PLACEMENT_AB
from recsys.blender.rules.placement import place_shelves
from tests.unit.blender.blender_strategies import NOW

CMS = [
    {"platform": "web", "shelf_id": "hero", "position": 1},
    {"platform": "web", "shelf_id": "carousel", "position": 2},
    {"platform": "web", "shelf_id": "for_you", "position": 3},
    {"platform": "web", "shelf_id": "promo", "position": 4},
    {"platform": "tv", "shelf_id": "for_you", "position": 1},
    {"platform": "tv", "shelf_id": "promo", "position": 2, "enabled": False},
]
EXPERIMENT = [
    {"arm": "B", "shelf_id": "promo", "position": 1, "platforms": ["web"], "audience": "anonymous"},
    {"arm": "B", "shelf_id": "carousel", "position": 3, "platforms": ["web"], "audience": "anonymous"},
]
SHELVES = ["hero", "carousel", "for_you", "promo", "extra"]


def config(overrides=EXPERIMENT):
    return BlenderConfig.from_dict({"placement": {"layouts": layouts_from_cms(CMS), "overrides": overrides}})


def page(platform, anonymous, arm):
    request = BlendRequest(
        "u1",
        date(2024, 5, 1),
        NOW,
        platform,
        [ShelfInput(s, [Candidate(f"{s}-1", 1.0)]) for s in SHELVES],
        anonymous=anonymous,
        placement_arm=arm,
    )
    return blend(request, config())


def test_cms_records_give_the_layout_per_platform():
    assert layouts_from_cms(CMS) == {"web": ("hero", "carousel", "for_you", "promo"), "tv": ("for_you",)}
    assert [s.shelf_id for s in page("web", False, None).shelves] == ["hero", "carousel", "for_you", "promo"]
    assert [s.shelf_id for s in page("tv", True, "B").shelves] == ["for_you"]


def test_anonymous_web_users_in_arm_b_get_the_promo_first_and_the_carousel_third():
    showcase = page("web", True, "B")
    assert [s.shelf_id for s in showcase.shelves] == ["promo", "hero", "carousel", "for_you"]
    assert showcase.shelf("promo").rules == (PLACEMENT_AB,)
    assert [s.shelf_id for s in page("web", False, "B").shelves] == ["hero", "carousel", "for_you", "promo"]
    assert [s.shelf_id for s in page("web", True, "A").shelves] == ["hero", "carousel", "for_you", "promo"]


def test_without_any_layout_the_request_order_is_kept():
    order, moved, _ = place_shelves(["b", "a", "c"], "web", False, None, PlacementConfig())
    assert order == ["b", "a", "c"] and moved == {}


@pytest.mark.parametrize(
    ("records", "message"),
    [
        (
            [{"platform": "web", "shelf_id": "a", "position": 0}],
            "records[0].position: expected an integer >= 1, got 0 (int)",
        ),
        (
            [{"platform": "", "shelf_id": "a", "position": 1}],
            "records[0].platform: expected a non-empty string, got '' (str)",
        ),
        (
            [{"platform": "web", "shelf_id": "a", "position": 1}, {"platform": "web", "shelf_id": "a", "position": 2}],
            "records[1].shelf_id: 'a' is placed twice on 'web'",
        ),
        (
            [{"platform": "web", "shelf_id": "a", "position": 1, "enabled": "yes"}],
            "records[0].enabled: expected true or false, got 'yes' (str)",
        ),
    ],
)
def test_bad_cms_records_name_the_field(records, message):
    with pytest.raises(ConfigError) as caught:
        layouts_from_cms(records)
    assert str(caught.value) == message


layout_ids = st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f"]), unique=True, max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    layout_ids,
    layout_ids,
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c", "d", "e", "f"]), st.integers(1, 7)),
        max_size=3,
        unique_by=lambda t: t[0],
    ),
)
def test_placement_follows_the_layout_and_overrides_land_on_their_positions(available, layout, moves):
    moves = [m for i, m in enumerate(moves) if m[1] not in [n[1] for n in moves[:i]]]  # distinct positions
    placement = PlacementConfig(
        layouts={"web": tuple(layout)},
        overrides=tuple(PlacementOverride("B", shelf, position) for shelf, position in moves),
    )
    order, moved, _ = place_shelves(available, "web", False, "B", placement)
    applied = [(s, p) for s, p in moves if s in available]
    base = [s for s in layout if s in available and s not in dict(applied)]
    assert [s for s in order if s not in dict(applied)] == base
    assert sorted(order) == sorted(set(base) | set(dict(applied)))
    for shelf, position in applied:
        earlier = sum(1 for _, p in applied if p < position)
        if position - 1 <= len(base) + earlier:  # enough shelves above it to stand on
            assert order.index(shelf) == position - 1
    assert set(moved) == set(dict(applied))
