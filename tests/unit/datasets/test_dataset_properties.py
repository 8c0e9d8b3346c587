"""Properties of the row parser: valid rows round-trip through CSV; any corrupted cell is reported with its column."""

from __future__ import annotations

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.datasets.errors import ErrorLog
from recsys.datasets.models import MODELS, Record
from recsys.datasets.rows import read_records
from recsys.datasets.schema import MULTI_VALUE_SEPARATOR, SCHEMAS, FieldSpec

_INTEGER_BOUNDS = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}

# Any character CSV can carry (commas, quotes, newlines, accents, emoji) but NUL, "|" and unpaired surrogates.
_text = st.text(
    # Valid cells: no control characters and no line breaks (the platform's rule for ids, recsys.inputs).
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), blacklist_characters=MULTI_VALUE_SEPARATOR),
    min_size=1,
    max_size=12,
).filter(lambda s: not s.isspace())


def value_of(spec: FieldSpec) -> st.SearchStrategy:
    """Valid values of a field: its type, its range, its length limit."""
    rule = spec.range
    if spec.type == "string":
        present = st.lists(_text, min_size=1, max_size=4).map(tuple) if spec.is_list else _text
    elif spec.type == "boolean":
        present = st.booleans()
    elif spec.type in _INTEGER_BOUNDS:
        low, high = _INTEGER_BOUNDS[spec.type]
        if rule is not None:
            low = max(low, int(rule.low)) if rule.low is not None else low
            high = min(high, int(rule.high) - 1) if rule.high is not None else high
        present = st.integers(low, high)
    else:
        present = st.floats(
            min_value=rule.low if rule else None,
            max_value=rule.high if rule else None,
            exclude_max=rule is not None and rule.high is not None,
            allow_nan=False,
            allow_infinity=False,
        )
    return st.one_of(st.just(spec.empty), present) if spec.nullable else present


def record_of(dataset: str) -> st.SearchStrategy:
    schema = SCHEMAS[dataset]
    return st.fixed_dictionaries({spec.attribute: value_of(spec) for spec in schema.fields}).map(
        lambda values: MODELS[dataset](**values)
    )


def as_csv(header: list[str], rows: list[list[str]]) -> io.StringIO:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    buffer.seek(0)
    return buffer


def read_back(dataset: str, text: io.StringIO) -> tuple[list[Record], ErrorLog]:
    log = ErrorLog(limit=50)
    return list(read_records(text, SCHEMAS[dataset], f"{dataset}.csv", log)), log


datasets = st.sampled_from(sorted(SCHEMAS))


@settings(max_examples=100, deadline=None)
@given(data=st.data(), dataset=datasets)
def test_valid_records_round_trip_through_csv(data, dataset):
    records = data.draw(st.lists(record_of(dataset), min_size=1, max_size=5))
    schema = SCHEMAS[dataset]
    got, log = read_back(dataset, as_csv(list(schema.columns), [r.cells() for r in records]))
    assert not log, [str(e) for e in log.shown]
    assert got == records


@settings(max_examples=60, deadline=None)
@given(data=st.data(), dataset=datasets)
def test_any_subset_of_columns_in_any_order_round_trips(data, dataset):
    schema = SCHEMAS[dataset]
    record = data.draw(record_of(dataset))
    optional = [spec for spec in schema.fields if spec.nullable]
    dropped = data.draw(st.sets(st.sampled_from(optional))) if optional else set()
    kept = data.draw(st.permutations([spec for spec in schema.fields if spec not in dropped]))
    cells = dict(zip(schema.columns, record.cells()))
    (got,), log = read_back(dataset, as_csv([s.name.lower() for s in kept], [[cells[s.name] for s in kept]]))
    assert not log
    for spec in schema.fields:
        expected = spec.empty if spec in dropped else getattr(record, spec.attribute)
        assert getattr(got, spec.attribute) == expected


def corruption_of(spec: FieldSpec) -> st.SearchStrategy:
    """Cell texts that break the field's rule."""
    options = [st.just("x" * (spec.max_chars + 1))] if spec.type == "string" else []
    if spec.required:
        options.append(st.sampled_from(["", " ", "\t"]))
    if spec.is_list:
        options.append(st.sampled_from(["a||b", "|a", "a|", "a| |b"]))
    elif spec.type == "string":
        options.append(st.just("bad\x00value"))
    elif spec.type == "boolean":
        options.append(st.sampled_from(["yes", "1", "t", "truth"]))
    elif spec.type in _INTEGER_BOUNDS:
        options.append(st.sampled_from(["1.5", "1e3", "ten", "0x1F", "1_000", str(2**64)]))
    else:
        options.append(st.sampled_from(["nan", "-inf", "1,5", "abc", "1e999", "--1"]))
    if spec.range is not None and spec.range.low is not None and spec.type != "string":
        options.append(st.just(str(int(spec.range.low) - 1)))
    return st.one_of(options)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), dataset=datasets)
def test_a_corrupted_cell_is_reported_with_its_row_and_column(data, dataset):
    schema = SCHEMAS[dataset]
    records = data.draw(st.lists(record_of(dataset), min_size=2, max_size=4))
    bad_row = data.draw(st.integers(0, len(records) - 1))
    spec = data.draw(st.sampled_from(schema.fields))
    rows = [r.cells() for r in records]
    rows[bad_row][schema.columns.index(spec.name)] = data.draw(corruption_of(spec))
    got, log = read_back(dataset, as_csv(list(schema.columns), rows))
    assert [(e.file, e.row, e.column) for e in log.shown] == [(f"{dataset}.csv", bad_row + 2, spec.name)]
    assert log.shown[0].reason
    assert got == [r for i, r in enumerate(records) if i != bad_row]
