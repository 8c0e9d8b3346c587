"""Counting distinct values of a stream in bounded memory: exact up to a limit, then a HyperLogLog estimate.

The importer counts distinct users and items of a file that may hold hundreds of millions of rows. Below the limit
(100,000 by default, far above Personalize's minimum of 50) the count is exact, so the minimum check is exact; above
it, the values are folded into a HyperLogLog sketch (2^14 one-byte registers, about 0.8% standard error).
"""

from __future__ import annotations

import hashlib
import math

EXACT_LIMIT = 100_000
_PRECISION = 14
_REGISTERS = 1 << _PRECISION
_REST_BITS = 64 - _PRECISION
_ALPHA = 0.7213 / (1 + 1.079 / _REGISTERS)


class DistinctCounter:
    def __init__(self, exact_limit: int = EXACT_LIMIT) -> None:
        self.exact_limit = exact_limit
        self._seen: set[str] | None = set()
        self._registers = bytearray(_REGISTERS)

    @property
    def exact(self) -> bool:
        """True while the count is exact (fewer than `exact_limit` distinct values so far)."""
        return self._seen is not None

    def add(self, value: str) -> None:
        if self._seen is not None:
            self._seen.add(value)
            if len(self._seen) > self.exact_limit:
                for seen in self._seen:
                    self._fold(seen)
                self._seen = None
        else:
            self._fold(value)

    def _fold(self, value: str) -> None:
        hashed = int.from_bytes(hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")
        index = hashed >> _REST_BITS
        rest = hashed & ((1 << _REST_BITS) - 1)
        rank = _REST_BITS - rest.bit_length() + 1
        if rank > self._registers[index]:
            self._registers[index] = rank

    def count(self) -> int:
        if self._seen is not None:
            return len(self._seen)
        estimate = _ALPHA * _REGISTERS * _REGISTERS / sum(2.0 ** -r for r in self._registers)
        zeros = self._registers.count(0)
        if estimate <= 2.5 * _REGISTERS and zeros:
            estimate = _REGISTERS * math.log(_REGISTERS / zeros)
        return round(estimate)
