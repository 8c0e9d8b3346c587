"""The synthetic generator: deterministic, realistic in shape, and with preferences a model can find."""

from __future__ import annotations

import csv
import hashlib
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from recsys.datasets.schema import INTERACTIONS, ITEMS, USERS
from recsys.datasets.synthetic import DAY_S, DEFAULT_END_TIME, PROMOTION_HOURS, build_world, generate

N_USERS, N_ITEMS, N_EVENTS, DAYS, SEED = 400, 200, 30_000, 14, 11


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("synthetic")
    summary = generate(out, n_users=N_USERS, n_items=N_ITEMS, n_events=N_EVENTS, days=DAYS, seed=SEED)
    with open(out / "interactions.csv", encoding="utf-8", newline="") as file:
        rows = list(csv.DictReader(file))
    return summary, rows


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    args = {"n_users": 50, "n_items": 40, "n_events": 3_000, "days": 5}
    generate(tmp_path / "a", seed=1, **args)
    generate(tmp_path / "b", seed=1, **args)
    generate(tmp_path / "c", seed=2, **args)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert set(digests(tmp_path / "a").values()).isdisjoint(digests(tmp_path / "c").values())


def test_files_have_the_schema_columns_and_exact_counts(dataset):
    summary, rows = dataset
    out = summary.out_dir
    for schema in (INTERACTIONS, USERS, ITEMS):
        with open(out / schema.file_name, encoding="utf-8") as file:
            assert next(csv.reader(file)) == list(schema.columns)
    assert len(rows) == summary.interactions == N_EVENTS
    assert sum(summary.event_types.values()) == N_EVENTS
    assert set(summary.event_types) == {"click", "view", "listen", "watch", "like", "purchase"}


def test_events_stay_in_the_window_and_after_release(dataset):
    summary, rows = dataset
    world = summary.world
    assert world.end_time == DEFAULT_END_TIME and world.start_time == DEFAULT_END_TIME - DAYS * DAY_S
    for row in rows:
        t = int(row["TIMESTAMP"])
        assert world.start_time <= t < world.end_time
        assert world.item(row["ITEM_ID"]).creation_timestamp <= t
    released_inside = [i for i in world.items if i.creation_timestamp > world.start_time]
    assert released_inside, "some items are released during the window"


def test_catalogue_and_profiles_are_filled(dataset):
    world = dataset[0].world
    assert all(item.genres and item.creator and item.category and item.duration for item in world.items)
    assert all(item.price > 0 for item in world.items if item.is_paid)
    assert all(item.price == 0 for item in world.items if not item.is_paid)
    assert {item.category[0] for item in world.items if item.is_animated_series} <= {"series"}
    assert any(item.franchise for item in world.items) and any(item.banner_ids for item in world.items)
    assert all(user.topics and user.geo and user.acquisition_channel and user.membership for user in world.users)
    kids = [u.age for u in world.users if "kids" in u.topics]
    others = [u.age for u in world.users if "kids" not in u.topics]
    assert sum(kids) / len(kids) < sum(others) / len(others) - 5


def test_sessions_show_impressions_and_follow_a_funnel(dataset):
    rows = dataset[1]
    clicks = [r for r in rows if r["EVENT_TYPE"] == "click"]
    assert clicks and all(r["ITEM_ID"] in r["IMPRESSION"].split("|") and r["RECOMMENDATION_ID"] for r in clicks)
    assert sum(len(r["IMPRESSION"].split("|")) for r in clicks) / len(clicks) > 6
    assert all(not r["IMPRESSION"] for r in rows if r["EVENT_TYPE"] != "click")
    plays = [r for r in rows if r["EVENT_TYPE"] in ("listen", "watch")]
    assert all(float(r["EVENT_VALUE"]) >= 0 for r in plays)
    world = dataset[0].world
    assert all(float(r["EVENT_VALUE"]) == world.item(r["ITEM_ID"]).price for r in rows if r["EVENT_TYPE"] == "purchase")
    assert all(r["SESSION_ID"] and r["DEVICE"] and r["GEO"] for r in rows)


def test_traffic_has_daily_and_weekly_cycles(dataset):
    rows = dataset[1]
    by_hour = Counter(int(r["TIMESTAMP"]) % DAY_S // 3600 for r in rows)
    assert by_hour[20] > 2.5 * by_hour[8]
    days = Counter(int(r["TIMESTAMP"]) // DAY_S for r in rows)
    weekend = [n for day, n in days.items() if (day + 3) % 7 >= 5]
    weekday = [n for day, n in days.items() if (day + 3) % 7 < 5]
    assert sum(weekend) / len(weekend) > 1.1 * sum(weekday) / len(weekday)


def test_promoted_creators_burst(dataset):
    summary, rows = dataset
    world = summary.world
    (start, creator), = world.promotions
    inside = [r for r in rows if start <= int(r["TIMESTAMP"]) < start + 3 * 3600]
    outside = [r for r in rows if not start - DAY_S <= int(r["TIMESTAMP"]) < start + PROMOTION_HOURS * 3600 + DAY_S]

    def share(selection):
        return sum(creator in world.item(r["ITEM_ID"]).creator for r in selection) / len(selection)

    assert share(inside) > 2.5 * share(outside)
    same_hours_other_days = [r for r in rows if 0 < (start - int(r["TIMESTAMP"])) % DAY_S <= DAY_S - 3 * 3600
                             and (int(r["TIMESTAMP"]) - start) % DAY_S < 3 * 3600]
    assert len(inside) > 1.5 * len(same_hours_other_days) / (DAYS - 1)


def test_planted_topic_preferences_are_far_above_the_base_rate(dataset):
    summary, rows = dataset
    world = summary.world
    picks = [r for r in rows if r["EVENT_TYPE"] in ("click", "view")]
    users = {r["USER_ID"] for r in picks}
    base_rate = {u: world.topic_base_rate(list(world.truth(u).topic_affinity)) for u in users}
    in_topics = sum(bool(set(world.item(r["ITEM_ID"]).genres) & world.truth(r["USER_ID"]).topic_affinity.keys())
                    for r in picks) / len(picks)
    base = sum(base_rate[r["USER_ID"]] for r in picks) / len(picks)
    assert in_topics > 0.6 and in_topics > 2.5 * base
    hidden_base_rate = {
        u: world.topic_base_rate(world.truth(u).hidden_topics) for u in users if world.truth(u).hidden_topics
    }
    hidden = [r for r in picks if r["USER_ID"] in hidden_base_rate]
    hidden_share = sum(bool(set(world.item(r["ITEM_ID"]).genres) & set(world.truth(r["USER_ID"]).hidden_topics))
                       for r in hidden) / len(hidden)
    hidden_base = sum(hidden_base_rate[r["USER_ID"]] for r in hidden) / len(hidden)
    assert hidden_share > 2 * hidden_base, "topics missing from the profile still show in behaviour"


def test_preferred_items_are_played_longer_and_liked_more(dataset):
    summary, rows = dataset
    world = summary.world
    played: dict[bool, list[float]] = defaultdict(list)
    for r in rows:
        if r["EVENT_TYPE"] in ("listen", "watch"):
            played[world.prefers(r["USER_ID"], r["ITEM_ID"])].append(
                float(r["EVENT_VALUE"]) / world.item(r["ITEM_ID"]).duration)
    assert sum(played[True]) / len(played[True]) > 2 * sum(played[False]) / len(played[False])
    likes = Counter(world.prefers(r["USER_ID"], r["ITEM_ID"]) for r in rows if r["EVENT_TYPE"] == "like")
    clicks = Counter(world.prefers(r["USER_ID"], r["ITEM_ID"]) for r in rows if r["EVENT_TYPE"] == "click")
    assert likes[True] / clicks[True] > 3 * likes[False] / clicks[False]


def test_a_preference_aware_model_beats_popularity(dataset):
    """Train on the first 80% of time, test on the rest: recall at 10 of popularity vs popularity x affinity."""
    summary, rows = dataset
    world = summary.world
    picks = sorted((r for r in rows if r["EVENT_TYPE"] in ("click", "view")), key=lambda r: int(r["TIMESTAMP"]))
    cut = int(len(picks) * 0.8)
    train, test = picks[:cut], picks[cut:]
    popularity = Counter(r["ITEM_ID"] for r in train)
    topics: dict[str, Counter[str]] = defaultdict(Counter)
    creators: dict[str, Counter[str]] = defaultdict(Counter)
    for r in train:
        item = world.item(r["ITEM_ID"])
        topics[r["USER_ID"]].update(item.genres)
        creators[r["USER_ID"]].update(item.creator)

    def personal(user: str) -> set[str]:
        t, c = topics[user], creators[user]
        t_total, c_total = 1 + sum(t.values()), 1 + sum(c.values())

        def score(item_id: str) -> float:
            item = world.item(item_id)
            affinity = 5 * sum(t[g] for g in item.genres) / t_total + 10 * sum(c[x] for x in item.creator) / c_total
            return popularity[item_id] * (1 + affinity)

        return set(sorted(popularity, key=score, reverse=True)[:10])

    top = {item for item, _ in popularity.most_common(10)}
    wanted: dict[str, set[str]] = defaultdict(set)
    for r in test:
        wanted[r["USER_ID"]].add(r["ITEM_ID"])
    popular_recall = sum(len(items & top) / len(items) for items in wanted.values()) / len(wanted)
    personal_recall = sum(len(items & personal(user)) / len(items) for user, items in wanted.items()) / len(wanted)
    assert personal_recall > 1.25 * popular_recall


def test_the_truth_is_available_without_generating_events():
    world = build_world(N_USERS, N_ITEMS, SEED, days=DAYS)
    truth = world.truth("u0000007")
    assert abs(sum(truth.topic_affinity.values()) - 1) < 1e-9
    assert set(truth.profile_topics) <= truth.topic_affinity.keys()
    assert truth.favourite_creators and truth.activity > 0
    again = build_world(N_USERS, N_ITEMS, SEED, days=DAYS)
    assert again.truths == world.truths and again.items == world.items
    big = build_world(10, 3_000, SEED, days=DAYS)
    assert any(item.is_animated_series for item in big.items if "kids" in item.genres)
    with pytest.raises(ValueError):
        build_world(0, 10, 1, days=3)
