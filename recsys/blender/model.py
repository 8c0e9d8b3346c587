"""Inputs and outputs of the blender. Times are unix seconds (float), as everywhere in the platform."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import NamedTuple

# Rule names, as reported on items ("the rules that moved it") and in events.
PLACEMENT = "placement"
PLACEMENT_AB = "placement_ab"
BANNER_DEDUP = "banner_dedup"
WATCHED = "watched"
WATCHED_KEPT_FOR_CHILD = "watched_kept_under_age"
CONTINUE_WATCHING = "continue_watching"
NOT_INTERESTED = "not_interested"
CROSS_SHELF_DEDUP = "cross_shelf_dedup"
BOOST = "boost"
BOOST_CAP = "boost_cap"
PAID_QUOTA = "paid_quota"
FRANCHISE_SPACING = "franchise_spacing"
SHELF_MIN_ITEMS = "shelf_min_items"
DAILY_SHUFFLE = "daily_shuffle"

# Shelf kinds. Boosting applies to ML shelves only; the continue-watching shelf is built by the blender.
ML = "ml"
BANNER = "banner"
CONTINUE_WATCHING_KIND = "continue_watching"


@dataclass(frozen=True, slots=True)
class Candidate:
    """An item an ML source ranked for a shelf. Banners carry the title they promote as item_id."""

    item_id: str
    score: float
    channel: str = ""
    published_at: float | None = None  # banners: when the editor published it (banner dedup keeps the earliest)


@dataclass(frozen=True, slots=True)
class ShelfInput:
    shelf_id: str
    items: Sequence[Candidate]
    kind: str = ML


@dataclass(frozen=True, slots=True)
class ItemInfo:
    franchise: str | None = None
    paid: bool = False
    animated_series: bool = False


DEFAULT_ITEM = ItemInfo()


@dataclass(frozen=True, slots=True)
class WatchState:
    progress: float  # 0..1 of the title watched
    last_watched_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Exposure:
    """When the item was shown to the user and when the user clicked it."""

    impressions: Sequence[float] = ()
    clicks: Sequence[float] = ()


@dataclass(frozen=True)
class BlendRequest:
    user_id: str
    day: date  # the user's calendar day: seeds every random choice, so a return visit the same day sees the same page
    now: float
    platform: str
    shelves: Sequence[ShelfInput]
    items: Mapping[str, ItemInfo] = field(default_factory=dict)
    boosts: Collection[str] = frozenset()  # editor flags
    ctr: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # item -> (impressions, clicks)
    watch: Mapping[str, WatchState] = field(default_factory=dict)
    exposures: Mapping[str, Exposure] = field(default_factory=dict)
    anonymous: bool = False
    user_age: int | None = None
    placement_arm: str | None = (
        None  # the user's arm in the placement experiment (assigned upstream, deterministically)
    )
    # When the candidates cannot fill a shelf otherwise: items "not interested" excluded come last instead of
    # going (the caller sets it once it has no further candidates to offer, so a feed never runs dry).
    resurface_excluded: bool = False


class PlacedItem(NamedTuple):  # NamedTuple: a page creates hundreds of these and events, and they are cheap
    item_id: str
    score: float
    channel: str
    position: int  # 0-based within its shelf
    rules: tuple[str, ...] = ()  # rules that moved or kept it


@dataclass(frozen=True, slots=True)
class Shelf:
    shelf_id: str
    kind: str
    position: int  # 0-based on the page
    items: tuple[PlacedItem, ...]
    rules: tuple[str, ...] = ()


class RuleEvent(NamedTuple):
    rule: str
    action: str
    item_id: str | None = None
    shelf_id: str | None = None
    detail: str = ""


@dataclass(frozen=True)
class Showcase:
    user_id: str
    day: date
    platform: str
    shelves: tuple[Shelf, ...]
    events: tuple[RuleEvent, ...]
    fingerprint: str  # of the visible zone: equal fingerprints on consecutive days mean an unchanged showcase
    summary: Mapping[str, int] = field(default_factory=dict)  # "rule.action" -> count, for metrics/alerts

    def shelf(self, shelf_id: str) -> Shelf | None:
        return next((s for s in self.shelves if s.shelf_id == shelf_id), None)

    def item_ids(self, shelf_id: str) -> list[str]:
        found = self.shelf(shelf_id)
        return [] if found is None else [i.item_id for i in found.items]


def summarize(events: Sequence[RuleEvent]) -> dict[str, int]:
    return dict(Counter(f"{e.rule}.{e.action}" for e in events))
