"""A synthetic catalogue and synthetic behaviour with planted preferences: the scalable development dataset.

    summary = generate("data/synthetic", n_users=5_000, n_items=2_000, n_events=1_000_000, days=60, seed=7)
    summary.world.truth("u0000042").topic_affinity   # the planted truth, for tests and evaluation

What it makes (seeded and deterministic: the same arguments give the same bytes):
- creators, each with a main topic, a format (podcast, audiobook, music: listened; series, movie, documentary:
  watched), a log-normal popularity and a few franchises;
- items: CATEGORY (the format), GENRES (topics), CREATOR, FRANCHISE, IS_PAID and PRICE, CREATION_TIMESTAMP (most
  before the window, some released inside it: they get no events before release), DURATION, IS_ANIMATED_SERIES,
  BANNER_IDS, TITLE;
- users: AGE, TOPICS (the profile), GEO, ACQUISITION_CHANNEL, MEMBERSHIP; hidden from the files, their true topic
  affinities (profile topics, and for some users a topic their profile does not list), favourite creators and
  activity level;
- sessions: a feed shows 8 items (IMPRESSION, RECOMMENDATION_ID) and the user clicks one, or finds one by search
  (view); then maybe a detail view, a purchase for paid items, a listen/watch with EVENT_VALUE = seconds played,
  a like. Traffic follows a daily cycle (peak 20:00 UTC) and a weekly one (weekends busier), plus a few bursts when a
  popular creator promotes their items.

Planted preferences: the clicked item comes from a favourite creator (30%), from a topic drawn from the user's
affinities (45%) or from global popularity (25%); plays are longer, and likes and purchases likelier, on preferred
items. So a model that learns users' topics and creators beats popularity by a clear margin.

Memory: the world (users and items) is held; events stream out one 15-minute slot at a time.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from recsys.datasets.csvfiles import DatasetCsvWriter
from recsys.datasets.models import Item, User
from recsys.datasets.schema import INTERACTIONS, ITEMS, USERS
from recsys.events import CLICK, LIKE, LISTEN, PURCHASE, VIEW, WATCH

DAY_S = 86_400
SLOT_S = 900
# 2025-01-01T00:00:00Z: a fixed default keeps the output independent of when it is generated.
DEFAULT_END_TIME = 1_735_689_600

TOPICS = (
    "news", "comedy", "true-crime", "sports", "music", "technology",
    "business", "history", "kids", "science", "wellness", "drama",
)
# CATEGORY (the format) -> the event type of playing it, and its length range in minutes.
FORMATS = {
    "podcast": (LISTEN, 20, 90),
    "audiobook": (LISTEN, 180, 720),
    "music": (LISTEN, 30, 75),
    "series": (WATCH, 20, 60),
    "movie": (WATCH, 80, 170),
    "documentary": (WATCH, 40, 120),
}
GEOS = {"US": 35, "IN": 18, "BR": 10, "GB": 8, "DE": 7, "RU": 7, "ES": 5, "JP": 4, "KR": 3, "MX": 3}
CHANNELS = {"organic": 40, "paid_search": 20, "social": 20, "referral": 12, "tv": 8}
MEMBERSHIPS = {"free": 75, "premium": 25}
DEVICES = {"android": 40, "ios": 30, "web": 20, "tv": 10}
PRICES = (0.99, 1.99, 2.99, 4.99, 9.99, 14.99)
_ADJECTIVES = ("Quiet", "Bright", "Hidden", "Lost", "Golden", "Wild", "Last", "Secret", "Little", "Great", "Red")
_NOUNS = ("Hour", "Road", "Signal", "Story", "Harbor", "Season", "Circle", "Garden", "Frontier", "Echo", "Room", "Line")

# Behaviour knobs (the planted signal).
P_FAVOURITE_CREATOR = 0.30
P_AFFINITY_TOPIC = 0.45
P_FEED_STEP = 0.8
FEED_SIZE = 8
P_HIDDEN_TOPIC = 0.35
P_PROMOTED_PICK = 0.7
PROMOTION_HOURS = 8
PROMOTION_PEAK = 2.0
PROMOTION_HALF_LIFE_H = 2.0
# (preferred, not preferred) probabilities.
P_PLAY = (0.85, 0.40)
P_LIKE = (0.30, 0.03)
P_PURCHASE = (0.30, 0.03)
PLAYED_SHARE = ((4.0, 2.0), (1.2, 5.0))  # beta distribution parameters of the share of the item played


class _Pool:
    """Weighted sampling of indexes by cumulative weights (O(log n) a draw)."""

    def __init__(self, indexes: Sequence[int], weights: Sequence[float]) -> None:
        self.indexes = list(indexes)
        self.cumulative = list(itertools.accumulate(weights))
        self.total = self.cumulative[-1] if self.cumulative else 0.0

    def __bool__(self) -> bool:
        return bool(self.indexes)

    def pick(self, rng: random.Random) -> int:
        position = bisect.bisect_right(self.cumulative, rng.random() * self.total)
        return self.indexes[min(position, len(self.indexes) - 1)]


def _weighted(rng: random.Random, choices: dict[str, int]) -> str:
    return rng.choices(list(choices), weights=list(choices.values()))[0]


@dataclass(frozen=True)
class Creator:
    creator_id: str
    topic: str
    format: str
    popularity: float
    franchises: tuple[str, ...]


@dataclass(frozen=True)
class UserTruth:
    """What a user really likes (the planted preferences); only partly visible in users.csv."""

    user_id: str
    topic_affinity: dict[str, float]  # topic -> weight, summing to 1
    profile_topics: tuple[str, ...]  # what TOPICS in users.csv says
    favourite_creators: tuple[str, ...]
    activity: float  # relative session rate

    @property
    def hidden_topics(self) -> tuple[str, ...]:
        """Topics the user likes that the profile does not list (learnable only from behaviour)."""
        return tuple(t for t in self.topic_affinity if t not in self.profile_topics)


@dataclass
class SyntheticWorld:
    """Users, items and the planted truth; built from (n_users, n_items, seed, time window) alone."""

    seed: int
    start_time: int
    end_time: int
    creators: list[Creator]
    items: list[Item]
    item_weights: list[float]
    users: list[User]
    truths: list[UserTruth]
    promotions: list[tuple[int, str]]  # (start time, creator id)
    _user_index: dict[str, int] = field(default_factory=dict, repr=False)
    _item_index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._user_index = {user.user_id: i for i, user in enumerate(self.users)}
        self._item_index = {item.item_id: i for i, item in enumerate(self.items)}

    def truth(self, user_id: str) -> UserTruth:
        return self.truths[self._user_index[user_id]]

    def item(self, item_id: str) -> Item:
        return self.items[self._item_index[item_id]]

    def prefers(self, user_id: str, item_id: str) -> bool:
        """True when the item is in one of the user's true topics or by a favourite creator."""
        truth, item = self.truth(user_id), self.item(item_id)
        return bool(set(item.genres) & truth.topic_affinity.keys()) or bool(
            set(item.creator) & set(truth.favourite_creators)
        )

    def topic_base_rate(self, topics: Sequence[str]) -> float:
        """Popularity-weighted share of items with a genre in `topics`: what a user without preferences would see."""
        wanted = set(topics)
        inside = sum(w for item, w in zip(self.items, self.item_weights) if wanted & set(item.genres))
        return inside / sum(self.item_weights)


def build_world(n_users: int, n_items: int, seed: int, *, days: int,
                end_time: int = DEFAULT_END_TIME) -> SyntheticWorld:
    """The catalogue, the users and their planted preferences (independent of the number of events)."""
    if n_users < 1 or n_items < 1 or days < 1:
        raise ValueError("n_users, n_items and days must be positive")
    rng = random.Random(f"recsys-synthetic:{seed}:world")
    start_time = end_time - days * DAY_S

    creators = []
    for c in range(max(5, n_items // 15)):
        creator_id = f"c{c:05d}"
        creators.append(Creator(
            creator_id=creator_id,
            topic=rng.choice(TOPICS),
            format=rng.choice(tuple(FORMATS)),
            popularity=rng.lognormvariate(0, 1.0),
            franchises=tuple(f"fr-{creator_id}-{k}" for k in range(rng.choice((0, 0, 1, 2)))),
        ))
    creator_pick = _Pool(range(len(creators)), [math.sqrt(c.popularity) for c in creators])

    items, weights = [], []
    for i in range(n_items):
        creator = creators[creator_pick.pick(rng)]
        topic = creator.topic if rng.random() < 0.85 else rng.choice(TOPICS)
        genres = (topic,) + ((rng.choice([t for t in TOPICS if t != topic]),) if rng.random() < 0.25 else ())
        play_type, low, high = FORMATS[creator.format]
        paid = rng.random() < (0.4 if creator.format in ("audiobook", "movie") else 0.08)
        released = (rng.uniform(start_time, end_time) if rng.random() < 0.15 and i > 0
                    else start_time - rng.uniform(0, 3 * 365 * DAY_S))
        item_id = f"i{i:06d}"
        items.append(Item(
            item_id=item_id,
            creation_timestamp=int(released),
            category=(creator.format,),
            genres=genres,
            creator=(creator.creator_id,),
            franchise=(rng.choice(creator.franchises),) if creator.franchises and rng.random() < 0.3 else (),
            is_paid=paid,
            price=rng.choice(PRICES) if paid else 0.0,
            duration=float(60 * rng.randint(low, high)),
            is_animated_series=creator.format == "series" and rng.random() < (0.7 if topic == "kids" else 0.05),
            banner_ids=tuple(f"b{i:06d}-{k}" for k in range(1, rng.randint(1, 3) + 1)) if rng.random() < 0.3 else (),
            title=f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}",
        ))
        weights.append(creator.popularity * rng.lognormvariate(0, 0.8))

    topic_popularity = {topic: rng.uniform(0.5, 2.0) for topic in TOPICS}
    creators_by_topic: dict[str, list[int]] = {}
    for index, creator in enumerate(creators):
        creators_by_topic.setdefault(creator.topic, []).append(index)

    users, truths = [], []
    for u in range(n_users):
        user_id = f"u{u:07d}"
        profile = tuple(sorted(set(rng.choices(TOPICS, weights=list(topic_popularity.values()), k=rng.randint(1, 3)))))
        affinity = {topic: rng.uniform(1.0, 2.0) for topic in profile}
        if rng.random() < P_HIDDEN_TOPIC:
            affinity[rng.choice([t for t in TOPICS if t not in profile])] = rng.uniform(1.0, 2.0)
        total = sum(affinity.values())
        candidates = [i for topic in affinity for i in creators_by_topic.get(topic, [])] or list(range(len(creators)))
        favourites = sorted({
            creators[rng.choices(candidates, weights=[creators[i].popularity for i in candidates])[0]].creator_id
            for _ in range(rng.randint(1, 3))
        })
        young = rng.random() < (0.5 if "kids" in profile else 0.05)
        age = rng.randint(6, 17) if young else min(80, max(18, round(rng.gauss(35, 12))))
        users.append(User(
            user_id=user_id,
            age=age,
            membership=(_weighted(rng, MEMBERSHIPS),),
            geo=(_weighted(rng, GEOS),),
            acquisition_channel=(_weighted(rng, CHANNELS),),
            topics=profile,
        ))
        truths.append(UserTruth(
            user_id=user_id,
            topic_affinity={topic: weight / total for topic, weight in affinity.items()},
            profile_topics=profile,
            favourite_creators=tuple(favourites),
            activity=rng.lognormvariate(0, 1.0),
        ))

    top_creators = sorted(creators, key=lambda c: -c.popularity)[: max(1, len(creators) // 5)]
    promotions = sorted(
        (int(rng.uniform(start_time, end_time - PROMOTION_HOURS * 3600)), rng.choice(top_creators).creator_id)
        for _ in range(max(1, round(days / 20)))
    )
    return SyntheticWorld(seed, start_time, end_time, creators, items, weights, users, truths, promotions)


class _Behaviour:
    """Simulates sessions over a world; one random stream, so the output is a function of the seed."""

    def __init__(self, world: SyntheticWorld) -> None:
        self.world = world
        self.rng = random.Random(f"recsys-synthetic:{world.seed}:events")
        items = world.items
        self.released = [item.creation_timestamp for item in items]
        self.ids = [item.item_id for item in items]
        self.play = [FORMATS[item.category[0]][0] for item in items]
        every = range(len(items))
        self.global_pool = _Pool(every, world.item_weights)
        catalogue = [i for i in every if self.released[i] <= world.start_time] or [0]
        self.catalogue_pool = _Pool(catalogue, [world.item_weights[i] for i in catalogue])
        by_topic: dict[str, list[int]] = {}
        by_creator: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            for topic in item.genres:
                by_topic.setdefault(topic, []).append(i)
            by_creator.setdefault(item.creator[0], []).append(i)
        self.topic_pools = {t: _Pool(ix, [world.item_weights[i] for i in ix]) for t, ix in by_topic.items()}
        self.creator_pools = {c: _Pool(ix, [world.item_weights[i] for i in ix]) for c, ix in by_creator.items()}
        self.user_pool = _Pool(range(len(world.users)), [t.activity for t in world.truths])
        self.affinity = [(list(t.topic_affinity), list(t.topic_affinity.values())) for t in world.truths]
        self.favourites = [set(t.favourite_creators) for t in world.truths]
        self.true_topics = [set(t.topic_affinity) for t in world.truths]
        self.devices = [_weighted(self.rng, DEVICES) for _ in world.users]
        self.sessions = itertools.count(1)
        self.feeds = itertools.count(1)

    def promotion(self, t: float) -> tuple[float, str | None]:
        """The traffic boost at time t, and the promoted creator (bursts decay exponentially)."""
        for start, creator in self.world.promotions:
            if start <= t < start + PROMOTION_HOURS * 3600:
                return PROMOTION_PEAK * 0.5 ** ((t - start) / 3600 / PROMOTION_HALF_LIFE_H), creator
        return 0.0, None

    def _available(self, pool: _Pool, t: float) -> int:
        for _ in range(8):
            index = pool.pick(self.rng)
            if self.released[index] <= t:
                return index
        return self.catalogue_pool.pick(self.rng)

    def pick(self, user: int, t: float, promoted: str | None) -> int:
        """The item a user goes for: the planted preferences at work."""
        rng = self.rng
        if promoted is not None and rng.random() < P_PROMOTED_PICK:
            return self._available(self.creator_pools.get(promoted) or self.global_pool, t)
        draw = rng.random()
        if draw < P_FAVOURITE_CREATOR:
            creator = rng.choice(sorted(self.favourites[user]))
            pool = self.creator_pools.get(creator) or self.global_pool
        elif draw < P_FAVOURITE_CREATOR + P_AFFINITY_TOPIC:
            topics, weights = self.affinity[user]
            pool = self.topic_pools.get(rng.choices(topics, weights=weights)[0]) or self.global_pool
        else:
            pool = self.global_pool
        return self._available(pool, t)

    def preferred(self, user: int, index: int) -> bool:
        item = self.world.items[index]
        return bool(self.true_topics[user].intersection(item.genres)) or item.creator[0] in self.favourites[user]

    def session(self, start: float, promoted: str | None) -> list[list[str]]:
        """One session's events as interaction rows (cells by schema column)."""
        rng, world = self.rng, self.world
        user = self.user_pool.pick(rng)
        user_id = world.users[user].user_id
        device = self.devices[user] if rng.random() < 0.9 else _weighted(rng, DEVICES)
        geo = world.users[user].geo[0] if rng.random() < 0.95 else _weighted(rng, GEOS)
        session_id = f"s{world.seed}-{next(self.sessions):09d}"
        rows: list[list[str]] = []
        t = start

        def emit(event_type: str, index: int, value: float | None = None, shown: str = "", feed: str = "") -> None:
            rows.append(_row(user_id, self.ids[index], int(t), event_type, value, shown, feed, session_id, device, geo))

        for _ in range(1 + min(int(rng.expovariate(0.5)), 12)):
            target = self.pick(user, t, promoted)
            tier = 0 if self.preferred(user, target) else 1  # index into the (preferred, not) probabilities
            if rng.random() < P_FEED_STEP:
                shown = dict.fromkeys([target] + [self._available(self.global_pool, t) for _ in range(FEED_SIZE - 1)])
                order = list(shown)
                rng.shuffle(order)
                feed = f"r{world.seed}-{next(self.feeds):09d}"
                emit(CLICK, target, shown="|".join(self.ids[i] for i in order), feed=feed)
                if rng.random() < 0.6:
                    t += rng.uniform(3, 30)
                    emit(VIEW, target)
            else:
                emit(VIEW, target)
            item = world.items[target]
            t += rng.uniform(5, 40)
            if item.is_paid:
                if rng.random() >= P_PURCHASE[tier]:
                    continue
                emit(PURCHASE, target, item.price)
                t += rng.uniform(5, 30)
            if rng.random() < P_PLAY[tier]:
                played = round(item.duration * rng.betavariate(*PLAYED_SHARE[tier]))
                emit(self.play[target], target, float(played))
                t += played
            if rng.random() < P_LIKE[tier]:
                emit(LIKE, target)
            t += rng.uniform(10, 120)
        return rows


_COLUMNS = INTERACTIONS.columns
_TIMESTAMP = _COLUMNS.index("TIMESTAMP")
_EVENT_TYPE = _COLUMNS.index("EVENT_TYPE")
_EVENT_VALUE = INTERACTIONS.spec("EVENT_VALUE")


def _row(user_id: str, item_id: str, timestamp: int, event_type: str, value: float | None, shown: str, feed: str,
         session_id: str, device: str, geo: str) -> list[str]:
    cells = {
        "USER_ID": user_id, "ITEM_ID": item_id, "TIMESTAMP": str(timestamp), "EVENT_TYPE": event_type,
        "EVENT_VALUE": _EVENT_VALUE.format(value), "IMPRESSION": shown, "RECOMMENDATION_ID": feed,
        "SESSION_ID": session_id, "DEVICE": device, "GEO": geo,
    }
    return [cells[column] for column in _COLUMNS]


def _traffic(t: float) -> float:
    """Relative traffic at time t: daily cycle peaking at 20:00 UTC, weekends 25% busier."""
    hour = (t % DAY_S) / 3600
    weekday = (int(t // DAY_S) + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    return (1 + 0.6 * math.cos(2 * math.pi * (hour - 20) / 24)) * (1.25 if weekday >= 5 else 1.0)


@dataclass(frozen=True)
class GenerationSummary:
    world: SyntheticWorld
    out_dir: Path
    users: int
    items: int
    interactions: int
    event_types: dict[str, int]


def generate(out_dir: str | Path, n_users: int = 2_000, n_items: int = 1_000, n_events: int = 200_000, days: int = 60,
             seed: int = 0, end_time: int = DEFAULT_END_TIME) -> GenerationSummary:
    """Write users.csv, items.csv and interactions.csv (exactly `n_events` rows, over `days` days ending at
    `end_time`) to `out_dir`; streaming, so n_events can be 10M and more."""
    if n_events < 1:
        raise ValueError("n_events must be positive")
    world = build_world(n_users, n_items, seed, days=days, end_time=end_time)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with DatasetCsvWriter(out / USERS.file_name, USERS) as users:
        users.write_all(world.users)
    with DatasetCsvWriter(out / ITEMS.file_name, ITEMS) as items:
        items.write_all(world.items)

    behaviour = _Behaviour(world)
    slots = range(world.start_time, world.end_time, SLOT_S)
    weights = [_traffic(s + SLOT_S / 2) * (1 + behaviour.promotion(s + SLOT_S / 2)[0]) for s in slots]
    total = sum(weights)
    event_types: Counter[str] = Counter()
    with open(out / INTERACTIONS.file_name, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(_COLUMNS)
        done, cumulative = 0, 0.0
        for slot, weight in zip(slots, weights):
            cumulative += weight
            target = round(n_events * cumulative / total) - done
            boost, creator = behaviour.promotion(slot + SLOT_S / 2)
            rows: list[list[str]] = []
            while len(rows) < target:
                promoted = creator if behaviour.rng.random() < boost / (1 + boost) else None
                rows += behaviour.session(slot + behaviour.rng.random() * SLOT_S, promoted)
            del rows[target:]
            rows.sort(key=lambda row: int(row[_TIMESTAMP]))
            for row in rows:
                row[_TIMESTAMP] = str(min(int(row[_TIMESTAMP]), world.end_time - 1))
                event_types[row[_EVENT_TYPE]] += 1
            writer.writerows(rows)
            done += target
    return GenerationSummary(world, out, len(world.users), len(world.items), done, dict(event_types))


def write_training_channels(root: str | Path, *, n_users: int, n_items: int, n_events: int, days: int = 14,
                            seed: int = 0) -> float:
    """A SageMaker training job's /opt/ml input layout under `root`, from synthetic data: the interactions channel
    (the CSVs), and train / validation Parquet splits shaped as recsys.batch.training_set writes them (the items
    each user interacted with after the cutoff, 3 sampled negatives each, two batch feature columns). Returns the
    cutoff (the 70% time quantile)."""
    import numpy as np
    import pandas as pd

    root = Path(root)
    interactions_dir = root / "input/data/interactions"
    generate(interactions_dir, n_users=n_users, n_items=n_items, n_events=n_events, days=days, seed=seed)
    frame = pd.read_csv(interactions_dir / "interactions.csv", dtype={"USER_ID": str, "ITEM_ID": str})
    cutoff = float(np.quantile(frame["TIMESTAMP"], 0.7))
    positives = frame[frame["TIMESTAMP"] >= cutoff].groupby(["USER_ID", "ITEM_ID"])["EVENT_TYPE"].agg(set)
    rng = np.random.default_rng(0)
    items = frame["ITEM_ID"].unique()
    rows = []
    for (user, item), events in positives.items():
        rows.append({"user_id": user, "item_id": item, "label_click": int("click" in events),
                     "label_play": int(bool({"watch", "listen"} & events)),
                     "label_purchase": int("purchase" in events), "row_source": "interaction"})
        for negative in rng.choice(items, 3, replace=False):
            rows.append({"user_id": user, "item_id": negative, "label_click": 0, "label_play": 0,
                         "label_purchase": 0, "row_source": "sampled"})
    training = pd.DataFrame(rows).drop_duplicates(["user_id", "item_id"])
    training["item_click_count"] = rng.integers(0, 30, len(training))
    training["user_click_count_7d"] = rng.integers(0, 10, len(training)).astype(float)
    is_valid = training["user_id"].isin(set(training["user_id"].unique()[::4]))
    for name, part in (("train", training[~is_valid]), ("validation", training[is_valid])):
        (root / f"input/data/{name}").mkdir(parents=True, exist_ok=True)
        part.to_parquet(root / f"input/data/{name}/part-00000.parquet", index=False)
    return cutoff
