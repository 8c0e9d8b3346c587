"""What goes wrong in a dataset import, said so that the user can fix the file: where, which column, why."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from recsys.config import DatasetImportConfig


@dataclass(frozen=True)
class RowError:
    """One problem in one row. Row 1 is the header; column is None when the problem is the whole row."""

    file: str
    row: int
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file} row {self.row}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.reason}"


class ErrorLog:
    """The row errors of an import: the first `limit` are kept, all are counted (memory stays bounded)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.shown: list[RowError] = []
        self.total = 0
        self.per_file: Counter[str] = Counter()

    def add(self, error: RowError) -> None:
        self.total += 1
        self.per_file[error.file] += 1
        if len(self.shown) < self.limit:
            self.shown.append(error)

    def __bool__(self) -> bool:
        return self.total > 0


class DatasetImportError(Exception):
    """The import was refused and nothing was written. str() is the message for the user."""


class InvalidRowsError(DatasetImportError):
    """Rows broke the schema: the first errors are listed, all are counted."""

    def __init__(self, log: ErrorLog) -> None:
        self.errors = tuple(log.shown)
        self.total = log.total
        self.per_file = dict(log.per_file)
        files = ", ".join(f"{file}: {count:,}" for file, count in self.per_file.items())
        lines = [f"dataset import failed with {self.total:,} invalid value(s) ({files}); nothing was imported."]
        if self.total > len(self.errors):
            lines.append(f"The first {len(self.errors)}:")
        lines += [f"  {error}" for error in self.errors]
        if self.total > len(self.errors):
            lines.append(f"  ... and {self.total - len(self.errors):,} more")
        super().__init__("\n".join(lines))


class MinimumDataError(DatasetImportError):
    """Too little data to train on: the configured minimum (Personalize's, by default) is not met."""

    def __init__(self, *, users: int, items: int, interactions: int, config: DatasetImportConfig, source: str) -> None:
        self.users, self.items, self.interactions = users, items, interactions
        minimum = (config.min_users, config.min_items, config.min_interactions)
        shortfalls = [
            f"{label} {have:,} (minimum {need:,})"
            for label, have, need in zip(("distinct users", "distinct items", "interactions"),
                                         (users, items, interactions), minimum)
            if have < need
        ]
        defaults = DatasetImportConfig()
        is_personalize = minimum == (defaults.min_users, defaults.min_items, defaults.min_interactions)
        origin = "Amazon Personalize's minimum" if is_personalize else "the configured minimum"
        super().__init__(
            f"not enough data to train on in {source}: {'; '.join(shortfalls)}. A dataset needs at least "
            f"{minimum[0]:,} users, {minimum[1]:,} items and {minimum[2]:,} interactions ({origin}); "
            "nothing was imported."
        )
