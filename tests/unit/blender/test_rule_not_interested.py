""" "Not interested": N unclicked impressions in a row demote an item, M exclude it, and it returns after a cool-off."""

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.blender import BlenderConfig, BlendRequest, Candidate, Exposure, ShelfInput, blend
from recsys.blender.config import NotInterestedConfig
from recsys.blender.model import CONTINUE_WATCHING_KIND, NOT_INTERESTED
from recsys.blender.rules.not_interested import DEMOTE, EXCLUDE, OK, exposure_verdict, unclicked_streak
from tests.unit.blender.blender_strategies import NOW, events, shelves

HOUR, DAY = 3600.0, 86400.0
RULE = NotInterestedConfig(demote_after=3, exclude_after=5, cooloff_s=7 * DAY)


def shown(*hours_ago):
    return tuple(NOW - h * HOUR for h in hours_ago)


@pytest.mark.parametrize(
    ("exposure", "streak", "verdict"),
    [
        (Exposure(shown(1, 2)), 2, OK),
        (Exposure(shown(1, 2, 3)), 3, DEMOTE),
        (Exposure(shown(1, 2, 3, 4, 5)), 5, EXCLUDE),
        (Exposure(shown(1, 2, 3, 4, 5), clicks=shown(2.5)), 2, OK),  # a click resets the streak
        (Exposure(shown(1, 2, 400, 401, 402)), 2, OK),  # a week's gap between impressions ends it
        (Exposure(shown(170, 171, 172, 173, 174)), 0, OK),  # excluded, not shown for the cool-off: back
        (Exposure(shown(166, 167, 168, 169, 170)), 5, EXCLUDE),  # still inside the cool-off
        (Exposure(shown(-5, 1, 2)), 2, OK),  # impressions after now are ignored
    ],
)
def test_streak_and_verdict(exposure, streak, verdict):
    assert unclicked_streak(exposure, NOW, RULE.cooloff_s) == streak
    assert exposure_verdict(exposure, NOW, RULE) == verdict


def test_an_excluded_item_comes_back_with_a_fresh_streak_after_the_cool_off():
    excluded = shown(1, 2, 3, 4, 5)
    later = NOW + 7 * DAY + 5 * HOUR
    assert exposure_verdict(Exposure(excluded), later, RULE) == OK
    assert exposure_verdict(Exposure(excluded + (later - HOUR,)), later, RULE) == OK  # one new impression: streak 1


def test_a_page_demotes_then_excludes():
    shelf = ShelfInput("s", [Candidate("tired", 0.9), Candidate("gone", 0.8), Candidate("fresh", 0.1)])
    exposures = {"tired": Exposure(shown(1, 2, 3)), "gone": Exposure(shown(1, 2, 3, 4, 5, 6))}
    config = BlenderConfig.from_dict({"not_interested": {"demote_after": 3, "exclude_after": 5}})
    showcase = blend(BlendRequest("u1", date(2024, 5, 1), NOW, "web", [shelf], exposures=exposures), config)
    assert showcase.item_ids("s") == ["fresh", "tired"]
    assert showcase.shelf("s").items[1].rules == (NOT_INTERESTED,)
    assert [(e.action, e.item_id) for e in events(showcase, NOT_INTERESTED)] == [
        ("demoted", "tired"),
        ("excluded", "gone"),
    ]


history = st.builds(
    Exposure,
    impressions=st.lists(st.sampled_from([NOW - h * HOUR for h in (1, 2, 3, 4, 100, 170, 200)]), max_size=7).map(tuple),
    clicks=st.lists(st.sampled_from([NOW - h * HOUR for h in (2.5, 150)]), max_size=1).map(tuple),
)


@settings(max_examples=200, deadline=None)
@given(shelves(kinds=("ml",)), st.dictionaries(st.sampled_from([f"t{n}" for n in range(24)]), history))
def test_excluded_items_are_absent_and_demoted_items_come_after_the_others(shelf_inputs, exposures):
    config = BlenderConfig.from_dict(
        {"not_interested": {"demote_after": 2, "exclude_after": 4, "cooloff_s": 3 * DAY}, "spacing": {"coefficient": 0}}
    )
    showcase = blend(BlendRequest("u1", date(2024, 5, 1), NOW, "web", shelf_inputs, exposures=exposures), config)
    verdicts = {i: exposure_verdict(e, NOW, config.not_interested) for i, e in exposures.items()}
    for shelf in showcase.shelves:
        if shelf.kind == CONTINUE_WATCHING_KIND:
            continue
        ids = [i.item_id for i in shelf.items]
        assert not [i for i in ids if verdicts.get(i) == EXCLUDE]
        demoted_flags = [verdicts.get(i) == DEMOTE for i in ids]
        assert demoted_flags == sorted(demoted_flags)  # no demoted item above a non-demoted one
        assert all(
            (NOT_INTERESTED in item.rules) == flag for item, flag in zip(shelf.items, demoted_flags, strict=True)
        )
