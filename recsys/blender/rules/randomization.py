"""Daily-stable randomness: every random choice is seeded by (user, day), so a return visit the same day sees
the same page, and tomorrow's page differs. Uses blake2b/crc32 (stable across processes), never hash()."""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from datetime import date
from hashlib import blake2b
from operator import attrgetter

from recsys.blender.model import Candidate

_score = attrgetter("score")


def _identity(candidate: Candidate) -> tuple[str, str, bool, float]:
    """Orders candidates completely, so the input order never decides anything."""
    published = candidate.published_at
    return candidate.item_id, candidate.channel, published is None, published or 0.0


def daily_seed(user_id: str, day: date) -> int:
    return int.from_bytes(blake2b(f"{user_id}\x1f{day.isoformat()}".encode(), digest_size=8).digest(), "big")


def rank(candidates: Sequence[Candidate], seed: int) -> list[Candidate]:
    """By score, highest first; equal scores in a seeded pseudo-random order (independent of input order)."""
    by_score = sorted(candidates, key=_score, reverse=True)
    if len(set(map(_score, by_score))) == len(by_score):
        return by_score  # no ties: nothing random to decide
    salt = seed & 0xFFFFFFFF
    crc32 = zlib.crc32
    return sorted(candidates, key=lambda c: (-c.score, crc32(c.item_id.encode(), salt), *_identity(c)))


def shuffle(candidates: Sequence[Candidate], seed: int, shelf_id: str) -> list[Candidate]:
    """A seeded permutation, for shelves configured as shuffled; starts from a canonical order."""
    ordered = sorted(candidates, key=_identity)
    random.Random(seed ^ zlib.crc32(shelf_id.encode())).shuffle(ordered)
    return ordered
