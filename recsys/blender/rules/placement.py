"""Shelf placement: the page's shelf order per platform from CMS layouts, then A/B placement overrides."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from recsys.blender.config import PlacementConfig, PlacementOverride
from recsys.blender.model import PLACEMENT, PLACEMENT_AB, RuleEvent


def _matches(override: PlacementOverride, platform: str, anonymous: bool, arm: str | None) -> bool:
    if override.arm != arm or (override.platforms and platform not in override.platforms):
        return False
    return override.audience == "any" or (override.audience == "anonymous") == anonymous


def place_shelves(
    available: Sequence[str],
    platform: str,
    anonymous: bool,
    arm: str | None,
    config: PlacementConfig,
) -> tuple[list[str], dict[str, str], list[RuleEvent]]:
    """The page's shelf ids top to bottom, the shelves an override moved (id -> rule), and the events.

    The layout for `platform` (else "default") decides which shelves show and in what order; without any
    layout the request order is kept. Overrides of the user's arm then move (or add) a shelf to its 1-based
    position, applied in ascending position so each lands where it asked when the page is long enough.
    """
    present: Collection[str] = set(available)
    layout = config.layouts.get(platform, config.layouts.get("default"))
    events: list[RuleEvent] = []
    if layout is None:
        order = list(dict.fromkeys(available))
    else:
        order = [shelf_id for shelf_id in layout if shelf_id in present]
        placed = set(order)
        events.extend(
            RuleEvent(PLACEMENT, "not_in_layout", shelf_id=s, detail=f"platform {platform}")
            for s in dict.fromkeys(available)
            if s not in placed
        )
    applied: dict[str, PlacementOverride] = {}  # the first matching override of a shelf wins
    for override in config.overrides:
        if override.shelf_id in present and _matches(override, platform, anonymous, arm):
            applied.setdefault(override.shelf_id, override)
    # Take every moved shelf out first, then insert by ascending position: a later insert never shifts an earlier one.
    order = [shelf_id for shelf_id in order if shelf_id not in applied]
    moved: dict[str, str] = {}
    for override in sorted(applied.values(), key=lambda o: o.position):
        order.insert(min(override.position - 1, len(order)), override.shelf_id)
        moved[override.shelf_id] = PLACEMENT_AB
        events.append(
            RuleEvent(
                PLACEMENT_AB, "moved", shelf_id=override.shelf_id, detail=f"position {override.position}, arm {arm}"
            )
        )
    return order, moved, events
