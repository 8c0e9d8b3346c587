"""Every kind of bad input is reported with its file, row, column and reason; errors are capped and counted."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataset_fixtures import INTERACTION_HEADER, NO_MINIMUM, T0, files_under, good_rows, interactions, write_csv

from recsys.config import DatasetImportConfig
from recsys.datasets.errors import DatasetImportError, InvalidRowsError
from recsys.datasets.importer import import_dataset


def refused(source: Path, lake: Path, config: DatasetImportConfig = NO_MINIMUM) -> InvalidRowsError:
    with pytest.raises(InvalidRowsError) as caught:
        import_dataset(source, lake, config=config)
    assert files_under(lake) == {}, "a refused import must write nothing"
    return caught.value


def only_error(source: Path, lake: Path) -> tuple[int, str | None, str, str]:
    error = refused(source, lake)
    assert error.total == 1, str(error)
    (row_error,) = error.errors
    assert row_error.file == str(source / "interactions.csv")
    return row_error.row, row_error.column, row_error.reason, str(error)


@pytest.mark.parametrize(
    ("cells", "column", "reason"),
    [
        (["", "i1", T0, "click", ""], "USER_ID", "required value is empty"),
        (["u1", "  ", T0, "click", ""], "ITEM_ID", "required value is empty"),
        (["u1", "i1", "", "click", ""], "TIMESTAMP", "required value is empty"),
        (["u1", "i1", "yesterday", "click", ""], "TIMESTAMP", "not an integer: 'yesterday'"),
        (["u1", "i1", T0 * 1000, "click", ""], "TIMESTAMP", "out of range: expected unix seconds between 1970-01-01"),
        (["u1", "i1", T0 * 1000, "click", ""], "TIMESTAMP", "(milliseconds? use seconds)"),
        (["u1", "i1", 2**63, "click", ""], "TIMESTAMP", "out of range for long"),
        (["u1", "i1", 0, "click", ""], "TIMESTAMP", "out of range"),
        (["u1", "i1", T0, "click", "lots"], "EVENT_VALUE", "not a number: 'lots'"),
        (["u1", "i1", T0, "click", "inf"], "EVENT_VALUE", "not a number"),
        (["u1", "i1", T0, "click", "1e400"], "EVENT_VALUE", "not a finite number"),
        (["u" * 257, "i1", T0, "click", ""], "USER_ID", "longer than 256 characters"),
        (["u1", "i\x001", T0, "click", ""], "ITEM_ID", "contains U+0000, a control character, at character 1"),
        (["u1", "i\x85", T0, "click", ""], "ITEM_ID", "contains U+0085, a control character, at character 1"),
        (["u1", "i\u2028", T0, "click", ""], "ITEM_ID", "contains U+2028, a line break, at character 1"),
    ],
)
def test_bad_values_name_row_column_and_reason(tmp_path, cells, column, reason):
    rows = good_rows(3)
    rows.insert(1, cells)  # the header is row 1, so the bad row is row 3
    row, got_column, got_reason, message = only_error(interactions(tmp_path / "in", rows), tmp_path / "lake")
    assert (row, got_column) == (3, column)
    assert reason in got_reason
    assert f"interactions.csv row 3, column {column}: {got_reason}" in message


@pytest.mark.parametrize(
    ("header", "column", "reason"),
    [
        (["USER_ID", "ITEM_ID", "EVENT_TYPE"], "TIMESTAMP", "required column is missing from the header"),
        (["USER_ID", "ITEM_ID", "TIMESTAMP", "RATING"], "RATING", "not a column of the interactions schema"),
        (["USER_ID", "ITEM_ID", "TIMESTAMP", "user_id"], "USER_ID", "duplicate column"),
    ],
)
def test_header_errors_are_row_1(tmp_path, header, column, reason):
    source = tmp_path / "in"
    write_csv(source / "interactions.csv", header, [["u1", "i1", T0, "x"][: len(header)]])
    row, got_column, got_reason, _ = only_error(source, tmp_path / "lake")
    assert (row, got_column) == (1, column)
    assert reason in got_reason


def test_header_matches_columns_in_any_order_and_case(tmp_path):
    source = write_csv(tmp_path / "in" / "interactions.csv", ["timestamp", "Item_Id", "USER_ID"], [[T0, "i1", "u1"]])
    report = import_dataset(source.parent, tmp_path / "lake", config=NO_MINIMUM)
    assert (report.interactions, report.users, report.items) == (1, 1, 1)


def test_rows_with_too_few_or_too_many_cells(tmp_path):
    source = tmp_path / "in"
    (source).mkdir()
    (source / "interactions.csv").write_text(
        "USER_ID,ITEM_ID,TIMESTAMP,EVENT_TYPE\n"
        f"u1,i1,{T0},click\n"
        f"u1,i1\n"
        f"u1,i1,{T0},click,extra\n"
    )
    error = refused(source, tmp_path / "lake")
    assert [(e.row, e.column) for e in error.errors] == [(3, "TIMESTAMP"), (4, None)]
    assert "missing: the row has 2 cells, the header 4" in error.errors[0].reason
    assert error.errors[1].reason == "5 cells, but the header has 4"
    assert "interactions.csv row 4: 5 cells" in str(error)


def test_every_bad_cell_of_a_row_is_reported(tmp_path):
    source = interactions(tmp_path / "in", [["", "i1", "soon", "click", "x"]])
    error = refused(source, tmp_path / "lake")
    assert [(e.row, e.column) for e in error.errors] == [(2, "USER_ID"), (2, "TIMESTAMP"), (2, "EVENT_VALUE")]


def test_invalid_utf8_is_reported_with_its_cell(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (source / "interactions.csv").write_bytes(b"USER_ID,ITEM_ID,TIMESTAMP\nu1,i1,1700000000\nu\xff2,i1,1700000000\n")
    row, column, reason, _ = only_error(source, tmp_path / "lake")
    assert (row, column, reason) == (3, "USER_ID", "not valid UTF-8")


def test_quoted_cells_with_commas_newlines_and_a_bom(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (source / "interactions.csv").write_bytes(
        '\ufeffUSER_ID,ITEM_ID,TIMESTAMP,SESSION_ID\n"u,1","i 1",1700000000,"s ""quoted"""\n'.encode()
    )
    write_csv(source / "items.csv", ["ITEM_ID", "CREATION_TIMESTAMP", "TITLE"],
              [["i 1", 0, "Title, with a comma\nand a second line"]])
    report = import_dataset(source, tmp_path / "lake", config=NO_MINIMUM)
    assert report.rows == {"interactions": 1, "items": 1}


def test_an_id_with_a_line_break_is_refused_as_every_api_refuses_it(tmp_path):
    source = interactions(tmp_path / "in", [["u1", "i\n1", T0, "click", ""]] + good_rows(2))
    row, column, reason, _ = only_error(source, tmp_path / "lake")
    assert (row, column, reason) == (2, "ITEM_ID", "contains U+000A, a control character, at character 1")


def test_empty_file_and_blank_lines(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (source / "interactions.csv").write_text("")
    row, column, reason, _ = only_error(source, tmp_path / "lake")
    assert (row, column) == (1, None) and "empty" in reason
    (source / "interactions.csv").write_text(f"USER_ID,ITEM_ID,TIMESTAMP\n\nu1,i1,{T0}\n\n")
    assert import_dataset(source, tmp_path / "lake", config=NO_MINIMUM).interactions == 1


def test_errors_in_users_and_items_name_their_file(tmp_path):
    source = interactions(tmp_path / "in", good_rows(3))
    write_csv(source / "users.csv", ["USER_ID", "AGE", "TOPICS"], [["u1", "old", "news"], ["u2", 200, "a||b"]])
    write_csv(source / "items.csv", ["ITEM_ID", "CREATION_TIMESTAMP", "IS_PAID", "PRICE"],
              [["i1", 0, "maybe", "-1"], ["i2", "", "true", "2"]])
    error = refused(source, tmp_path / "lake")
    found = {(Path(e.file).name, e.row, e.column, e.reason) for e in error.errors}
    assert found == {
        ("users.csv", 2, "AGE", "not an integer: 'old'"),
        ("users.csv", 3, "AGE", "200 is out of range: expected years between 0 and 130"),
        ("users.csv", 3, "TOPICS", "empty value in a '|'-separated list"),
        ("items.csv", 2, "IS_PAID", "not a boolean (true or false): 'maybe'"),
        ("items.csv", 2, "PRICE", "-1.0 is out of range: expected a price >= 0"),
        ("items.csv", 3, "CREATION_TIMESTAMP", "required value is empty"),
    }
    assert error.per_file == {str(source / "users.csv"): 3, str(source / "items.csv"): 3}


def test_errors_are_capped_but_all_counted(tmp_path):
    rows = [[f"u{i}", "i1", "never", "click", ""] for i in range(57)] + good_rows(5)
    source = interactions(tmp_path / "in", rows)
    config = DatasetImportConfig(min_users=1, min_items=1, min_interactions=1, max_errors_shown=20)
    error = refused(source, tmp_path / "lake", config)
    assert error.total == 57 and len(error.errors) == 20
    assert [e.row for e in error.errors] == list(range(2, 22))
    message = str(error)
    assert message.startswith(f"dataset import failed with 57 invalid value(s) ({source}/interactions.csv: 57)")
    assert "The first 20:" in message and message.endswith("... and 37 more")
    assert message.count("column TIMESTAMP: not an integer: 'never'") == 20


def test_a_categorical_value_may_hold_1000_characters_not_more(tmp_path):
    source = interactions(tmp_path / "in", good_rows(2))
    write_csv(source / "items.csv", ["ITEM_ID", "CREATION_TIMESTAMP", "GENRES"],
              [["i1", 0, "g" * 1000 + "|short"], ["i2", 0, "g" * 1001]])
    error = refused(source, tmp_path / "lake")
    assert [(e.row, e.column, e.reason) for e in error.errors] == [(3, "GENRES", "longer than 1000 characters")]


def test_missing_folder_or_interactions_file(tmp_path):
    with pytest.raises(DatasetImportError, match="not a folder"):
        import_dataset(tmp_path / "nowhere", tmp_path / "lake")
    write_csv(tmp_path / "in" / "users.csv", ["USER_ID"], [["u1"]])
    with pytest.raises(DatasetImportError, match="no interactions.csv"):
        import_dataset(tmp_path / "in", tmp_path / "lake")
    interactions(tmp_path / "in", good_rows(2))
    write_csv(tmp_path / "in" / "interactions.csv.gz", INTERACTION_HEADER, [])
    with pytest.raises(DatasetImportError, match="both interactions.csv and interactions.csv.gz"):
        import_dataset(tmp_path / "in", tmp_path / "lake")


def test_a_broken_gzip_file_is_refused_cleanly(tmp_path):
    source = tmp_path / "in"
    source.mkdir()
    (source / "interactions.csv.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DatasetImportError, match="interactions.csv.gz: cannot be read"):
        import_dataset(source, tmp_path / "lake", config=NO_MINIMUM)
    assert files_under(tmp_path / "lake") == {}
