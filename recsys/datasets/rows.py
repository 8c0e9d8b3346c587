"""CSV rows under a schema: bind the header, then parse and check each row, reporting errors by row and column."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

from recsys.datasets.errors import ErrorLog, RowError
from recsys.datasets.models import MODELS, Record
from recsys.datasets.schema import DatasetSchema, FieldError, FieldSpec


class RowParser:
    """Parses rows whose cells follow `header`. Build it with `bind`, which checks the header."""

    def __init__(self, schema: DatasetSchema, bound: Sequence[tuple[int, FieldSpec]], width: int, file: str) -> None:
        self.schema = schema
        self.model: type[Record] = MODELS[schema.dataset]
        self.bound = tuple(bound)
        self.columns = tuple(spec.name for _, spec in bound)
        self.width = width
        self.file = file

    @classmethod
    def bind(cls, schema: DatasetSchema, header: Sequence[str], file: str) -> tuple[RowParser | None, list[RowError]]:
        """A parser for rows under `header`, or None and the header's errors (row 1).

        Columns match schema fields case-insensitively and may come in any order; optional columns may be left out.
        """
        errors: list[RowError] = []
        bound: list[tuple[int, FieldSpec]] = []
        seen: set[str] = set()
        for index, name in enumerate(header):
            try:
                spec = schema.spec(name)
            except KeyError:
                label = name if name.strip() else f"#{index + 1}"
                errors.append(RowError(file, 1, label, f"not a column of the {schema.dataset} schema "
                                                       f"(columns: {', '.join(schema.columns)})"))
                continue
            if spec.name in seen:
                errors.append(RowError(file, 1, spec.name, "duplicate column"))
                continue
            seen.add(spec.name)
            bound.append((index, spec))
        for spec in schema.fields:
            if spec.required and spec.name not in seen:
                errors.append(RowError(file, 1, spec.name, "required column is missing from the header"))
        if errors:
            return None, errors
        return cls(schema, bound, len(header), file), []

    def parse(self, cells: Sequence[str], row: int) -> tuple[Record | None, list[RowError]]:
        """The row's record, or None and every error in the row."""
        errors: list[RowError] = []
        if len(cells) != self.width:
            if len(cells) > self.width:
                return None, [RowError(self.file, row, None, f"{len(cells)} cells, but the header has {self.width}")]
            missing = [spec.name for index, spec in self.bound if index >= len(cells)]
            errors.append(RowError(self.file, row, missing[0], f"missing: the row has {len(cells)} cells, "
                                                               f"the header {self.width}"))
        values: dict[str, Any] = {}
        for index, spec in self.bound:
            if index >= len(cells):
                continue
            try:
                values[spec.attribute] = spec.parse(cells[index])
            except FieldError as exc:
                errors.append(RowError(self.file, row, spec.name, exc.reason))
        if errors:
            return None, errors
        return self.model.from_parsed(values), errors


def read_records(stream: TextIO, schema: DatasetSchema, file: str, log: ErrorLog) -> Iterator[Record]:
    """The valid records of a CSV stream with a header row, one at a time; every problem goes to `log`.

    Row numbers count CSV records, the header being row 1 (the line number, unless a quoted cell spans lines).
    Blank lines are skipped. A malformed line (say, a NUL byte) is reported and reading goes on.
    """
    reader = csv.reader(stream)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        log.add(RowError(file, 1, None, f"malformed CSV header: {exc}"))
        return
    if header is None:
        log.add(RowError(file, 1, None, "the file is empty: expected a header row"))
        return
    parser, header_errors = RowParser.bind(schema, header, file)
    for error in header_errors:
        log.add(error)
    if parser is None:
        return
    row = 1
    while True:
        row += 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            log.add(RowError(file, row, None, f"malformed CSV: {exc}"))
            continue
        if not cells:
            continue
        record, errors = parser.parse(cells, row)
        if record is None:
            for error in errors:
                log.add(error)
        else:
            yield record
