"""Showcase health (KION): does each user's home page change from day to day as it should?

The recommend API stores, once per user per day, a snapshot of the showcase it
served: a fingerprint of the whole page and the visible item ids per shelf
(`SnapshotStore`, in Redis/MemoryDB, kept 8 days). A daily job compares today's
snapshots with yesterday's and last week's:

- unchanged share: users whose showcase is identical to yesterday's, among users
  with both; a daily rebuild that silently failed shows up here first;
- daily novelty: share of today's visible items that were not visible yesterday;
- weekly shelf change: share of shelves (present both days) whose item set differs
  from 7 days ago.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

from recsys.config import ShowcaseHealthConfig
from recsys.monitoring import html, storage
from recsys.monitoring.metrics import Metric, MetricsPublisher

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EXAMPLES = 20


@dataclass(frozen=True)
class Snapshot:
    """The visible part of one user's showcase: shelves in page order, each with its visible item ids."""

    shelves: tuple[tuple[str, tuple[str, ...]], ...]
    fingerprint: str

    @classmethod
    def of(cls, shelves: Mapping[str, Sequence[str]] | Sequence[tuple[str, Sequence[str]]],
           fingerprint: str | None = None) -> "Snapshot":
        """A snapshot of shelves (id -> visible items, in page order); the fingerprint defaults to their hash."""
        pairs = list(shelves.items()) if isinstance(shelves, Mapping) else list(shelves)
        ordered = tuple((str(shelf), tuple(str(i) for i in items)) for shelf, items in pairs)
        if fingerprint is None:
            canonical = json.dumps([[shelf, list(items)] for shelf, items in ordered], separators=(",", ":"))
            fingerprint = hashlib.sha256(canonical.encode()).hexdigest()
        return cls(ordered, fingerprint)

    def visible_items(self) -> set[str]:
        return {item for _, items in self.shelves for item in items}

    def shelf_sets(self) -> dict[str, frozenset[str]]:
        return {shelf: frozenset(items) for shelf, items in self.shelves}

    def to_json(self) -> str:
        return json.dumps({"fingerprint": self.fingerprint, "shelves": [[s, list(i)] for s, i in self.shelves]},
                          separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> "Snapshot":
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("fingerprint"), str):
            raise ValueError("snapshot: fingerprint must be a string")
        shelves = data.get("shelves")
        if not isinstance(shelves, list) or not all(
            isinstance(s, list) and len(s) == 2 and isinstance(s[0], str) and isinstance(s[1], list) for s in shelves
        ):
            raise ValueError("snapshot: shelves must be a list of [shelf_id, [item ids]]")
        return cls.of([(s, items) for s, items in shelves], data["fingerprint"])


def _day(value: date | str) -> str:
    text = value.isoformat() if isinstance(value, date) else str(value)
    if not _DATE.match(text):
        raise ValueError(f"date: {value!r} is not YYYY-MM-DD")
    return text


class SnapshotStore:
    """Per-user daily showcase snapshots in Redis: one key per user and day, and a per-day set of users.

    The set lets the daily job walk one day's users without scanning the keyspace.
    Both expire after `ttl_days`, enough for the week-ago comparison.
    """

    def __init__(self, redis: Any, prefix: str, ttl_days: int = 8) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_days * 86400

    def key(self, user_id: str, day: date | str) -> str:
        return f"{self.prefix}:showcase:{_day(day)}:{user_id}"

    def users_key(self, day: date | str) -> str:
        return f"{self.prefix}:showcase-users:{_day(day)}"

    def put(self, user_id: str, day: date | str, snapshot: Snapshot) -> None:
        if not user_id:
            raise ValueError("user_id: required non-empty string")
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.key(user_id, day), snapshot.to_json(), ex=self.ttl_s)
        pipe.sadd(self.users_key(day), user_id)
        pipe.expire(self.users_key(day), self.ttl_s)
        pipe.execute()

    def get(self, user_id: str, day: date | str) -> Snapshot | None:
        raw = self.redis.get(self.key(user_id, day))
        return None if raw is None else Snapshot.from_json(raw)

    def get_many(self, user_ids: Sequence[str], day: date | str) -> dict[str, Snapshot]:
        pipe = self.redis.pipeline(transaction=False)
        for user_id in user_ids:
            pipe.get(self.key(user_id, day))
        return {u: Snapshot.from_json(raw) for u, raw in zip(user_ids, pipe.execute()) if raw is not None}

    def scan_users(self, day: date | str) -> Iterator[str]:
        for member in self.redis.sscan_iter(self.users_key(day), count=1000):
            yield member.decode() if isinstance(member, bytes) else member


@dataclass
class ShowcaseHealthReport:
    day: str
    users_today: int = 0
    users_compared: int = 0
    unchanged: int = 0
    visible_items: int = 0
    new_items: int = 0
    users_compared_week: int = 0
    shelves_compared: int = 0
    shelves_changed: int = 0
    unchanged_examples: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)

    @property
    def unchanged_share(self) -> float:
        return self.unchanged / self.users_compared if self.users_compared else 0.0

    @property
    def daily_novelty(self) -> float:
        return self.new_items / self.visible_items if self.visible_items else 0.0

    @property
    def weekly_shelf_change(self) -> float:
        return self.shelves_changed / self.shelves_compared if self.shelves_compared else 0.0

    def add(self, user_id: str, today: Snapshot, yesterday: Snapshot | None, week_ago: Snapshot | None) -> None:
        self.users_today += 1
        if yesterday is not None:
            self.users_compared += 1
            if today.fingerprint == yesterday.fingerprint:
                self.unchanged += 1
                if len(self.unchanged_examples) < _EXAMPLES:
                    self.unchanged_examples.append(user_id)
            visible = today.visible_items()
            self.visible_items += len(visible)
            self.new_items += len(visible - yesterday.visible_items())
        if week_ago is not None:
            self.users_compared_week += 1
            now, before = today.shelf_sets(), week_ago.shelf_sets()
            common = now.keys() & before.keys()
            self.shelves_compared += len(common)
            self.shelves_changed += sum(1 for shelf in common if now[shelf] != before[shelf])

    def judge(self, config: ShowcaseHealthConfig) -> None:
        self.alarms = []
        if self.users_compared and self.unchanged_share > config.unchanged_share_alarm:
            self.alarms.append(f"{self.unchanged_share:.1%} of showcases unchanged since yesterday "
                               f"(> {config.unchanged_share_alarm:.0%})")
        if self.visible_items and self.daily_novelty < config.daily_novelty_alarm_below:
            self.alarms.append(f"daily novelty {self.daily_novelty:.1%} < {config.daily_novelty_alarm_below:.0%}")

    def metrics(self) -> list[Metric]:
        out = [Metric("ShowcaseUsersCompared", self.users_compared)]
        if self.users_compared:
            out += [Metric("ShowcaseUnchangedShare", self.unchanged_share),
                    Metric("ShowcaseDailyNovelty", self.daily_novelty)]
        if self.shelves_compared:
            out.append(Metric("ShowcaseWeeklyShelfChange", self.weekly_shelf_change))
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"unchanged_share": self.unchanged_share, "daily_novelty": self.daily_novelty,
                               "weekly_shelf_change": self.weekly_shelf_change}

    def to_html(self) -> str:
        rows = [
            ["users with a showcase today", self.users_today],
            ["users compared with yesterday", self.users_compared],
            ["unchanged share", self.unchanged_share],
            ["daily novelty (visible zone)", self.daily_novelty],
            ["users compared with a week ago", self.users_compared_week],
            ["weekly shelf change", self.weekly_shelf_change],
        ]
        sections = [html.table(["figure", "value"], rows)]
        sections.append(html.paragraph("Alarms: " + ("; ".join(self.alarms) or "none")))
        if self.unchanged_examples:
            sections.append(html.paragraph("Unchanged, e.g.: " + ", ".join(self.unchanged_examples)))
        return html.page(f"Showcase health {self.day}", sections)


def showcase_health(
    day: date | str,
    today: Mapping[str, Snapshot],
    yesterday: Mapping[str, Snapshot],
    week_ago: Mapping[str, Snapshot],
    config: ShowcaseHealthConfig | None = None,
) -> ShowcaseHealthReport:
    """The health figures of one day's snapshots (user id -> snapshot) against the earlier days'."""
    report = ShowcaseHealthReport(_day(day))
    for user_id in sorted(today):
        report.add(user_id, today[user_id], yesterday.get(user_id), week_ago.get(user_id))
    report.judge(config or ShowcaseHealthConfig())
    return report


def _batches(items: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_showcase_health_job(
    store: SnapshotStore,
    day: date,
    config: ShowcaseHealthConfig,
    publisher: MetricsPublisher,
    *,
    report_uri: str | None = None,
    batch_size: int = 500,
) -> ShowcaseHealthReport:
    """The daily check: every user with a snapshot on `day`, against the day before and 7 days before."""
    report = ShowcaseHealthReport(_day(day))
    yesterday, week_ago = day - timedelta(days=1), day - timedelta(days=7)
    for users in _batches(store.scan_users(day), batch_size):
        today = store.get_many(users, day)
        before, last_week = store.get_many(users, yesterday), store.get_many(users, week_ago)
        for user_id in users:
            if user_id in today:
                report.add(user_id, today[user_id], before.get(user_id), last_week.get(user_id))
    report.judge(config)
    publisher.publish(report.metrics())
    if report_uri:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        storage.write_report(report_uri, "showcase", f"{report.day}-{stamp}", report.to_dict(), report.to_html())
    return report
