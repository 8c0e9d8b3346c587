"""Item and user metadata: parsing Personalize columns, errors naming the field, the catalog section bytes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recsys.features import ItemCatalog, ItemMeta, UserProfile
from recsys.features.layout import CATALOG_BYTES, FLAG_ANIMATED, FLAG_KNOWN, FLAG_PAID, MAX_TOPICS, name_hash
from recsys.features.reader import CATALOG_DTYPE


def test_item_columns_are_normalized():
    meta = ItemMeta.parse({
        "ITEM_ID": "i1", "GENRES": "Comedy| Drama", "CATEGORY": "drama|News", "CREATOR": 42, "FRANCHISE": "",
        "IS_PAID": "TRUE", "IS_ANIMATED_SERIES": 0, "CREATION_TIMESTAMP": "1700000000", "PRICE": "4.5",
    })
    assert meta == ItemMeta("i1", ("comedy", "drama", "news"), "42", None, True, False, 1_700_000_000.0, 4.5)


def test_an_item_with_only_its_id_has_neutral_metadata():
    assert ItemMeta.parse({"ITEM_ID": "i1"}) == ItemMeta("i1")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({}, "items\\[3\\].ITEM_ID: is required"),
        ({"ITEM_ID": "  "}, "items\\[3\\].ITEM_ID: must not be empty or blank"),
        ({"ITEM_ID": "x" * 257}, "items\\[3\\].ITEM_ID: has 257 characters; the limit is 256"),
        ({"ITEM_ID": "a\nb"}, "items\\[3\\].ITEM_ID: must not contain U\\+000A, a control character"),
        ({"ITEM_ID": "a\ud800"}, "items\\[3\\].ITEM_ID: must not contain U\\+D800, a lone surrogate"),
        ({"ITEM_ID": "i", "PRICE": "cheap"}, "items\\[3\\].PRICE: must be a number"),
        ({"ITEM_ID": "i", "PRICE": -1}, "items\\[3\\].PRICE: must be >= 0"),
        ({"ITEM_ID": "i", "PRICE": "nan"}, "items\\[3\\].PRICE: must be finite"),
        ({"ITEM_ID": "i", "IS_PAID": "maybe"}, "items\\[3\\].IS_PAID: must be a boolean"),
        ({"ITEM_ID": "i", "CREATION_TIMESTAMP": 1_700_000_000_000}, "CREATION_TIMESTAMP: must be unix seconds"),
        ({"ITEM_ID": "i", "GENRES": 7}, "items\\[3\\].GENRES: must be a '\\|'-separated string or a list"),
        ({"ITEM_ID": "i", "CREATOR": ["a"]}, "items\\[3\\].CREATOR: must be a string"),
    ],
)
def test_bad_item_columns_are_named(record, message):
    with pytest.raises(ValueError, match=message):
        ItemMeta.parse(record, "items[3]")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"ITEM_ID": "a", "TITLE": "t\ud800"}, "items\\[1\\].TITLE: must not contain U\\+D800, a lone surrogate"),
        ({"ITEM_ID": "a", "T\x00": "t"}, "items\\[1\\].T\x00: the column name must not contain U\\+0000"),
        ({"ITEM_ID": "a", "DESCRIPTION": "bell\x07"}, "items\\[1\\].DESCRIPTION: must not contain U\\+0007"),
    ],
)
def test_every_stored_column_follows_the_input_rules_and_nothing_is_half_written(redis_client, record, message):
    catalog = ItemCatalog(redis_client)
    with pytest.raises(ValueError, match=message):
        catalog.upsert_items([{"ITEM_ID": "good"}, record])
    assert redis_client.dbsize() == 0


def test_user_profiles_keep_age_and_topics():
    assert UserProfile.parse({"USER_ID": "u1", "AGE": "17", "TOPICS": ["Kids", "kids", "Music"]}) == UserProfile(
        "u1", 17.0, ("kids", "music"))
    assert UserProfile.parse({"USER_ID": "u1", "AGE": ""}) == UserProfile("u1")


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"AGE": 30}, "users\\[0\\].USER_ID: is required"),
        ({"USER_ID": "u", "AGE": "old"}, "users\\[0\\].AGE: must be a number"),
        ({"USER_ID": "u", "AGE": 200}, "users\\[0\\].AGE: must lie in \\[0, 150\\]"),
        ({"USER_ID": "u", "AGE": True}, "users\\[0\\].AGE: must be a number"),
    ],
)
def test_bad_user_columns_are_named(record, message):
    with pytest.raises(ValueError, match=message):
        UserProfile.parse(record, "users[0]")


def test_the_catalog_section_decodes_as_the_reader_reads_it():
    assert CATALOG_DTYPE.itemsize == CATALOG_BYTES == 80
    topics = tuple(f"t{k}" for k in range(MAX_TOPICS + 2))  # topics beyond MAX_TOPICS are not hashed
    meta = ItemMeta("i1", topics, "c1", "f1", True, True, 1_700_000_000.5, 2.25)
    row = np.frombuffer(meta.catalog_section(), dtype=CATALOG_DTYPE)[0]
    assert row["creator"] == name_hash("c1") and row["franchise"] == name_hash("f1")
    assert row["topics"].tolist() == [name_hash(t) for t in topics[:MAX_TOPICS]]
    assert row["price"] == 2.25 and row["created"] == 1_700_000_000.5
    assert row["flags"] == FLAG_KNOWN | FLAG_PAID | FLAG_ANIMATED


def test_unknown_values_are_zero_and_nan_in_the_catalog_section():
    row = np.frombuffer(ItemMeta("i1").catalog_section(), dtype=CATALOG_DTYPE)[0]
    assert row["creator"] == row["franchise"] == 0 and not row["topics"].any()
    assert math.isnan(row["created"]) and row["flags"] == FLAG_KNOWN


def test_name_hashes_are_stable_and_never_zero():
    assert name_hash("comedy") == name_hash("comedy") != name_hash("drama")
    assert all(name_hash(str(k)) != 0 for k in range(10_000))
