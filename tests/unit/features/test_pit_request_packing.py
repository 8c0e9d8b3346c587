"""The reader packs its requests itself (keys kept encoded across reads): the bytes must be what redis-py sends."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis._parsers import Encoder
from redis.connection import PythonRespSerializer

from recsys.config import PitFeatureConfig
from recsys.features import layout, native, reader
from recsys.features.reader import _KeyChunks, _packed

RECORD = layout.record_layout("item", PitFeatureConfig())
item_key = RECORD.key

REDIS_PY = PythonRespSerializer(buffer_cutoff=1 << 30, encode=Encoder("utf-8", "strict", False).encode)
ids = st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=20, unique=True)


def redis_py_packing(*args: str) -> bytes:
    return b"".join(REDIS_PY.pack(*args))


@given(ids)
def test_a_packed_mget_is_the_redis_protocol_of_the_keys(item_ids):
    chunks = _KeyChunks(item_key)
    expected = redis_py_packing("MGET", *[item_key(i) for i in item_ids])
    assert chunks.packed_mget(item_ids) == expected
    assert chunks.packed_mget(item_ids) == expected  # from the kept chunks


def item_keys() -> _KeyChunks:
    return _KeyChunks(item_key, RECORD.key_affixes())


some_ids = st.lists(st.sampled_from(["a", "b", "é", "item-1", "x" * 40, "日本"]) | st.text(min_size=1),
                    min_size=1, max_size=40)


@pytest.mark.parametrize("native", [True, False])
@given(item_ids=some_ids)
def test_a_read_asks_for_each_item_once_in_first_seen_order(native, item_ids):
    chunks = _KeyChunks(item_key, RECORD.key_affixes() if native else None)
    unique = list(dict.fromkeys(item_ids))
    expected = (redis_py_packing("MGET", *[item_key(i) for i in unique]), unique)
    assert chunks.packed_unique_mget(item_ids) == expected
    assert chunks.packed_unique_mget(list(item_ids)) == expected


@pytest.mark.skipif(native.pack_mget is None, reason="the native decoder is not built")
@given(item_ids=some_ids)
def test_a_cluster_read_asks_each_bucket_for_its_items_once(item_ids):
    requests, ids = item_keys().packed_bucket_mgets(item_ids)
    unique = list(dict.fromkeys(item_ids))
    # the ids grouped by bucket, first-seen within a bucket; the native CRC16 is the cluster's (binascii's)
    assert ids == sorted(unique, key=layout.key_bucket)
    assert [bucket for bucket, _, _ in requests] == sorted({layout.key_bucket(i) for i in unique})
    start = 0
    for bucket, count, request in requests:
        in_bucket = ids[start:start + count]
        assert {layout.key_bucket(i) for i in in_bucket} == {bucket}
        assert request == redis_py_packing("MGET", *[item_key(i) for i in in_bucket])
        start += count
    assert start == len(unique)


def test_without_the_native_packer_a_cluster_read_packs_nothing():
    assert _KeyChunks(item_key).packed_bucket_mgets(["a"]) is None


def test_ids_that_are_not_strings_are_packed_in_python():
    chunks = _KeyChunks(lambda item_id: f"k:{item_id}", ((b"k:",), b""))
    assert chunks.packed_unique_mget([3, "3", 3]) == (redis_py_packing("MGET", "k:3", "k:3"), [3, "3"])
    assert chunks.packed_bucket_mgets([3]) is None


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4))
def test_a_packed_command_is_the_redis_protocol_of_its_arguments(args):
    assert _packed("HGETALL", *args) == redis_py_packing("HGETALL", *args)


def test_the_key_cache_restarts_when_full_and_stays_right(monkeypatch):
    monkeypatch.setattr(reader, "KEY_CACHE_ENTRIES", 3)
    chunks = _KeyChunks(lambda item_id: f"k:{item_id}")
    chunks.packed_mget(["a", "b"])
    assert len(chunks._chunks) == 2
    assert chunks.packed_mget(["c", "d"]) == redis_py_packing("MGET", "k:c", "k:d")
    assert sorted(chunks._chunks) == ["c", "d"]  # 2 + 2 would pass the limit: the cache started again


@pytest.mark.parametrize("creator", [1, -5, 2**63 - 1])
def test_creator_hashes_are_kept_as_keys_too(creator):
    chunks = _KeyChunks(lambda value: f"c:{value}")
    assert chunks.packed_mget([creator]) == redis_py_packing("MGET", f"c:{creator}")
