"""Sticky, deterministic assignment of users to experiment arms (endpoint production variants).

A user's position in [0, 1) is a hash of (experiment, user id); the arms split [0, 1) in proportion to their
weights, in the configured order. The same user always lands in the same arm for the same experiment and weights,
on every host and process (no state, no clock); another experiment name reshuffles users independently.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SPACE = float(2**64)


def bucket(user_id: str, experiment: str) -> float:
    """The user's position in [0, 1) for `experiment`: the first 8 bytes of SHA-256, as a fraction."""
    digest = hashlib.sha256(f"{experiment}\x1f{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / HASH_SPACE


def assign_variant(user_id: str, experiment: str, weights: Sequence[tuple[str, float]]) -> str:
    """The arm of `user_id`: arms with weight 0 are never chosen; weights need not sum to 1."""
    total = sum(weight for _, weight in weights)
    if not weights or total <= 0 or any(weight < 0 for _, weight in weights):
        raise ValueError("weights: need at least one arm, weights >= 0 with a positive sum")
    point = bucket(user_id, experiment) * total
    edge = 0.0
    for variant, weight in weights:
        edge += weight
        if point < edge and weight > 0:
            return variant
    return next(variant for variant, weight in reversed(weights) if weight > 0)  # rounding at the top edge
