"""Editor boosts: a flagged item takes first place in any ML shelf that already contains it.

A boost switches itself off when the visible neighbours' CTR is much higher than the boosted item's
(the item then keeps its ML position), and caps limit boosts per shelf and per page: the excess keeps its
ML position and is reported so editors can re-check their flags.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from recsys.blender.config import BoostConfig
from recsys.blender.model import BOOST, BOOST_CAP, RuleEvent


def low_ctr_reason(
    item_id: str, neighbours: Sequence[str], ctr: Mapping[str, tuple[int, int]], config: BoostConfig
) -> str | None:
    """Why the boost is off, or None. Both sides need `min_impressions` (neighbours pooled) to be judged."""
    impressions, clicks = ctr.get(item_id, (0, 0))
    if impressions < config.min_impressions or impressions <= 0:
        return None
    around = [ctr.get(n, (0, 0)) for n in neighbours]
    pooled_impressions = sum(i for i, _ in around)
    if pooled_impressions < config.min_impressions or pooled_impressions <= 0:
        return None
    item_ctr = clicks / impressions
    neighbours_ctr = sum(c for _, c in around) / pooled_impressions
    if neighbours_ctr > config.ctr_ratio_threshold * item_ctr:
        return f"neighbours' CTR {neighbours_ctr:.4f} > {config.ctr_ratio_threshold:g} x boosted CTR {item_ctr:.4f}"
    return None


def choose_boosts(
    shelf_id: str,
    ranked: Sequence[str],
    flagged: Collection[str],
    ctr: Mapping[str, tuple[int, int]],
    config: BoostConfig,
    page_used: int,
) -> tuple[list[str], list[RuleEvent]]:
    """The boosted items of this shelf in ML order (the first goes to position 0), and the boost events."""
    if not config.enabled:
        return [], []
    candidates = [item for item in ranked if item in flagged]
    if not candidates:
        return [], []
    neighbours = [item for item in ranked if item not in flagged][: config.neighbour_window]
    winners: list[str] = []
    events: list[RuleEvent] = []
    for item in candidates:
        reason = low_ctr_reason(item, neighbours, ctr, config)
        if reason is not None:
            events.append(RuleEvent(BOOST, "disabled_low_ctr", item, shelf_id, reason))
        elif len(winners) >= config.max_per_shelf:
            events.append(
                RuleEvent(BOOST_CAP, "dropped_shelf_cap", item, shelf_id, f"cap {config.max_per_shelf} per shelf")
            )
        elif page_used + len(winners) >= config.max_per_page:
            events.append(
                RuleEvent(BOOST_CAP, "dropped_page_cap", item, shelf_id, f"cap {config.max_per_page} per page")
            )
        else:
            winners.append(item)
            events.append(RuleEvent(BOOST, "boosted", item, shelf_id))
    return winners, events
