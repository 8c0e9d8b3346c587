"""Banner dedup: several banners promoting the same title are reduced to the earliest published one."""

from __future__ import annotations

import math
from collections.abc import Sequence

from recsys.blender.model import BANNER_DEDUP, Candidate, RuleEvent


def banner_winners(
    banner_shelves: Sequence[tuple[str, Sequence[Candidate]]],
) -> tuple[dict[str, tuple[str, int]], list[RuleEvent]]:
    """title -> (shelf id, index in that shelf's ranked list) of the banner kept, and events for the others.

    `banner_shelves` are (shelf id, ranked banners) in page order. The earliest `published_at` wins; a banner
    without a publication time counts as published last; ties go to the higher shelf, then the higher slot.
    """
    best: dict[str, tuple[tuple[float, int, int], str, int]] = {}
    entries: list[tuple[str, str, int]] = []
    for page_index, (shelf_id, banners) in enumerate(banner_shelves):
        for index, banner in enumerate(banners):
            published = math.inf if banner.published_at is None else banner.published_at
            key = (published, page_index, index)
            entries.append((banner.item_id, shelf_id, index))
            if banner.item_id not in best or key < best[banner.item_id][0]:
                best[banner.item_id] = (key, shelf_id, index)
    winners = {title: (shelf_id, index) for title, (_key, shelf_id, index) in best.items()}
    events = [
        RuleEvent(BANNER_DEDUP, "removed", title, shelf_id, f"kept the earlier banner on {winners[title][0]}")
        for title, shelf_id, index in entries
        if winners[title] != (shelf_id, index)
    ]
    return winners, events
