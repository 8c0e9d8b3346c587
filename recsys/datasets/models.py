"""Typed models of the dataset rows: frozen dataclasses generated from the JSON schemas.

    Interaction(user_id="u1", item_id="i9", timestamp=1_700_000_000, event_type="watch", event_value=1260.0)
    User(user_id="u1", age=34, topics=("comedy", "science"))
    Item(item_id="i9", creation_timestamp=1_650_000_000, genres=("comedy",), is_paid=False)

Attributes are the column names in lower case. A required column is a required keyword argument; an optional one
defaults to None, or to () for "|"-separated columns (tuples of strings). Construction checks every value against
its field's rule and raises InvalidRecord naming the column.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

from recsys.datasets.schema import INTERACTIONS, ITEMS, USERS, DatasetSchema, FieldError


_set = object.__setattr__  # frozen dataclasses are filled in this way


class InvalidRecord(ValueError):
    """A value breaks its column's rule; the message names the column."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column = column
        self.reason = reason


class Record:
    """Base of the generated models: checks on construction, CSV rows in and out."""

    __slots__ = ()
    SCHEMA: ClassVar[DatasetSchema]

    def __post_init__(self) -> None:
        for spec in self.SCHEMA.fields:
            value = getattr(self, spec.attribute)
            try:
                checked = spec.check(value)
            except FieldError as exc:
                raise InvalidRecord(spec.name, exc.reason) from None
            if checked is not value:
                _set(self, spec.attribute, checked)

    @classmethod
    def from_parsed(cls, values: Mapping[str, Any]) -> Any:
        """A record from values that FieldSpec.parse returned (by attribute), without checking them again.

        The importer's hot path: parse already applied every rule, so the second check would only cost time.
        """
        record = object.__new__(cls)
        for spec in cls.SCHEMA.fields:
            _set(record, spec.attribute, values.get(spec.attribute, spec.empty))
        return record

    @classmethod
    def from_row(cls, row: Mapping[str, str]) -> Any:
        """A record from a CSV row keyed by column name; absent columns are empty. Raises InvalidRecord."""
        cells = {name.strip().upper(): text for name, text in row.items()}
        values = {}
        for spec in cls.SCHEMA.fields:
            try:
                values[spec.attribute] = spec.parse(cells.get(spec.name, ""))
            except FieldError as exc:
                raise InvalidRecord(spec.name, exc.reason) from None
        return cls.from_parsed(values)

    def cells(self) -> list[str]:
        """The canonical CSV text of every column, in schema order."""
        return [spec.format(getattr(self, spec.attribute)) for spec in self.SCHEMA.fields]

    def to_row(self) -> dict[str, str]:
        return dict(zip(self.SCHEMA.columns, self.cells()))


def model_class(class_name: str, schema: DatasetSchema) -> type[Record]:
    """A frozen, slotted dataclass with one attribute per schema field."""
    fields = []
    for spec in schema.fields:
        default = dataclasses.field() if spec.required else dataclasses.field(default=spec.empty)
        fields.append((spec.attribute, spec.python_type, default))
    return dataclasses.make_dataclass(
        class_name,
        fields,
        bases=(Record,),
        namespace={"SCHEMA": schema, "__module__": __name__, "__doc__": f"A row of the {schema.dataset} dataset."},
        frozen=True,
        slots=True,
        kw_only=True,
    )


Interaction = model_class("Interaction", INTERACTIONS)
User = model_class("User", USERS)
Item = model_class("Item", ITEMS)
MODELS: dict[str, type[Record]] = {"interactions": Interaction, "users": User, "items": Item}
