"""Showcase health figures on crafted snapshots."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recsys.config import ShowcaseHealthConfig
from recsys.monitoring.showcase_health import Snapshot, showcase_health

DAY = "2024-05-08"


def snap(**shelves):
    return Snapshot.of({name: items.split() for name, items in shelves.items()})


def test_unchanged_share_novelty_and_weekly_shelf_change():
    today = {
        "u1": snap(top="a b c", new="d e"),
        "u2": snap(top="a b c", new="d e"),  # identical to yesterday
        "u3": snap(top="x y", new="z w"),  # no yesterday: not compared
    }
    yesterday = {"u1": snap(top="a b f", new="g e"), "u2": snap(top="a b c", new="d e")}
    week_ago = {
        "u1": snap(top="c b a", new="q r", gone="s"),  # top: same set, other order -> unchanged; new changed
        "u3": snap(top="x y", new="z w"),
    }
    report = showcase_health(DAY, today, yesterday, week_ago)
    assert (report.users_today, report.users_compared, report.unchanged) == (3, 2, 1)
    assert report.unchanged_share == 0.5
    # u1 shows a b c d e, of which c and d were not visible yesterday; u2 shows nothing new.
    assert (report.new_items, report.visible_items) == (2, 10) and report.daily_novelty == 0.2
    # u1: top same set, new changed; u3: both same. Shelves present only on one side do not count.
    assert (report.shelves_compared, report.shelves_changed) == (4, 1) and report.weekly_shelf_change == 0.25
    assert report.unchanged_examples == ["u2"]
    assert report.alarms == ["50.0% of showcases unchanged since yesterday (> 20%)"]


def test_low_novelty_alarm_and_metrics():
    today = {f"u{i}": snap(top="a b c d e f g h i j") for i in range(10)}
    yesterday = {f"u{i}": snap(top="a b c d e f g h i k") for i in range(10)}
    report = showcase_health(DAY, today, yesterday, {}, ShowcaseHealthConfig(daily_novelty_alarm_below=0.2))
    assert report.unchanged_share == 0.0 and report.daily_novelty == pytest.approx(0.1)
    assert report.alarms == ["daily novelty 10.0% < 20%"]
    metrics = {m.name: m.value for m in report.metrics()}
    assert metrics == {"ShowcaseUsersCompared": 10, "ShowcaseUnchangedShare": 0.0,
                       "ShowcaseDailyNovelty": pytest.approx(0.1)}


def test_fingerprint_follows_content_and_order():
    assert snap(top="a b", new="c").fingerprint == snap(top="a b", new="c").fingerprint
    assert snap(top="a b", new="c").fingerprint != snap(top="b a", new="c").fingerprint
    assert snap(top="a b", new="c").fingerprint != snap(new="c", top="a b").fingerprint
    assert Snapshot.of({"top": ["a"]}, fingerprint="api-hash").fingerprint == "api-hash"


@given(st.dictionaries(st.text(min_size=1, max_size=5), st.lists(st.text(min_size=1, max_size=5), max_size=8),
                       max_size=6))
def test_snapshot_json_round_trip(shelves):
    snapshot = Snapshot.of(shelves)
    assert Snapshot.from_json(snapshot.to_json()) == snapshot


def test_bad_snapshot_and_date_are_named():
    with pytest.raises(ValueError, match="snapshot: shelves must be"):
        Snapshot.from_json('{"fingerprint": "f", "shelves": {"top": ["a"]}}')
    with pytest.raises(ValueError, match="date: '08.05.2024' is not YYYY-MM-DD"):
        showcase_health("08.05.2024", {}, {}, {})
