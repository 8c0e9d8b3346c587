"""Franchise spacing and the paid-content quota of one shelf: which items show, in what order.

Spacing with coefficient c: two items of the same franchise have at least c other items between them
(c = 1: never adjacent; c = 2: two others between; 0: off). Items are placed in priority order; an item
that would come too close to its franchise waits for the first slot where it fits. When no arrangement
of the shelf's length exists, the shelf is shortened to the longest arrangement that does exist (still in
priority order as far as possible) and the items left out are reported.

The quota keeps the first `paid_limit` paid items in priority order and removes the others.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from recsys.blender.model import Candidate

_NEVER = -(10**9)


@dataclass(frozen=True)
class Arrangement:
    placed: list[Candidate]
    moved: frozenset[str]  # placed after an item that came later in priority: spacing pushed them down
    spacing_dropped: list[str]  # overtaken by later items and then cut off the shelf
    quota_removed: list[str]  # over the paid limit, where they would otherwise have been shown
    paid_shown: int


def spacing_holds(franchises: Sequence[str | None], coefficient: int) -> bool:
    last: dict[str, int] = {}
    for slot, franchise in enumerate(franchises):
        if franchise is not None:
            if slot - last.get(franchise, _NEVER) <= coefficient:
                return False
            last[franchise] = slot
    return True


def _greedy(franchises: Sequence[str | None], coefficient: int, length: int) -> list[int]:
    """First fit in priority order: each slot takes the earliest waiting-or-next item that keeps the spacing."""
    placed: list[int] = []
    last: dict[str, int] = {}
    waiting: list[int] = []
    upcoming, total = 0, len(franchises)
    while len(placed) < length:
        slot = len(placed)
        choice = -1
        for position, index in enumerate(waiting):
            franchise = franchises[index]
            if franchise is None or slot - last.get(franchise, _NEVER) > coefficient:
                choice = waiting.pop(position)
                break
        while choice < 0 and upcoming < total:
            index, upcoming = upcoming, upcoming + 1
            franchise = franchises[index]
            if franchise is None or slot - last.get(franchise, _NEVER) > coefficient:
                choice = index
            else:
                waiting.append(index)
        if choice < 0:
            break
        placed.append(choice)
        franchise = franchises[choice]
        if franchise is not None:
            last[franchise] = slot
    return placed


def max_fill(counts: Counter[str], free: int, last: dict[str, int], slot: int, coefficient: int, needed: int) -> int:
    """How many of the next `needed` slots can be filled, placing the franchise with most items left first.

    `counts` are franchise items left, `free` items without a franchise, `last` the slot each franchise was
    last placed at. Most-remaining-first is the classic optimal rule for spacing; tests check it against
    exhaustive search.
    """
    available: list[tuple[int, str]] = []
    cooling: list[tuple[int, str, int]] = []
    for franchise, left in counts.items():
        if left > 0:
            release = last.get(franchise, _NEVER) + coefficient + 1
            if release <= slot:
                available.append((-left, franchise))
            else:
                cooling.append((release, franchise, left))
    heapq.heapify(available)
    heapq.heapify(cooling)
    filled = 0
    while filled < needed:
        while cooling and cooling[0][0] <= slot:
            _release, franchise, left = heapq.heappop(cooling)
            heapq.heappush(available, (-left, franchise))
        if available:
            negative_left, franchise = heapq.heappop(available)
            if -negative_left > 1:
                heapq.heappush(cooling, (slot + coefficient + 1, franchise, -negative_left - 1))
        elif free > 0:
            free -= 1
        else:
            break
        filled += 1
        slot += 1
    return filled


def _exact(franchises: Sequence[str | None], coefficient: int, length: int, pinned: bool) -> list[int]:
    """The longest arrangement (up to `length`) keeping the spacing, preferring earlier items at each slot."""
    counts = Counter(f for f in franchises if f is not None)
    free = sum(1 for f in franchises if f is None)
    last: dict[str, int] = {}
    remaining = list(range(len(franchises)))
    placed: list[int] = []

    def take(index: int) -> None:
        nonlocal free
        franchise = franchises[index]
        if franchise is None:
            free -= 1
        else:
            counts[franchise] -= 1
            last[franchise] = len(placed)
        placed.append(index)
        remaining.remove(index)

    if pinned and remaining:
        take(0)
    target = len(placed) + max_fill(counts, free, last, len(placed), coefficient, length - len(placed))
    while len(placed) < target:
        slot = len(placed)
        still_needed = target - slot - 1
        for index in remaining:
            franchise = franchises[index]
            if franchise is None:
                free -= 1
                feasible = max_fill(counts, free, last, slot + 1, coefficient, still_needed) >= still_needed
                free += 1
            elif slot - last.get(franchise, _NEVER) <= coefficient:
                continue
            else:
                previous = last.get(franchise)
                counts[franchise] -= 1
                last[franchise] = slot
                feasible = max_fill(counts, free, last, slot + 1, coefficient, still_needed) >= still_needed
                counts[franchise] += 1
                if previous is None:
                    del last[franchise]
                else:
                    last[franchise] = previous
            if feasible:
                take(index)
                break
        else:  # unreachable while max_fill is exact; stop rather than loop
            break
    return placed


def arrange(
    priority: Sequence[Candidate],
    *,
    franchises: Sequence[str | None],
    paid: Sequence[bool],
    coefficient: int,
    max_items: int,
    paid_limit: int | None = None,
    pinned: bool = False,
) -> Arrangement:
    """Applies the paid quota, then the spacing, to a shelf's items in priority order (boosted first).

    `franchises` and `paid` are aligned with `priority`. A `pinned` first item (the shelf's boosted one) stays
    at position 0 whenever it survives the quota.
    """
    if paid_limit is None:
        origin = list(range(len(priority)))
        over_quota: list[int] = []
    else:
        origin, over_quota = [], []
        taken = 0
        for index, is_paid in enumerate(paid):
            if is_paid:
                if taken >= paid_limit:
                    over_quota.append(index)
                    continue
                taken += 1
            origin.append(index)
    kept_franchises = [franchises[i] for i in origin]  # `order` below indexes this list (and `origin`)

    length = min(max_items, len(origin))
    if coefficient == 0 or spacing_holds(kept_franchises[:length], coefficient):
        order = list(range(length))
    else:
        order = _greedy(kept_franchises, coefficient, length)
        if len(order) < length:
            order = _exact(kept_franchises, coefficient, length, pinned and bool(origin) and origin[0] == 0)

    moved: set[str] = set()
    furthest = -1
    for index in order:
        if index < furthest:
            moved.add(priority[origin[index]].item_id)
        else:
            furthest = index
    chosen = set(order)
    last_shown = origin[furthest] if furthest >= 0 else -1
    return Arrangement(
        placed=[priority[origin[i]] for i in order],
        moved=frozenset(moved),
        spacing_dropped=[priority[origin[i]].item_id for i in range(furthest) if i not in chosen],
        quota_removed=[priority[i].item_id for i in over_quota if i < last_shown],
        paid_shown=sum(1 for i in order if paid[origin[i]]),
    )
