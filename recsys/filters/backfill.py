"""Fill a filtered result back to k items. Personalize returns fewer than k when its filter removes items; we
keep pulling further candidates (e.g. the next page of a ranked list, or a popularity fallback) through the
same filter until k are found or the supply runs out."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from recsys.filters.evaluate import Filter


def fill_to_k(
    flt: Filter | None,
    candidates: Sequence[str],
    k: int,
    more: Iterable[str] = (),
    **context: Any,
) -> list[str]:
    """Up to k filtered items: first from `candidates` (in order), then from `more`, without duplicates.

    `context` is passed to `Filter.apply` (items, user_interactions, current_user, params, current_item).
    `more` is consumed lazily, in batches the size of the gap, so an endless generator is fine.
    """
    if k < 0:
        raise ValueError(f"k: expected a non-negative integer, got {k}")
    seen: set[str] = set()

    def fresh(batch: Iterable[str], limit: int | None = None) -> list[str]:
        unique: list[str] = []
        for item in batch:
            if item not in seen:
                seen.add(item)
                unique.append(item)
                if len(unique) == limit:
                    break
        return unique

    def keep(batch: list[str]) -> list[str]:
        return batch if flt is None else flt.apply(batch, **context)

    result = keep(fresh(candidates))[:k]
    supply = iter(more)
    while len(result) < k:
        gap = k - len(result)
        batch = fresh(supply, gap)
        if not batch:
            break
        result.extend(keep(batch)[:gap])
    return result
