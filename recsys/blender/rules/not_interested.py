""" "Not interested": an item shown N times in a row without a click is demoted, after M it is excluded, and it
returns after a cool-off.

The streak counts impressions after the last click, walking back from the newest; a gap of `cooloff_s`
(between two impressions, or between the newest and now) ends it. So an excluded item (no longer shown)
comes back once `cooloff_s` has passed since it was last shown, with a fresh streak.
"""

from __future__ import annotations

from recsys.blender.config import NotInterestedConfig
from recsys.blender.model import Exposure

OK = "ok"
DEMOTE = "demote"
EXCLUDE = "exclude"


def unclicked_streak(exposure: Exposure, now: float, cooloff_s: float) -> int:
    last_click = max(exposure.clicks, default=float("-inf"))
    shown = sorted(t for t in exposure.impressions if last_click < t <= now)
    if not shown or now - shown[-1] >= cooloff_s:
        return 0
    streak = 1
    for later, earlier in zip(reversed(shown), reversed(shown[:-1]), strict=False):
        if later - earlier >= cooloff_s:
            break
        streak += 1
    return streak


def exposure_verdict(exposure: Exposure, now: float, config: NotInterestedConfig) -> str:
    streak = unclicked_streak(exposure, now, config.cooloff_s)
    if streak >= config.exclude_after:
        return EXCLUDE
    return DEMOTE if streak >= config.demote_after else OK
