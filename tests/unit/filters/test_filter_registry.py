"""Named filters: create/list/describe/delete, validation, and a storage adapter behind the FilterStore interface."""

import json

import pytest

from recsys.filters import (
    FilterExistsError,
    FilterNotFoundError,
    FilterRecord,
    FilterRegistry,
    FilterSyntaxError,
    InvalidFilterNameError,
)


class JsonParameterStore:
    """Stores each record as a JSON string under a path, the way an SSM Parameter Store adapter would."""

    def __init__(self):
        self.parameters: dict[str, str] = {}

    def add(self, record):
        path = f"/recsys/filters/{record.name}"
        if path in self.parameters:
            return False
        self.parameters[path] = json.dumps(record.to_dict())
        return True

    def get(self, name):
        raw = self.parameters.get(f"/recsys/filters/{name}")
        return None if raw is None else FilterRecord.from_dict(json.loads(raw))

    def all(self):
        return [FilterRecord.from_dict(json.loads(raw)) for raw in self.parameters.values()]

    def remove(self, name):
        return self.parameters.pop(f"/recsys/filters/{name}", None) is not None


@pytest.fixture(params=["memory", "json"])
def registry(request):
    store = JsonParameterStore() if request.param == "json" else None
    return FilterRegistry(store, clock=lambda: 1700000000.0)


def test_create_describe_list_get_and_delete(registry):
    record = registry.create("no-horror", "EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE)")
    assert record == FilterRecord("no-horror", "EXCLUDE ItemID WHERE Items.GENRE IN ($GENRE)", ("GENRE",), 1700000000.0)
    registry.create("cheap_1", "INCLUDE ItemID WHERE Items.PRICE < 10")
    assert registry.describe("no-horror") == record
    assert [r.name for r in registry.list()] == ["cheap_1", "no-horror"]
    flt = registry.get("cheap_1")
    assert flt.apply(["a", "b"], items={"a": {"PRICE": 5}, "b": {"PRICE": 50}}) == ["a"]
    registry.delete("cheap_1")
    assert [r.name for r in registry.list()] == ["no-horror"]
    with pytest.raises(FilterNotFoundError, match="no filter named 'cheap_1'"):
        registry.delete("cheap_1")
    with pytest.raises(FilterNotFoundError, match="no filter named 'cheap_1'"):
        registry.get("cheap_1")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "name: expected a non-empty string"),
        (None, "name: expected a non-empty string"),
        (
            "-leading-dash",
            "name: expected letters, digits, '-' and '_' starting with a letter or digit, got '-leading-dash'",
        ),
        ("has space", "name: expected letters, digits, '-' and '_' starting with a letter or digit, got 'has space'"),
        ("x" * 64, "name: expected at most 63 characters, got 64"),
    ],
)
def test_bad_names_are_rejected_and_nothing_is_stored(registry, name, message):
    with pytest.raises(InvalidFilterNameError) as caught:
        registry.create(name, "INCLUDE ItemID WHERE Items.PRICE < 10")
    assert str(caught.value) == message
    assert registry.list() == []


def test_a_malformed_expression_or_a_taken_name_stores_nothing(registry):
    with pytest.raises(FilterSyntaxError, match="at column 1: expected INCLUDE or EXCLUDE"):
        registry.create("broken", "SELECT * FROM items")
    assert registry.list() == []
    registry.create("taken", "INCLUDE ItemID WHERE Items.PRICE < 10")
    with pytest.raises(FilterExistsError, match="filter 'taken' already exists"):
        registry.create("taken", "INCLUDE ItemID WHERE Items.PRICE < 99")
    assert registry.describe("taken").expression == "INCLUDE ItemID WHERE Items.PRICE < 10"
