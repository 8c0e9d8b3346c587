"""The whole blender: one realistic page with every rule at work, and structural invariants for any input."""

from collections import Counter
from dataclasses import replace
from datetime import date

from hypothesis import given, settings

from recsys.blender import (
    BlenderConfig,
    BlendRequest,
    Candidate,
    Exposure,
    ItemInfo,
    ShelfInput,
    WatchState,
    blend,
    fingerprint,
)
from recsys.blender.model import BANNER, CONTINUE_WATCHING_KIND
from tests.unit.blender.blender_strategies import NOW, configs, requests

HOUR = 3600.0
CONFIG = BlenderConfig.from_dict(
    {
        "placement": {
            "layouts": {"web": ["banners", "continue_watching", "for_you", "new"]},
            "overrides": [{"arm": "promo-first", "shelf_id": "promo", "position": 1, "audience": "anonymous"}],
        },
        "dedup": {"top_n": 2},
        "spacing": {"coefficient": 1},
        "quota": {"max_paid_per_shelf": 1},
        "not_interested": {"demote_after": 2, "exclude_after": 3},
        "boost": {"max_per_page": 1},
        "shelves": {"max_items": 5},
    }
)
ITEMS = {
    "sw1": ItemInfo(franchise="star"),
    "sw2": ItemInfo(franchise="star"),
    "sw3": ItemInfo(franchise="star"),
    "paid1": ItemInfo(paid=True),
    "paid2": ItemInfo(paid=True),
    "toon": ItemInfo(animated_series=True),
}
REQUEST = BlendRequest(
    user_id="u42",
    day=date(2024, 5, 1),
    now=NOW,
    platform="web",
    shelves=[
        ShelfInput(
            "banners",
            [
                Candidate("sw1", 1.0, "editor", published_at=NOW - 9 * HOUR),
                Candidate("sw1", 0.9, "editor", published_at=NOW - 1 * HOUR),
            ],
            BANNER,
        ),
        ShelfInput(
            "for_you",
            [
                Candidate(i, s, "exploit")
                for i, s in [
                    ("sw1", 0.99),
                    ("sw2", 0.98),
                    ("sw3", 0.97),
                    ("paid1", 0.96),
                    ("paid2", 0.95),
                    ("seen", 0.94),
                    ("half", 0.93),
                    ("tired", 0.92),
                    ("x1", 0.5),
                    ("boosted", 0.1),
                ]
            ],
        ),
        ShelfInput(
            "new", [Candidate(i, s, "new") for i, s in [("boosted", 0.9), ("x1", 0.8), ("x2", 0.7), ("gone", 0.6)]]
        ),
        ShelfInput("promo", [Candidate("paid2", 1.0, "editor")]),
        ShelfInput("unplaced", [Candidate("x9", 1.0)]),
    ],
    items=ITEMS,
    boosts={"boosted"},
    watch={"seen": WatchState(1.0, NOW - 2 * HOUR), "half": WatchState(0.4, NOW - HOUR)},
    exposures={
        "tired": Exposure((NOW - HOUR, NOW - 2 * HOUR)),
        "gone": Exposure((NOW - HOUR, NOW - 2 * HOUR, NOW - 3 * HOUR)),
    },
)


def test_a_realistic_page():
    showcase = blend(REQUEST, CONFIG)
    assert [s.shelf_id for s in showcase.shelves] == ["banners", "continue_watching", "for_you", "new"]
    assert showcase.item_ids("banners") == ["sw1"]  # one banner per title
    assert showcase.item_ids("continue_watching") == ["half"]
    # sw1 is in the banners' top 2; boosted goes first; sw2/sw3 spaced; paid2 over the quota; tired demoted past the cut
    assert showcase.item_ids("for_you") == ["boosted", "sw2", "paid1", "sw3", "x1"]
    assert [i.rules for i in showcase.shelf("for_you").items] == [("boost",), (), (), ("franchise_spacing",), ()]
    assert [(i.channel, i.score) for i in showcase.shelf("for_you").items][:2] == [("exploit", 0.1), ("exploit", 0.98)]
    assert showcase.item_ids("new") == ["x1", "x2"]  # boosted is in for_you's top 2 (x1 is 5th); gone is excluded
    assert showcase.summary == {
        "placement.not_in_layout": 2,
        "banner_dedup.removed": 1,
        "cross_shelf_dedup.removed": 2,
        "watched.removed": 1,
        "continue_watching.moved": 1,
        "not_interested.demoted": 1,
        "not_interested.excluded": 1,
        "boost.boosted": 1,
        "paid_quota.removed": 1,
    }
    assert Counter(f"{e.rule}.{e.action}" for e in showcase.events) == Counter(showcase.summary)


def test_the_ab_arm_moves_the_promo_for_anonymous_users_only():
    anonymous = blend(replace(REQUEST, anonymous=True, placement_arm="promo-first"), CONFIG)
    assert [s.shelf_id for s in anonymous.shelves][:2] == ["promo", "banners"]
    assert anonymous.shelf("promo").rules == ("placement_ab",)
    signed_in = blend(replace(REQUEST, placement_arm="promo-first"), CONFIG)
    assert "promo" not in [s.shelf_id for s in signed_in.shelves]


def test_the_fingerprint_covers_only_the_visible_zone():
    showcase = blend(REQUEST, CONFIG)
    narrow = BlenderConfig.from_dict({"fingerprint": {"visible_shelves": 1, "visible_items": 1}})
    tail_changed = replace(
        REQUEST, shelves=[*REQUEST.shelves[:2], replace(REQUEST.shelves[2], items=[Candidate("zz", 1.0)])]
    )
    assert fingerprint(blend(tail_changed, CONFIG).shelves, narrow) == fingerprint(showcase.shelves, narrow)
    assert blend(tail_changed, CONFIG).fingerprint != showcase.fingerprint
    assert len(showcase.fingerprint) == 32


@settings(max_examples=200, deadline=None)
@given(requests(), configs())
def test_any_request_gives_a_well_formed_showcase(request, config):
    showcase = blend(request, config)
    offered = {s.shelf_id: {c.item_id for c in s.items} for s in request.shelves}
    for index, shelf in enumerate(showcase.shelves):
        assert shelf.position == index
        assert [i.position for i in shelf.items] == list(range(len(shelf.items)))
        assert config.shelves.min_items <= len(shelf.items)
        ids = [i.item_id for i in shelf.items]
        assert len(ids) == len(set(ids))
        if shelf.kind == CONTINUE_WATCHING_KIND:
            assert set(ids) <= set(request.watch)
        else:
            assert len(ids) <= config.shelves.max_items
            assert set(ids) <= offered[shelf.shelf_id]
    assert len({s.shelf_id for s in showcase.shelves}) == len(showcase.shelves)
    assert sum(showcase.summary.values()) == len(showcase.events)
