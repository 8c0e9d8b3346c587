"""Watched titles: removed; partly watched ones move to "continue watching"; animated series stay for children."""

from datetime import date

import pytest
from hypothesis import given, settings

from recsys.blender import BlenderConfig, BlendRequest, Candidate, ItemInfo, ShelfInput, WatchState, blend
from recsys.blender.config import WatchedConfig
from recsys.blender.model import CONTINUE_WATCHING, CONTINUE_WATCHING_KIND, WATCHED, WATCHED_KEPT_FOR_CHILD
from recsys.blender.rules.watched import CONTINUE, KEEP, KEEP_FOR_CHILD, REMOVE, continue_watching, watch_verdict
from tests.unit.blender.blender_strategies import NOW, configs, events, requests

CONFIG = WatchedConfig(watched_threshold=0.9, min_progress=0.05)
CARTOON = ItemInfo(animated_series=True)


@pytest.mark.parametrize(
    ("progress", "info", "child", "verdict"),
    [
        (0.0, ItemInfo(), False, KEEP),
        (0.049, ItemInfo(), False, KEEP),
        (0.05, ItemInfo(), False, CONTINUE),
        (0.899, ItemInfo(), False, CONTINUE),
        (0.9, ItemInfo(), False, REMOVE),
        (1.0, CARTOON, False, REMOVE),
        (1.0, CARTOON, True, KEEP_FOR_CHILD),
        (0.5, CARTOON, True, KEEP_FOR_CHILD),
        (1.0, ItemInfo(), True, REMOVE),
    ],
)
def test_verdict_by_progress_kind_and_age(progress, info, child, verdict):
    assert watch_verdict(WatchState(progress), info, child, CONFIG) == verdict


def test_continue_watching_is_most_recent_first_and_capped():
    watch = {
        "old": WatchState(0.5, 10.0),
        "new": WatchState(0.2, 30.0),
        "done": WatchState(0.95, 40.0),
        "tie": WatchState(0.3, 30.0),
    }
    assert [c.item_id for c in continue_watching(watch, CONFIG)] == ["new", "tie", "old"]
    capped = WatchedConfig(continue_watching_max=1)
    assert [c.item_id for c in continue_watching(watch, capped)] == ["new"]


def test_a_page_for_a_child_and_for_an_adult():
    config = BlenderConfig.from_dict({"placement": {"layouts": {"web": ["continue_watching", "s"]}}})
    shelf = ShelfInput("s", [Candidate(i, 1.0 - n / 10) for n, i in enumerate(["seen", "half", "cartoon", "fresh"])])
    watch = {"seen": WatchState(1.0, 5.0), "half": WatchState(0.4, 9.0), "cartoon": WatchState(1.0, 7.0)}
    items = {"cartoon": CARTOON}
    adult = blend(
        BlendRequest("u1", date(2024, 5, 1), NOW, "web", [shelf], items=items, watch=watch, user_age=30), config
    )
    assert adult.item_ids("continue_watching") == ["half"] and adult.item_ids("s") == ["fresh"]
    assert adult.shelf("continue_watching").kind == CONTINUE_WATCHING_KIND
    assert {(e.rule, e.item_id) for e in adult.events} >= {
        (WATCHED, "seen"),
        (WATCHED, "cartoon"),
        (CONTINUE_WATCHING, "half"),
    }
    child = blend(
        BlendRequest("u1", date(2024, 5, 1), NOW, "web", [shelf], items=items, watch=watch, user_age=7), config
    )
    assert child.item_ids("s") == ["cartoon", "fresh"]
    assert child.shelf("s").items[0].rules == (WATCHED_KEPT_FOR_CHILD,)
    unknown_age = blend(BlendRequest("u1", date(2024, 5, 1), NOW, "web", [shelf], items=items, watch=watch), config)
    assert unknown_age.item_ids("s") == ["fresh"]


@settings(max_examples=200, deadline=None)
@given(requests(), configs())
def test_watched_items_are_absent_except_the_documented_exceptions(request, config):
    showcase = blend(request, config)
    rules = config.watched
    child = request.user_age is not None and request.user_age < rules.adult_age
    partly = {i for i, s in request.watch.items() if rules.min_progress <= s.progress < rules.watched_threshold}
    for shelf in showcase.shelves:
        for item in shelf.items:
            state = request.watch.get(item.item_id)
            if state is None or state.progress < rules.min_progress:
                continue
            if shelf.kind == CONTINUE_WATCHING_KIND:
                assert item.item_id in partly  # only partly watched titles continue
            else:
                assert child and request.items.get(item.item_id, ItemInfo()).animated_series
                assert WATCHED_KEPT_FOR_CHILD in item.rules
    cw = showcase.shelf(rules.continue_watching_shelf)
    if cw is not None:
        removed = {e.item_id for e in events(showcase, "cross_shelf_dedup") if e.shelf_id == cw.shelf_id}
        expected = [c.item_id for c in continue_watching(request.watch, rules) if c.item_id not in removed]
        assert [i.item_id for i in cw.items] == expected
