"""The JSON schemas are the one source of truth: Personalize's format, and models, rules and docs follow them."""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import pytest

from recsys.datasets import schema as schema_module
from recsys.datasets.models import MODELS, Interaction, InvalidRecord, Item, User
from recsys.datasets.schema import (
    INTERACTIONS,
    ITEMS,
    RANGES,
    SCHEMA_DIR,
    SCHEMAS,
    USERS,
    FieldError,
    SchemaError,
    field_table,
    parse_schema,
)


@pytest.mark.parametrize("dataset", ["interactions", "users", "items"])
def test_schema_files_are_personalize_records(dataset):
    raw = json.loads((SCHEMA_DIR / f"{dataset}.json").read_text())
    assert raw["type"] == "record"
    assert raw["name"] == dataset.capitalize()
    assert raw["namespace"] == "com.amazonaws.personalize.schema"
    assert raw["version"] == "1.0"
    for field in raw["fields"]:
        assert set(field) <= {"name", "type", "categorical", "textual", "doc"}, field
        assert field["type"] in schema_module.PRIMITIVE_TYPES or (
            isinstance(field["type"], list) and field["type"][0] == "null"
        )
        assert field["doc"], f"{dataset}.{field['name']} is undocumented"


def test_required_fields_follow_personalize():
    assert INTERACTIONS.required_columns == ("USER_ID", "ITEM_ID", "TIMESTAMP")
    assert USERS.required_columns == ("USER_ID",)
    assert ITEMS.required_columns == ("ITEM_ID", "CREATION_TIMESTAMP")
    assert INTERACTIONS.spec("TIMESTAMP").type == "long"
    assert INTERACTIONS.spec("EVENT_VALUE").type == "float"
    # Personalize: EVENT_TYPE is a plain string (never categorical); IMPRESSION holds |-separated item ids.
    assert not INTERACTIONS.spec("EVENT_TYPE").categorical
    assert INTERACTIONS.spec("IMPRESSION").is_list and not INTERACTIONS.spec("IMPRESSION").categorical


def test_item_fields_the_platform_relies_on():
    expected = {
        "GENRES": ("string", True), "CATEGORY": ("string", True), "CREATOR": ("string", True),
        "FRANCHISE": ("string", True), "BANNER_IDS": ("string", True), "IS_PAID": ("boolean", False),
        "IS_ANIMATED_SERIES": ("boolean", False), "PRICE": ("float", False), "CREATION_TIMESTAMP": ("long", False),
    }
    for name, (kind, categorical) in expected.items():
        spec = ITEMS.spec(name)
        assert (spec.type, spec.categorical) == (kind, categorical), name
    assert ITEMS.spec("TITLE").textual
    assert USERS.spec("AGE").type == "int" and USERS.spec("TOPICS").is_list


@pytest.mark.parametrize("dataset", ["interactions", "users", "items"])
def test_models_are_generated_from_the_schema(dataset):
    schema, model = SCHEMAS[dataset], MODELS[dataset]
    fields = dataclasses.fields(model)
    assert [f.name for f in fields] == [spec.name.lower() for spec in schema.fields]
    for f, spec in zip(fields, schema.fields):
        assert f.type == spec.python_type
        if spec.required:
            assert f.default is dataclasses.MISSING
        else:
            assert f.default == ((), None)[not spec.is_list]
    assert model.__dataclass_params__.frozen


def test_a_model_with_only_required_fields():
    interaction = Interaction(user_id="u1", item_id="i1", timestamp=1_700_000_000)
    assert interaction.event_type is None and interaction.impression == () and interaction.geo == ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        interaction.user_id = "u2"  # type: ignore[misc]
    with pytest.raises(TypeError):
        Interaction(user_id="u1", item_id="i1")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("model", "values", "column", "reason"),
    [
        (Interaction, {"user_id": "", "item_id": "i", "timestamp": 1_700_000_000}, "USER_ID", "required"),
        (Interaction, {"user_id": "u", "item_id": "i", "timestamp": 1_700_000_000_000}, "TIMESTAMP", "milliseconds"),
        (Interaction, {"user_id": "u", "item_id": "i", "timestamp": 1.7e9}, "TIMESTAMP", "integer"),
        (Interaction, {"user_id": "u", "item_id": "i", "timestamp": 1_700_000_000, "event_value": math.nan},
         "EVENT_VALUE", "finite"),
        (Interaction, {"user_id": "u", "item_id": "i", "timestamp": 1_700_000_000, "impression": "a|b"},
         "IMPRESSION", "tuple"),
        (User, {"user_id": "u", "age": -1}, "AGE", "out of range"),
        (User, {"user_id": "u", "age": True}, "AGE", "number"),
        (User, {"user_id": "u", "topics": ("a|b",)}, "TOPICS", "separator"),
        (Item, {"item_id": "i", "creation_timestamp": 0, "price": -0.5}, "PRICE", "out of range"),
        (Item, {"item_id": "i", "creation_timestamp": 0, "is_paid": "yes"}, "IS_PAID", "boolean"),
        (Item, {"item_id": "x" * 257, "creation_timestamp": 0}, "ITEM_ID", "256"),
    ],
)
def test_models_check_values_and_name_the_column(model, values, column, reason):
    with pytest.raises(InvalidRecord) as caught:
        model(**values)
    assert caught.value.column == column
    assert reason in caught.value.reason
    assert str(caught.value).startswith(f"{column}: ")


def test_models_normalize_values():
    item = Item(item_id="i", creation_timestamp=-1_798_761_600, price=3, genres=["Crime", "Drama"], title="  ")
    assert item.price == 3.0 and isinstance(item.price, float)
    assert item.genres == ("Crime", "Drama")
    assert item.title is None  # a blank optional string is empty


def test_rows_round_trip_through_models():
    row = {"ITEM_ID": "0110912", "CREATION_TIMESTAMP": "757382400", "GENRES": "Crime|Thriller", "IS_PAID": "TRUE",
           "PRICE": "3.50", "TITLE": "Pulp Fiction"}
    item = Item.from_row(row)
    assert (item.item_id, item.genres, item.is_paid, item.price) == ("0110912", ("Crime", "Thriller"), True, 3.5)
    canonical = item.to_row()
    assert canonical["IS_PAID"] == "true" and canonical["PRICE"] == "3.5" and canonical["FRANCHISE"] == ""
    assert list(canonical) == list(ITEMS.columns)
    assert Item.from_row(canonical) == item


def test_every_range_rule_names_a_real_column():
    columns = {name for schema in SCHEMAS.values() for name in schema.columns}
    assert set(RANGES) <= columns


@pytest.mark.parametrize(
    ("spec_name", "text", "reason"),
    [
        ("TIMESTAMP", "1_700_000_000", "not an integer"),
        ("TIMESTAMP", "1.7e9", "not an integer"),
        ("EVENT_VALUE", "nan", "not a number"),
        ("EVENT_VALUE", "1e999", "not a finite number"),
        ("EVENT_VALUE", "0x10", "not a number"),
    ],
)
def test_cells_are_parsed_strictly(spec_name, text, reason):
    with pytest.raises(FieldError) as caught:
        INTERACTIONS.spec(spec_name).parse(text)
    assert reason in caught.value.reason


def test_cells_accept_surrounding_spaces_and_case():
    assert INTERACTIONS.spec("TIMESTAMP").parse(" 1700000000 ") == 1_700_000_000
    assert INTERACTIONS.spec("EVENT_VALUE").parse("+.5e1") == 5.0
    assert ITEMS.spec("IS_PAID").parse(" False ") is False
    assert INTERACTIONS.spec("EVENT_TYPE").parse("   ") is None
    assert USERS.spec("AGE").parse("") is None


def _mutated(mutate) -> dict:
    raw = copy.deepcopy(json.loads((SCHEMA_DIR / "items.json").read_text()))
    mutate(raw)
    return raw


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda raw: raw.update(namespace="other"), "namespace"),
        (lambda raw: raw.update(name="Things"), "record name must be Items"),
        (lambda raw: raw["fields"].append({"name": "PRICE", "type": "float"}), "duplicate fields PRICE"),
        (lambda raw: raw["fields"].append({"name": "SIZE", "type": "decimal"}), "field SIZE: type 'decimal'"),
        (lambda raw: raw["fields"].append({"name": "N", "type": "int", "categorical": True}), "field N: only string"),
        (lambda raw: raw["fields"].append({"name": "n", "type": "int"}), "field n: names are upper-case"),
        (lambda raw: raw["fields"].append({"name": "X", "type": ["string", "int"]}), "field X: a union type"),
        (lambda raw: raw["fields"].pop(0), "requires the field ITEM_ID"),
        (lambda raw: raw["fields"][0].update(type=["null", "string"]), "requires the field ITEM_ID"),
    ],
)
def test_malformed_schemas_are_refused_with_the_field(mutate, message):
    with pytest.raises(SchemaError) as caught:
        parse_schema(_mutated(mutate), "items", "items.json")
    assert message in str(caught.value)
    assert str(caught.value).startswith("items.json")


def test_the_readme_field_tables_are_the_schemas(repo_root):
    readme = (repo_root / "recsys" / "datasets" / "README.md").read_text()
    for schema in SCHEMAS.values():
        assert field_table(schema) in readme, f"README's {schema.dataset} table is stale: see `schema --markdown`"
