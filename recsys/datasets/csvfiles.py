"""Writing dataset CSV files from models: a header row, then one canonical row per record."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

from recsys.datasets.models import MODELS, Record
from recsys.datasets.schema import DatasetSchema


class DatasetCsvWriter:
    """A Personalize-format CSV file of one dataset, with the given columns (default: all, in schema order).

    Leaving out optional columns that a source never fills keeps files small (the importer accepts either); a record
    with a value in a left-out column is refused rather than silently cut.
    """

    def __init__(self, path: str | Path, schema: DatasetSchema, columns: Sequence[str] | None = None) -> None:
        self.schema = schema
        self.columns = tuple(columns) if columns is not None else schema.columns
        unknown = [c for c in self.columns if c not in schema.columns]
        missing = [c for c in schema.required_columns if c not in self.columns]
        if unknown or missing:
            raise ValueError(f"{schema.dataset} columns: unknown {unknown}, missing required {missing}")
        self._indexes = [schema.columns.index(c) for c in self.columns]
        self._left_out = [i for i, c in enumerate(schema.columns) if c not in self.columns]
        self._model = MODELS[schema.dataset]
        self._file = open(path, "w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._file, lineterminator="\n")
        self._writer.writerow(self.columns)
        self.rows = 0

    def write(self, record: Record) -> None:
        if not isinstance(record, self._model):
            raise TypeError(f"expected a {self._model.__name__}, got {type(record).__name__}")
        cells = record.cells()
        lost = [self.schema.columns[i] for i in self._left_out if cells[i]]
        if lost:
            raise ValueError(f"{self.schema.dataset}: the record has values in columns this file leaves out: {lost}")
        self._writer.writerow([cells[i] for i in self._indexes])
        self.rows += 1

    def write_all(self, records: Iterable[Record]) -> None:
        for record in records:
            self.write(record)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> DatasetCsvWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
