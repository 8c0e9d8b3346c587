"""The three Personalize datasets as their Avro-like JSON schemas, and the rules a value must follow.

The JSON files in `schemas/` are the one source of truth: column names, types, which columns are required
(a non-null type), which hold several values separated by "|" (categorical strings, and the reserved IMPRESSION
whose values are item ids), and each field's documentation. The typed models (`recsys.datasets.models`), the CSV
parser and the README's field tables are all derived from them.

Rules beyond the Avro type come from Personalize's limits (ids and other strings at most 256 characters, categorical
values at most 1,000, textual fields at most 20,000) and from `RANGES` below, keyed by column name.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recsys.events import MAX_TIMESTAMP, MIN_TIMESTAMP
from recsys.inputs import TIME_RANGE_TEXT, bad_char, describe_char

SCHEMA_DIR = Path(__file__).with_name("schemas")
# Columns that events and API calls refer to by value: single-line ids (the others are free text).
IDENTIFIER_COLUMNS = frozenset({"USER_ID", "ITEM_ID", "EVENT_TYPE"})
NAMESPACE = "com.amazonaws.personalize.schema"
DATASET_NAMES = ("interactions", "users", "items")
MULTI_VALUE_SEPARATOR = "|"
# Personalize reserves IMPRESSION as a plain string whose values are item ids separated by "|".
RESERVED_LISTS = frozenset({"IMPRESSION"})
PRIMITIVE_TYPES = ("string", "int", "long", "float", "double", "boolean")
STRING_MAX_CHARS = 256
CATEGORICAL_MAX_CHARS = 1000
TEXTUAL_MAX_CHARS = 20_000
_INTEGER_BOUNDS = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_COLUMN_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
# Personalize's required fields of each dataset type.
_REQUIRED_FIELDS = {
    "interactions": {"USER_ID": "string", "ITEM_ID": "string", "TIMESTAMP": "long"},
    "users": {"USER_ID": "string"},
    "items": {"ITEM_ID": "string"},
}


@dataclass(frozen=True)
class Range:
    """Allowed numeric values: low <= value < high (either end open when None)."""

    low: float | None
    high: float | None
    meaning: str

    def __contains__(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value < self.high)


# Value rules beyond the type, by column name; a test checks that each name is a column of some schema.
RANGES: dict[str, Range] = {
    "TIMESTAMP": Range(MIN_TIMESTAMP, MAX_TIMESTAMP, f"unix seconds {TIME_RANGE_TEXT}"),
    "AGE": Range(0, 131, "years between 0 and 130"),
    "PRICE": Range(0, None, "a price >= 0"),
    "DURATION": Range(0, None, "seconds >= 0"),
}


class SchemaError(ValueError):
    """A schema file is malformed; the message names the file and the field."""


class FieldError(ValueError):
    """One value breaks its field's rule; `reason` says how (the caller knows the column)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _show(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")


@dataclass(frozen=True)
class FieldSpec:
    """One column of a dataset, as its schema declares it."""

    name: str
    type: str
    nullable: bool
    categorical: bool = False
    textual: bool = False
    doc: str = ""
    # Derived in __post_init__ (looked up per cell on the import's hot path, so computed once).
    attribute: str = field(init=False, repr=False, compare=False)
    is_list: bool = field(init=False, repr=False, compare=False)
    empty: Any = field(init=False, repr=False, compare=False)
    max_chars: int = field(init=False, repr=False, compare=False)
    range: Range | None = field(init=False, repr=False, compare=False)
    _parse_present: Callable[[str], Any] = field(init=False, repr=False, compare=False)
    _format: Callable[[Any], str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        is_list = self.type == "string" and (self.categorical or self.name in RESERVED_LISTS)
        derived = {
            # The model attribute: the column name in lower case (USER_ID -> user_id).
            "attribute": self.name.lower(),
            # Several values separated by "|": categorical strings and IMPRESSION.
            "is_list": is_list,
            # The value of an empty cell of a nullable column.
            "empty": () if is_list else None,
            # Longest allowed string (each value, for lists).
            "max_chars": TEXTUAL_MAX_CHARS if self.textual else CATEGORICAL_MAX_CHARS if self.categorical
            else STRING_MAX_CHARS,
            "range": RANGES.get(self.name),
            # A non-blank cell to its checked value.
            "_parse_present": {
                "string": self._split if is_list else self._text,
                "int": self._integer,
                "long": self._integer,
                "float": self._decimal,
                "double": self._decimal,
                "boolean": self._boolean,
            }[self.type],
            "_format": {
                "string": MULTI_VALUE_SEPARATOR.join if is_list else str,
                "int": str,
                "long": str,
                "float": _format_float,
                "double": _format_float,
                "boolean": _format_boolean,
            }[self.type],
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @property
    def required(self) -> bool:
        return not self.nullable

    @property
    def python_type(self) -> Any:
        types = {"string": str, "int": int, "long": int, "float": float, "double": float, "boolean": bool}
        base: Any = types[self.type]
        if self.is_list:
            return tuple[str, ...]
        return base | None if self.nullable else base

    @property
    def type_label(self) -> str:
        """How the README names the type: `string (categorical, |-separated)`, `long`, ..."""
        notes = [n for n, on in (("categorical", self.categorical), ("textual", self.textual)) if on]
        if self.is_list:
            notes.append("|-separated")
        return self.type + (f" ({', '.join(notes)})" if notes else "")

    # --- CSV text to value ---------------------------------------------------------------------------------

    def parse(self, text: str) -> Any:
        """The value of a CSV cell; an empty cell is None (or () for lists). Raises FieldError."""
        if not text or text.isspace():
            if self.nullable:
                return self.empty
            raise FieldError("required value is empty")
        return self._parse_present(text)

    def _split(self, text: str) -> tuple[str, ...]:
        return self._texts(text.split(MULTI_VALUE_SEPARATOR))

    def _integer(self, text: str) -> int:
        stripped = text.strip()
        if not _INTEGER.fullmatch(stripped):
            raise FieldError(f"not an integer: {_show(text)}")
        return self._number(int(stripped))

    def _decimal(self, text: str) -> float:
        stripped = text.strip()
        if not _DECIMAL.fullmatch(stripped):
            raise FieldError(f"not a number: {_show(text)}")
        return self._number(float(stripped))

    @staticmethod
    def _boolean(text: str) -> bool:
        lowered = text.strip().lower()
        if lowered not in ("true", "false"):
            raise FieldError(f"not a boolean (true or false): {_show(text)}")
        return lowered == "true"

    # --- the rules, on values of the right Python type ------------------------------------------------------

    def _text(self, text: str) -> str:
        if len(text) > self.max_chars:
            raise FieldError(f"longer than {self.max_chars} characters")
        # The platform's rule for ids and free text (recsys.inputs), as the APIs apply it to the same columns.
        index = bad_char(text, free_text=self.name not in IDENTIFIER_COLUMNS)
        if index is not None:
            if "\udc80" <= text[index] <= "\udcff":  # a byte the CSV reader could not decode (surrogateescape)
                raise FieldError("not valid UTF-8")
            raise FieldError(f"contains {describe_char(text[index])}, at character {index}")
        return text

    def _texts(self, texts: Iterable[str]) -> tuple[str, ...]:
        checked = tuple(texts)
        for text in checked:
            if not text or text.isspace():
                raise FieldError(f"empty value in a {MULTI_VALUE_SEPARATOR!r}-separated list")
            self._text(text)
        return checked

    def _number(self, value: Any) -> Any:
        if self.type in _INTEGER_BOUNDS:
            low, high = _INTEGER_BOUNDS[self.type]
            if not low <= value <= high:
                raise FieldError(f"{value} is out of range for {self.type}")
        elif not math.isfinite(value):
            raise FieldError(f"not a finite number: {value!r}")
        if self.range is not None and value not in self.range:
            hint = " (milliseconds? use seconds)" if self.name == "TIMESTAMP" and value >= 1e12 else ""
            raise FieldError(f"{value!r} is out of range: expected {self.range.meaning}{hint}")
        return value

    # --- Python value to value -----------------------------------------------------------------------------

    def check(self, value: Any) -> Any:
        """`value` checked and normalized (a list to a tuple, an int to a float for float fields). Raises FieldError."""
        blank = isinstance(value, str) and (not value or value.isspace())
        if value is None or blank or (self.is_list and isinstance(value, (tuple, list)) and not value):
            if self.nullable:
                return self.empty
            raise FieldError("required value is missing")
        if self.is_list:
            if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) for v in value):
                raise FieldError(f"must be a tuple of strings, got {type(value).__name__}")
            if any(MULTI_VALUE_SEPARATOR in v for v in value):
                raise FieldError(f"a value contains the separator {MULTI_VALUE_SEPARATOR!r}")
            return self._texts(value)
        if self.type == "string":
            if not isinstance(value, str):
                raise FieldError(f"must be a string, got {type(value).__name__}")
            return self._text(value)
        if self.type == "boolean":
            if not isinstance(value, bool):
                raise FieldError(f"must be a boolean, got {type(value).__name__}")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FieldError(f"must be a number, got {type(value).__name__}")
        if self.type in _INTEGER_BOUNDS:
            if not isinstance(value, int):
                raise FieldError(f"must be an integer, got {value!r}")
            return self._number(value)
        return self._number(float(value))

    # --- value to CSV text ---------------------------------------------------------------------------------

    def format(self, value: Any) -> str:
        """The canonical CSV text of a checked value ("" for empty)."""
        return "" if value is None else self._format(value)


def _format_float(value: float) -> str:
    return repr(float(value))


def _format_boolean(value: bool) -> str:
    return "true" if value else "false"


@dataclass(frozen=True)
class DatasetSchema:
    """A dataset's schema: its name, its fields in order, and the JSON it was read from."""

    dataset: str
    name: str
    doc: str
    fields: tuple[FieldSpec, ...]
    source: dict[str, Any] = field(repr=False, compare=False)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.fields)

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(spec.name for spec in self.fields if spec.required)

    @property
    def file_name(self) -> str:
        return f"{self.dataset}.csv"

    def spec(self, column: str) -> FieldSpec:
        """The field of a column name, matched case-insensitively. Raises KeyError."""
        wanted = column.strip().upper()
        for spec in self.fields:
            if spec.name == wanted:
                return spec
        raise KeyError(column)

    def to_json(self) -> str:
        """The schema as Personalize's CreateSchema takes it."""
        return json.dumps(self.source, indent=2)


def _field_spec(raw: Any, where: str) -> FieldSpec:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise SchemaError(f"{where}: a field must be an object with a name")
    name = raw["name"]
    where = f"{where}, field {name}"
    if not _COLUMN_NAME.fullmatch(name):
        raise SchemaError(f"{where}: names are upper-case letters, digits and _")
    declared = raw.get("type")
    nullable = isinstance(declared, list)
    if nullable:
        if len(declared) != 2 or "null" not in declared:
            raise SchemaError(f"{where}: a union type must be [\"null\", <type>]")
        (declared,) = [t for t in declared if t != "null"]
    if declared not in PRIMITIVE_TYPES:
        raise SchemaError(f"{where}: type {declared!r} is not one of {', '.join(PRIMITIVE_TYPES)}")
    categorical, textual = bool(raw.get("categorical", False)), bool(raw.get("textual", False))
    if (categorical or textual) and declared != "string":
        raise SchemaError(f"{where}: only string fields can be categorical or textual")
    if categorical and textual:
        raise SchemaError(f"{where}: a field is categorical or textual, not both")
    return FieldSpec(name, declared, nullable, categorical, textual, str(raw.get("doc", "")))


def parse_schema(source: dict[str, Any], dataset: str, where: str = "schema") -> DatasetSchema:
    """A DatasetSchema from the JSON object of a Personalize schema. Raises SchemaError naming what is wrong."""
    if dataset not in DATASET_NAMES:
        raise SchemaError(f"{where}: unknown dataset {dataset!r}: expected one of {', '.join(DATASET_NAMES)}")
    if source.get("type") != "record" or source.get("namespace") != NAMESPACE:
        raise SchemaError(f"{where}: expected a record in namespace {NAMESPACE}")
    if source.get("name") != dataset.capitalize():
        raise SchemaError(f"{where}: the record name must be {dataset.capitalize()}")
    raw_fields = source.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        raise SchemaError(f"{where}: fields must be a non-empty list")
    fields = tuple(_field_spec(raw, where) for raw in raw_fields)
    names = [spec.name for spec in fields]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SchemaError(f"{where}: duplicate fields {', '.join(duplicates)}")
    for name, declared in _REQUIRED_FIELDS[dataset].items():
        spec = next((s for s in fields if s.name == name), None)
        if spec is None or spec.type != declared or spec.nullable:
            raise SchemaError(f"{where}: Personalize requires the field {name} of type {declared} (not null)")
    return DatasetSchema(dataset, source["name"], str(source.get("doc", "")), fields, source)


def load_schema(dataset: str, directory: Path = SCHEMA_DIR) -> DatasetSchema:
    """The schema of `dataset` (interactions, users or items) from `directory`/<dataset>.json."""
    path = directory / f"{dataset}.json"
    try:
        source = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{path}: {exc}") from exc
    return parse_schema(source, dataset, str(path))


INTERACTIONS = load_schema("interactions")
USERS = load_schema("users")
ITEMS = load_schema("items")
SCHEMAS: dict[str, DatasetSchema] = {"interactions": INTERACTIONS, "users": USERS, "items": ITEMS}


def field_table(schema: DatasetSchema) -> str:
    """The schema as a Markdown table (the README's field tables are these; a test keeps them equal)."""
    def row(*cells: str) -> str:
        return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"

    lines = [row("column", "type", "required", "meaning"), "| --- | --- | --- | --- |"]
    lines += [row(spec.name, spec.type_label, "yes" if spec.required else "no", spec.doc) for spec in schema.fields]
    return "\n".join(lines)
