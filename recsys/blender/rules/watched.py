"""Watched titles: fully watched ones leave the page, partly watched ones move to "continue watching".
Animated series are never removed for viewers younger than `adult_age`: children rewatch them."""

from __future__ import annotations

from collections.abc import Mapping

from recsys.blender.config import WatchedConfig
from recsys.blender.model import CONTINUE_WATCHING_KIND, Candidate, ItemInfo, WatchState

KEEP = "keep"
REMOVE = "remove"
CONTINUE = "continue"
KEEP_FOR_CHILD = "keep_for_child"


def is_child(user_age: int | None, config: WatchedConfig) -> bool:
    """Unknown age counts as adult: the exemption only applies to viewers known to be under age."""
    return user_age is not None and user_age < config.adult_age


def watch_verdict(state: WatchState | None, info: ItemInfo, child: bool, config: WatchedConfig) -> str:
    if state is None or state.progress < config.min_progress:
        return KEEP
    if child and info.animated_series:
        return KEEP_FOR_CHILD
    return REMOVE if state.progress >= config.watched_threshold else CONTINUE


def continue_watching(watch: Mapping[str, WatchState], config: WatchedConfig) -> list[Candidate]:
    """Every partly watched title, most recently watched first (item id breaks ties), up to the configured size."""
    partly = [
        (state.last_watched_at, item_id, state.progress)
        for item_id, state in watch.items()
        if config.min_progress <= state.progress < config.watched_threshold
    ]
    partly.sort(key=lambda row: (-row[0], row[1]))
    return [
        Candidate(item_id, progress, CONTINUE_WATCHING_KIND)
        for _at, item_id, progress in partly[: config.continue_watching_max]
    ]
