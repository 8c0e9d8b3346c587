"""Named filters: create, list, describe, delete, and fetch compiled.

The registry validates names (Personalize's rule) and expressions (it compiles them) before storing, so a
stored filter always compiles. Storage sits behind `FilterStore`, four methods over `FilterRecord`s, so the
API can keep filters in memory, SSM Parameter Store, DynamoDB or Redis by writing one small adapter.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from recsys.filters.errors import FilterExistsError, FilterNotFoundError, InvalidFilterNameError
from recsys.filters.evaluate import Filter, compile_filter

NAME_RE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9\-_]*")
MAX_NAME_CHARS = 63


@dataclass(frozen=True)
class FilterRecord:
    name: str
    expression: str
    parameters: tuple[str, ...]
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "parameters": list(self.parameters)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FilterRecord:
        return cls(data["name"], data["expression"], tuple(data["parameters"]), float(data["created_at"]))


class FilterStore(Protocol):
    def add(self, record: FilterRecord) -> bool:
        """Stores the record unless its name is taken; False if it is."""

    def get(self, name: str) -> FilterRecord | None: ...

    def all(self) -> list[FilterRecord]: ...

    def remove(self, name: str) -> bool:
        """False if there was nothing to remove."""


class InMemoryFilterStore:
    def __init__(self) -> None:
        self._records: dict[str, FilterRecord] = {}

    def add(self, record: FilterRecord) -> bool:
        if record.name in self._records:
            return False
        self._records[record.name] = record
        return True

    def get(self, name: str) -> FilterRecord | None:
        return self._records.get(name)

    def all(self) -> list[FilterRecord]:
        return list(self._records.values())

    def remove(self, name: str) -> bool:
        return self._records.pop(name, None) is not None


def _is_valid_name(name: Any) -> bool:
    """Whether `name` could name a stored filter (others are not looked up: no store key can hold them)."""
    return isinstance(name, str) and len(name) <= MAX_NAME_CHARS and NAME_RE.fullmatch(name) is not None


def validate_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidFilterNameError("name: expected a non-empty string")
    if len(name) > MAX_NAME_CHARS:
        raise InvalidFilterNameError(f"name: expected at most {MAX_NAME_CHARS} characters, got {len(name)}")
    if not NAME_RE.fullmatch(name):
        raise InvalidFilterNameError(
            f"name: expected letters, digits, '-' and '_' starting with a letter or digit, got {name!r}"
        )
    return name


class FilterRegistry:
    def __init__(self, store: FilterStore | None = None, clock: Callable[[], float] = time.time) -> None:
        self.store: FilterStore = store if store is not None else InMemoryFilterStore()
        self._clock = clock

    def create(self, name: str, expression: str) -> FilterRecord:
        """Raises InvalidFilterNameError, FilterSyntaxError or FilterExistsError; stores nothing on error."""
        validate_name(name)
        compiled = compile_filter(expression)
        record = FilterRecord(name, expression, compiled.parameters, self._clock())
        if not self.store.add(record):
            raise FilterExistsError(f"filter {name!r} already exists")
        return record

    def describe(self, name: str) -> FilterRecord:
        record = self.store.get(name) if _is_valid_name(name) else None
        if record is None:
            raise FilterNotFoundError(f"no filter named {name!r}")
        return record

    def list(self) -> list[FilterRecord]:
        return sorted(self.store.all(), key=lambda record: record.name)

    def delete(self, name: str) -> None:
        if not (_is_valid_name(name) and self.store.remove(name)):
            raise FilterNotFoundError(f"no filter named {name!r}")

    def get(self, name: str) -> Filter:
        """The compiled filter (compilation is memoised per expression text)."""
        return compile_filter(self.describe(name).expression)
