"""The blender: ranked shelves from the ML sources in, a showcase (page of shelves) out.

    showcase = blend(request, config)

Order of the rules, for the whole page:
  1. placement (CMS layout per platform, then the user's A/B placement arm);
  2. ranking by score, ties and configured shuffles seeded by (user, day);
  3. banner dedup (one banner per title, the earliest published).
Then shelf by shelf, top to bottom:
  4. watched titles removed, partly watched moved to continue watching (animated series stay for children);
  5. cross-shelf dedup (items in the top N of a shelf above are removed);
  6. "not interested" exclusion and demotion (with `resurface_excluded`, excluded items come after the demoted
     ones instead of going: the caller's last resort when it has nothing else to fill a shelf with);
  7. boosting (CTR auto-off, caps per shelf and per page);
  8. paid quota per shelf and per page, then franchise spacing, then the shelf's size.
A shelf left with fewer than `shelves.min_items` is hidden. Every change is a RuleEvent; every shown item
lists the rules that moved or kept it. Pure: the same request and config give the same showcase.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from hashlib import blake2b

from recsys.blender.config import DEFAULT_CONFIG, BlenderConfig
from recsys.blender.model import (
    BANNER,
    BOOST,
    CONTINUE_WATCHING,
    CONTINUE_WATCHING_KIND,
    CROSS_SHELF_DEDUP,
    DAILY_SHUFFLE,
    DEFAULT_ITEM,
    FRANCHISE_SPACING,
    ML,
    NOT_INTERESTED,
    PAID_QUOTA,
    SHELF_MIN_ITEMS,
    WATCHED,
    WATCHED_KEPT_FOR_CHILD,
    BlendRequest,
    Candidate,
    PlacedItem,
    RuleEvent,
    Shelf,
    ShelfInput,
    Showcase,
    summarize,
)
from recsys.blender.rules import not_interested, watched
from recsys.blender.rules.banners import banner_winners
from recsys.blender.rules.boosting import choose_boosts
from recsys.blender.rules.placement import place_shelves
from recsys.blender.rules.randomization import daily_seed, rank, shuffle
from recsys.blender.rules.spacing import Arrangement, arrange

_EPSILON = 1e-9


def _min_limit(*limits: int | None) -> int | None:
    present = [limit for limit in limits if limit is not None]
    return min(present) if present else None


@dataclass
class _PageState:
    claimed: dict[str, str]  # item -> the shelf whose top N claimed it
    boosts_used: int = 0
    paid_shown: int = 0
    items_shown: int = 0


class _Blender:
    def __init__(self, request: BlendRequest, config: BlenderConfig) -> None:
        self.request = request
        self.config = config
        self.seed = daily_seed(request.user_id, request.day)
        self.continue_id = config.watched.continue_watching_shelf
        self.inputs: dict[str, ShelfInput] = {}
        for shelf in request.shelves:  # the continue-watching shelf is built here, from the watch state
            if shelf.shelf_id != self.continue_id:
                self.inputs.setdefault(shelf.shelf_id, shelf)
        self.child = watched.is_child(request.user_age, config.watched)
        self.exposure_verdicts: dict[str, str] = {}
        self.boosts = request.boosts if isinstance(request.boosts, (set, frozenset)) else frozenset(request.boosts)

    def run(self) -> Showcase:
        request, config = self.request, self.config
        available = list(self.inputs)
        if config.watched.enabled:
            available.append(self.continue_id)
        order, shelf_rules, page_events = place_shelves(
            available, request.platform, request.anonymous, request.placement_arm, config.placement
        )
        ranked: dict[str, list[Candidate]] = {}
        for shelf_id in order:
            if shelf_id in self.inputs:
                candidates = self.inputs[shelf_id].items
                if shelf_id in config.shelves.shuffled:
                    ranked[shelf_id] = shuffle(candidates, self.seed, shelf_id)
                else:
                    ranked[shelf_id] = rank(candidates, self.seed)
        winners, banner_events = banner_winners(
            [(s, ranked[s]) for s in order if s in ranked and self.inputs[s].kind == BANNER]
        )
        page_events.extend(banner_events)

        # The page paid share is only known once the page is built: rebuild with a tighter count until it holds.
        # Each retry lowers the limit strictly (see README), so this ends.
        page_limit = config.quota.max_paid_per_page
        share = config.quota.max_paid_share_per_page
        while True:
            shelves, events, state = self.page(order, ranked, winners, shelf_rules, page_limit)
            if share is None or state.paid_shown <= share * state.items_shown + _EPSILON:
                break
            page_limit = math.floor(share * state.items_shown + _EPSILON)

        all_events = tuple(page_events + events)
        return Showcase(
            user_id=request.user_id,
            day=request.day,
            platform=request.platform,
            shelves=tuple(shelves),
            events=all_events,
            fingerprint=fingerprint(shelves, config),
            summary=summarize(all_events),
        )

    def page(
        self,
        order: Sequence[str],
        ranked: Mapping[str, list[Candidate]],
        winners: Mapping[str, tuple[str, int]],
        shelf_rules: Mapping[str, str],
        page_limit: int | None,
    ) -> tuple[list[Shelf], list[RuleEvent], _PageState]:
        state = _PageState(claimed={})
        shelves: list[Shelf] = []
        events: list[RuleEvent] = []
        for shelf_id in order:
            if shelf_id == self.continue_id:
                kind = CONTINUE_WATCHING_KIND
                items = self.continue_watching(state, events)
                boosted: list[str] = []
            else:
                kind = self.inputs[shelf_id].kind
                items, boosted = self.shelf(shelf_id, kind, ranked[shelf_id], winners, state, page_limit, events)
            if len(items) < self.config.shelves.min_items:
                events.append(RuleEvent(SHELF_MIN_ITEMS, "hidden", shelf_id=shelf_id, detail=f"{len(items)} items"))
                continue
            self.commit(shelf_id, kind, items, boosted, state)
            rules = (shelf_rules[shelf_id],) if shelf_id in shelf_rules else ()
            if shelf_id in self.config.shelves.shuffled:
                rules += (DAILY_SHUFFLE,)
            shelves.append(Shelf(shelf_id, kind, len(shelves), tuple(items), rules))
        return shelves, events, state

    def dedup_event(self, item_id: str, shelf_id: str, claimed: Mapping[str, str]) -> RuleEvent:
        return RuleEvent(
            CROSS_SHELF_DEDUP,
            "removed",
            item_id,
            shelf_id,
            f"in the top {self.config.dedup.top_n} of {claimed[item_id]}",
        )

    def continue_watching(self, state: _PageState, events: list[RuleEvent]) -> list[PlacedItem]:
        """Partly watched titles; exempt from boosts, quotas, spacing and "not interested" (the user chose them)."""
        dedup = self.config.dedup.top_n > 0 and CONTINUE_WATCHING_KIND not in self.config.dedup.exempt_kinds
        kept: list[Candidate] = []
        for candidate in watched.continue_watching(self.request.watch, self.config.watched):
            if dedup and candidate.item_id in state.claimed:
                events.append(self.dedup_event(candidate.item_id, self.continue_id, state.claimed))
            else:
                kept.append(candidate)
        return [PlacedItem(c.item_id, c.score, c.channel, i, (CONTINUE_WATCHING,)) for i, c in enumerate(kept)]

    def commit(
        self, shelf_id: str, kind: str, items: Sequence[PlacedItem], boosted: Sequence[str], state: _PageState
    ) -> None:
        if self.config.dedup.top_n > 0 and kind not in self.config.dedup.exempt_kinds:
            for item in items[: self.config.dedup.top_n]:
                state.claimed.setdefault(item.item_id, shelf_id)
        shown = {item.item_id for item in items}
        state.boosts_used += sum(1 for b in boosted if b in shown)
        if kind != CONTINUE_WATCHING_KIND:
            catalogue = self.request.items
            state.paid_shown += sum(1 for item in items if catalogue.get(item.item_id, DEFAULT_ITEM).paid)
        state.items_shown += len(items)

    def shelf(
        self,
        shelf_id: str,
        kind: str,
        ranked: Sequence[Candidate],
        winners: Mapping[str, tuple[str, int]],
        state: _PageState,
        page_limit: int | None,
        events: list[RuleEvent],
    ) -> tuple[list[PlacedItem], list[str]]:
        """The shelf's items after every rule, and the items boosted on it."""
        tags: dict[str, tuple[str, ...]] = {}
        eligible, demoted = self.screen(shelf_id, kind, ranked, winners, state, tags, events)
        boosted: list[str] = []
        if kind == ML and self.boosts:
            order = [c.item_id for c in eligible] + [c.item_id for c in demoted]
            boosted, boost_events = choose_boosts(
                shelf_id, order, self.boosts, self.request.ctr, self.config.boost, state.boosts_used
            )
            events.extend(boost_events)
        priority = eligible + demoted  # demoted: after every eligible item (resurfaced ones are demoted too)
        if boosted:
            chosen = set(boosted)
            by_id = {c.item_id: c for c in priority}
            priority = [by_id[b] for b in boosted] + [c for c in priority if c.item_id not in chosen]
            for b in boosted:
                tags[b] = tags.get(b, ()) + (BOOST,)

        arrangement = self.arrange(priority, bool(boosted), state, page_limit)
        events.extend(RuleEvent(PAID_QUOTA, "removed", i, shelf_id) for i in arrangement.quota_removed)
        events.extend(RuleEvent(FRANCHISE_SPACING, "dropped", i, shelf_id) for i in arrangement.spacing_dropped)
        placed = []
        for position, candidate in enumerate(arrangement.placed):
            rules = tags.get(candidate.item_id, ())
            if candidate.item_id in arrangement.moved:
                rules += (FRANCHISE_SPACING,)
            placed.append(PlacedItem(candidate.item_id, candidate.score, candidate.channel, position, rules))
        return placed, boosted

    def screen(
        self,
        shelf_id: str,
        kind: str,
        ranked: Sequence[Candidate],
        winners: Mapping[str, tuple[str, int]],
        state: _PageState,
        tags: dict[str, tuple[str, ...]],
        events: list[RuleEvent],
    ) -> tuple[list[Candidate], list[Candidate]]:
        """Banner dedup, watched, cross-shelf dedup and "not interested", item by item in ML order.

        Returns the eligible items and the demoted ones (in ML order; resurfaced excluded items last); records
        tags and events.
        """
        config = self.config
        dedup = config.dedup.top_n > 0 and kind not in config.dedup.exempt_kinds
        claimed = state.claimed
        watch = self.request.watch if config.watched.enabled else {}
        exposures = self.request.exposures if config.not_interested.enabled else {}
        append = events.append
        eligible: list[Candidate] = []
        demoted: list[Candidate] = []
        resurfaced: list[Candidate] = []
        seen: set[str] = set()
        for index, candidate in enumerate(ranked):
            item_id = candidate.item_id
            if kind == BANNER and winners.get(item_id) != (shelf_id, index):
                continue  # reported once by banner_winners
            if item_id in seen:
                continue
            seen.add(item_id)
            watch_state = watch.get(item_id)
            if watch_state is not None:
                verdict = watched.watch_verdict(
                    watch_state, self.request.items.get(item_id, DEFAULT_ITEM), self.child, config.watched
                )
                if verdict == watched.REMOVE:
                    append(RuleEvent(WATCHED, "removed", item_id, shelf_id, f"progress {watch_state.progress:.2f}"))
                    continue
                if verdict == watched.CONTINUE:
                    append(
                        RuleEvent(CONTINUE_WATCHING, "moved", item_id, shelf_id, f"progress {watch_state.progress:.2f}")
                    )
                    continue
                if verdict == watched.KEEP_FOR_CHILD:
                    tags[item_id] = (WATCHED_KEPT_FOR_CHILD,)
                    append(RuleEvent(WATCHED_KEPT_FOR_CHILD, "kept", item_id, shelf_id, f"age {self.request.user_age}"))
            if dedup and item_id in claimed:
                append(self.dedup_event(item_id, shelf_id, claimed))
                continue
            if item_id in exposures:
                verdict = self.exposure_verdict(item_id)
                if verdict == not_interested.EXCLUDE:
                    if self.request.resurface_excluded:
                        resurfaced.append(candidate)
                        tags[item_id] = tags.get(item_id, ()) + (NOT_INTERESTED,)
                        append(RuleEvent(NOT_INTERESTED, "resurfaced", item_id, shelf_id))
                    else:
                        append(RuleEvent(NOT_INTERESTED, "excluded", item_id, shelf_id))
                    continue
                if verdict == not_interested.DEMOTE:
                    append(RuleEvent(NOT_INTERESTED, "demoted", item_id, shelf_id))
                    tags[item_id] = tags.get(item_id, ()) + (NOT_INTERESTED,)
                    demoted.append(candidate)
                    continue
            eligible.append(candidate)
        return eligible, demoted + resurfaced

    def exposure_verdict(self, item_id: str) -> str:
        """Memoised: an item recurs across shelves, its history is judged once per page."""
        verdict = self.exposure_verdicts.get(item_id)
        if verdict is None:
            verdict = not_interested.exposure_verdict(
                self.request.exposures[item_id], self.request.now, self.config.not_interested
            )
            self.exposure_verdicts[item_id] = verdict
        return verdict

    def arrange(
        self, priority: list[Candidate], pinned: bool, state: _PageState, page_limit: int | None
    ) -> Arrangement:
        """Quota + spacing; the shelf's paid share is checked on what is shown and the count tightened until it holds.

        Each retry plans for the number of items actually shown, which is strictly fewer, so this ends.
        """
        quota = self.config.quota
        remaining_on_page = None if page_limit is None else max(page_limit - state.paid_shown, 0)
        count_limit = _min_limit(quota.max_paid_per_shelf, remaining_on_page)
        share = quota.max_paid_share_per_shelf
        infos = [self.request.items.get(c.item_id, DEFAULT_ITEM) for c in priority]
        franchises = [info.franchise for info in infos]
        paid = [info.paid for info in infos]
        target = min(self.config.shelves.max_items, len(priority))
        while True:
            limit = count_limit if share is None else _min_limit(count_limit, math.floor(share * target + _EPSILON))
            arrangement = arrange(
                priority,
                franchises=franchises,
                paid=paid,
                coefficient=self.config.spacing.coefficient,
                max_items=self.config.shelves.max_items,
                paid_limit=limit,
                pinned=pinned,
            )
            shown = len(arrangement.placed)
            if share is None or arrangement.paid_shown <= share * shown + _EPSILON:
                return arrangement
            target = shown


def fingerprint(shelves: Sequence[Shelf], config: BlenderConfig) -> str:
    """A stable digest of the visible zone (first shelves x first items): equal pages, equal fingerprints."""
    digest = blake2b(digest_size=16)
    for shelf in shelves[: config.fingerprint.visible_shelves]:
        digest.update(shelf.shelf_id.encode() + b"\x1e")
        for item in shelf.items[: config.fingerprint.visible_items]:
            digest.update(item.item_id.encode() + b"\x1f")
        digest.update(b"\x1d")
    return digest.hexdigest()


def blend(request: BlendRequest, config: BlenderConfig = DEFAULT_CONFIG) -> Showcase:
    return _Blender(request, config).run()
