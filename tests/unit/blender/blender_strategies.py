"""Hypothesis strategies for blender requests and configs, shared by the per-rule property tests."""

from __future__ import annotations

from datetime import date

from hypothesis import strategies as st

from recsys.blender import BlenderConfig, BlendRequest, Candidate, Exposure, ItemInfo, ShelfInput, WatchState
from recsys.blender.model import BANNER, ML

NOW = 1_700_000_000.0
DAY = 86_400.0
ITEM_IDS = [f"t{n}" for n in range(24)]
FRANCHISES = [None, None, None, "f1", "f2", "f3"]
SCORES = st.one_of(st.sampled_from([0.1, 0.5, 0.9]), st.floats(0, 1, allow_nan=False))

item_infos = st.builds(
    ItemInfo,
    franchise=st.sampled_from(FRANCHISES),
    paid=st.booleans(),
    animated_series=st.booleans(),
)
candidates = st.builds(
    Candidate,
    item_id=st.sampled_from(ITEM_IDS),
    score=SCORES,
    channel=st.sampled_from(["exploit", "explore", "popular", "trending", "new"]),
    published_at=st.one_of(st.none(), st.sampled_from([NOW - 3 * DAY, NOW - 2 * DAY, NOW - DAY])),
)
watch_states = st.builds(
    WatchState,
    progress=st.sampled_from([0.0, 0.03, 0.2, 0.5, 0.89, 0.9, 1.0]),
    last_watched_at=st.sampled_from([NOW - 5 * DAY, NOW - DAY, NOW - 60]),
)
exposures = st.builds(
    Exposure,
    impressions=st.lists(st.sampled_from([NOW - h * 3600.0 for h in (1, 2, 5, 30, 200, 400)]), max_size=8).map(tuple),
    clicks=st.lists(st.sampled_from([NOW - h * 3600.0 for h in (3, 50, 500)]), max_size=1).map(tuple),
)
ctr_stats = st.tuples(st.sampled_from([0, 50, 300, 5000]), st.sampled_from([0, 1, 10, 100, 400]))


@st.composite
def shelves(draw, kinds=(ML, ML, ML, BANNER), min_shelves=1, max_shelves=4):
    count = draw(st.integers(min_shelves, max_shelves))
    return [
        ShelfInput(f"s{index}", draw(st.lists(candidates, max_size=14)), draw(st.sampled_from(kinds)))
        for index in range(count)
    ]


@st.composite
def requests(draw, kinds=(ML, ML, ML, BANNER), with_history=True, with_boosts=True, max_shelves=4):
    pool = st.sampled_from(ITEM_IDS)
    return BlendRequest(
        user_id=draw(st.sampled_from(["u1", "u2", "anon-7"])),
        day=draw(st.sampled_from([date(2024, 5, 1), date(2024, 5, 2)])),
        now=NOW,
        platform=draw(st.sampled_from(["web", "tv"])),
        shelves=draw(shelves(kinds, max_shelves=max_shelves)),
        items=draw(st.dictionaries(pool, item_infos)),
        boosts=draw(st.frozensets(pool, max_size=4)) if with_boosts else frozenset(),
        ctr=draw(st.dictionaries(pool, ctr_stats)),
        watch=draw(st.dictionaries(pool, watch_states, max_size=8)) if with_history else {},
        exposures=draw(st.dictionaries(pool, exposures, max_size=8)) if with_history else {},
        anonymous=draw(st.booleans()),
        user_age=draw(st.sampled_from([None, 9, 17, 18, 40])),
        placement_arm=draw(st.sampled_from([None, "A", "B"])),
    )


optional_count = st.one_of(st.none(), st.integers(0, 4))
optional_share = st.one_of(st.none(), st.sampled_from([0.0, 0.2, 0.34, 0.5, 1.0]))


@st.composite
def configs(draw, **overrides):
    data = {
        "boost": {
            "ctr_ratio_threshold": draw(st.sampled_from([1.0, 2.0, 5.0])),
            "min_impressions": draw(st.sampled_from([0, 100])),
            "max_per_shelf": draw(st.integers(0, 2)),
            "max_per_page": draw(st.integers(0, 3)),
        },
        "placement": {
            "layouts": draw(st.sampled_from([{}, {"web": ["s2", "continue_watching", "s0", "s1", "s3"]}])),
            "overrides": draw(
                st.sampled_from([[], [{"arm": "B", "shelf_id": "s3", "position": 1, "audience": "anonymous"}]])
            ),
        },
        "dedup": {"top_n": draw(st.integers(0, 5))},
        "spacing": {"coefficient": draw(st.integers(0, 3))},
        "quota": {
            "max_paid_per_shelf": draw(optional_count),
            "max_paid_share_per_shelf": draw(optional_share),
            "max_paid_per_page": draw(optional_count),
            "max_paid_share_per_page": draw(optional_share),
        },
        "not_interested": {"demote_after": 2, "exclude_after": draw(st.sampled_from([3, 5])), "cooloff_s": 3 * DAY},
        "shelves": {"max_items": draw(st.integers(1, 10)), "min_items": draw(st.integers(1, 2))},
    }
    for section, values in overrides.items():
        data[section] = {**data.get(section, {}), **values}
    return BlenderConfig.from_dict(data)


def visible_shelves(showcase, kinds=(ML, BANNER)):
    return [shelf for shelf in showcase.shelves if shelf.kind in kinds]


def events(showcase, rule, action=None):
    return [e for e in showcase.events if e.rule == rule and (action is None or e.action == action)]
