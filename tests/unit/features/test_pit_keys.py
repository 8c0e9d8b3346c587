"""Key names: every key of one entity shares a cluster slot; item and creator keys spread evenly by bucket."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from recsys.config import PitFeatureConfig
from recsys.features import layout

parts = st.sampled_from(["meta", "seen:20000", "seen:20001"])
ITEM_RECORD = layout.record_layout("item", PitFeatureConfig())
CREATOR_RECORD = layout.record_layout("creator", PitFeatureConfig())


def slot(key: str) -> int:
    return key_slot(key.encode())


@given(item_id=st.text(min_size=1), first=parts, second=parts)
def test_every_key_of_one_item_is_in_its_buckets_slot(item_id, first, second):
    bucket = layout.key_bucket(item_id)
    assert slot(layout.item_key(item_id, first)) == slot(layout.item_key(item_id, second))
    assert slot(layout.item_key(item_id, first)) == slot(layout.bucket_tags("i")[bucket])
    assert slot(ITEM_RECORD.key(item_id)) == slot(layout.item_key(item_id, first))
    assert item_id in layout.item_key(item_id, first)  # the key still names its item


@given(item_id=st.text(min_size=1), part=parts, creator=st.integers(min_value=-(2**63), max_value=2**63 - 1))
def test_the_record_prefix_names_the_item_records_and_nothing_else(item_id, part, creator):
    # the item cache asks the server for changes of the keys under this prefix (CLIENT TRACKING BCAST PREFIX)
    prefix = ITEM_RECORD.key_prefix
    assert ITEM_RECORD.key(item_id).startswith(prefix)
    assert ITEM_RECORD.key(item_id).endswith(f"}}:{item_id}")
    others = [layout.item_key(item_id, part), layout.creator_key(creator, part), layout.user_key(item_id, part),
              CREATOR_RECORD.key(layout.creator_id(creator))]
    assert not any(key.startswith(prefix) for key in others)


@given(creator=st.integers(min_value=-(2**63), max_value=2**63 - 1), first=parts, second=parts)
def test_every_key_of_one_creator_shares_a_slot(creator, first, second):
    assert slot(layout.creator_key(creator, first)) == slot(layout.creator_key(creator, second))
    assert slot(CREATOR_RECORD.key(layout.creator_id(creator))) == slot(layout.creator_key(creator, first))


@pytest.mark.parametrize("entity", ["i", "c"])
def test_bucket_b_lies_in_the_bth_equal_range_of_slots(entity):
    width = layout.CLUSTER_SLOTS // layout.KEY_BUCKETS
    assert [slot(tag) // width for tag in layout.bucket_tags(entity)] == list(range(layout.KEY_BUCKETS))


@pytest.mark.parametrize("shards", [1, 2, 3, 6, 16])
def test_shards_with_equal_slot_ranges_hold_equal_shares_of_the_buckets(shards):
    # how `CLUSTER ADDSLOTSRANGE` splits slots in equal ranges: shard k owns [k * 16384 / shards, ...)
    per_shard = Counter(slot(tag) * shards // layout.CLUSTER_SLOTS for tag in layout.bucket_tags("i"))
    assert max(per_shard.values()) - min(per_shard.values()) <= 1
    assert len(per_shard) == shards


def test_ids_spread_over_the_buckets():
    per_bucket = Counter(layout.key_bucket(f"i{n:06d}") for n in range(64_000))
    assert len(per_bucket) == layout.KEY_BUCKETS
    assert max(per_bucket.values()) < 1.1 * 1000 and min(per_bucket.values()) > 0.9 * 1000
