"""The item cache's native parts: its table against a dict (a hit is always the id's last stored record, never
another's or an older one), and the reading of the server's change notices however their bytes arrive."""

from __future__ import annotations

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.features import native

pytestmark = pytest.mark.skipif(native.ItemCache is None, reason="the native decoder is not built")

SIZE = 12
# few ids, some sharing prefixes, non-ASCII and longer than the 52 bytes a row keeps: a small table collides often
ids = st.sampled_from(["a", "b", "c", "ab", "ba", "item-1", "item-10", "é", "日本", "x" * 52, "y" * 53])
records = st.binary(min_size=SIZE, max_size=SIZE)
operations = st.lists(st.one_of(
    st.tuples(st.just("store"), st.lists(st.tuples(ids, records), max_size=6)),
    st.tuples(st.just("forget"), st.lists(ids, max_size=4), st.booleans()),
    st.tuples(st.just("lookup"), st.lists(ids, max_size=12)),
    st.tuples(st.just("clear")),
), max_size=40)


@settings(max_examples=300)
@given(capacity=st.integers(min_value=1, max_value=8), script=operations)
def test_a_hit_is_the_last_record_stored_under_its_id(capacity, script):
    cache = native.ItemCache(SIZE, capacity)
    model: dict[str, bytes] = {}  # what the cache may hold: the last record stored, until forgotten or cleared
    for operation, *args in script:
        if operation == "store":
            pairs = args[0]
            cache.store([i for i, _ in pairs], b"".join(r for _, r in pairs))
            model.update((i, r) for i, r in pairs if len(i.encode()) <= 52)
        elif operation == "forget":
            forgotten, as_bytes = args
            kept = sum(1 for i in set(forgotten) if i in model and _kept(cache, i))
            assert cache.forget([i.encode() if as_bytes else i for i in dict.fromkeys(forgotten)]) == kept
            for i in forgotten:
                model.pop(i, None)
        elif operation == "clear":
            cache.clear()
            model.clear()
        else:
            wanted = args[0]
            out = bytearray(b"\xee" * SIZE * len(wanted))
            unique, missing = cache.lookup(wanted, out)
            assert unique == list(dict.fromkeys(wanted))
            for position, item in enumerate(unique):
                got = bytes(out[position * SIZE:(position + 1) * SIZE])
                if position in missing:
                    assert got == b"\xee" * SIZE  # left as it was
                    assert item not in model or cache.evictions > 0
                else:
                    assert got == model[item]
        assert len(cache) <= min(capacity, len(model))
        if cache.evictions == 0:
            assert len(cache) == len(model)


many_ids = [f"item-{n}" for n in range(40)]


@settings(max_examples=200)
@given(script=st.lists(st.tuples(st.booleans(), st.lists(st.sampled_from(many_ids), min_size=1, max_size=5)),
                       max_size=30))
def test_without_evictions_a_lookup_finds_exactly_what_is_kept(script):
    # 40 ids in a table of 64 slots: long probe chains, and deletions in their middle
    cache = native.ItemCache(SIZE, 32)
    model: dict[str, bytes] = {}
    for step, (store, chosen) in enumerate(script):
        chosen = list(dict.fromkeys(chosen))
        if store and len(model.keys() | set(chosen)) <= 32:
            values = [f"{item}:{step}".encode().ljust(SIZE, b"-")[:SIZE] for item in chosen]
            cache.store(chosen, b"".join(values))
            model.update(zip(chosen, values))
        else:
            cache.forget(chosen)
            for item in chosen:
                model.pop(item, None)
        out = bytearray(SIZE * len(many_ids))
        unique, missing = cache.lookup(many_ids, out)
        assert [unique[p] for p in missing] == [i for i in many_ids if i not in model]
        assert {i: bytes(out[p * SIZE:(p + 1) * SIZE]) for p, i in enumerate(unique) if i in model} == model
        assert len(cache) == len(model) and cache.evictions == 0


def _kept(cache, item: str) -> bool:
    _, missing = cache.lookup([item], bytearray(SIZE))
    return not missing


def test_a_full_cache_evicts_in_turn_and_counts_what_it_finds():
    cache = native.ItemCache(4, 3)
    cache.store(["a", "b", "c", "d"], b"aaaabbbbccccdddd")
    assert len(cache) == 3 and cache.evictions == 1
    out = bytearray(16)
    unique, missing = cache.lookup(["a", "b", "c", "d"], out)
    assert missing == [0]  # the first stored went first
    assert bytes(out[4:]) == b"bbbbccccdddd"
    assert (cache.hits, cache.misses) == (3, 1)


def test_bad_arguments_name_what_is_wrong():
    cache = native.ItemCache(4, 3)
    with pytest.raises(ValueError, match="records: 3 bytes, 1 ids need 4"):
        cache.store(["a"], b"abc")
    with pytest.raises(ValueError, match="out: 4 bytes, 2 distinct ids need 8"):
        cache.lookup(["a", "b", "a"], bytearray(4))
    with pytest.raises(TypeError, match="must be str or bytes, not int"):
        cache.lookup([1], bytearray(4))
    with pytest.raises(ValueError, match="capacity must be > 0"):
        native.ItemCache(4, 0)


PREFIX = b"pit:r1a2b3c4d:"


def blob(value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(value), value)


def notice(keys: list[bytes] | None) -> bytes:
    changed = b"_\r\n" if keys is None else b"*%d\r\n%s" % (len(keys), b"".join(blob(k) for k in keys))
    return b">2\r\n" + blob(b"invalidate") + changed


record_keys = st.sampled_from([b"a", b"b", b"item-1", "日本".encode()]).map(lambda i: PREFIX + b"{i:3.1}:" + i)
other_keys = st.sampled_from([b"pit:{i:3.1}:a:meta", b"pit:rffffffff:{i:3.1}:a", b"unrelated"])
frames = st.lists(st.one_of(
    st.lists(record_keys | other_keys, max_size=5).map(lambda keys: ("notice", keys)),
    st.just(("reply", b"+OK\r\n")),
    st.just(("reply", b">3\r\n$9\r\nsubscribe\r\n$3\r\nchn\r\n:1\r\n")),
), max_size=8)


@given(sent=frames, cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=6))
def test_notices_drop_the_records_they_name_however_their_bytes_arrive(sent, cuts):
    table = native.ItemCache(4, 16)
    kept = [b"a", b"b", b"item-1", "日本".encode(), b"z"]
    table.store(kept, b"".join(b"%4d" % n for n in range(len(kept))))
    stream = b"".join(notice(body) if kind == "notice" else body for kind, body in sent)
    buffer, changed, replies = bytearray(), [], []
    for start, end in zip([0, *sorted(cuts)], [*sorted(cuts), len(stream)]):
        buffer += stream[start:end]
        consumed, got, parsed = table.apply_notices(buffer, PREFIX, redis.ResponseError)
        del buffer[:consumed]
        changed += got
        replies += parsed
    named = [key[len(PREFIX) + len(b"{i:3.1}:"):] for kind, body in sent if kind == "notice" for key in body
             if key.startswith(PREFIX)]
    assert changed == named and not buffer
    assert replies == [b"OK" if body == b"+OK\r\n" else [b"subscribe", b"chn", 1]
                       for kind, body in sent if kind == "reply"]
    _, missing = table.lookup([i.decode() for i in kept], bytearray(4 * len(kept)))
    assert {kept[p] for p in missing} == set(named)


def test_a_flush_notice_stops_the_reading_there_and_errors_are_replies():
    table = native.ItemCache(4, 4)
    stream = notice([PREFIX + b"{i:1.0}:a"]) + b"-ERR nope\r\n" + notice(None) + notice([PREFIX + b"{i:1.0}:b"])
    consumed, changed, replies = table.apply_notices(stream, PREFIX, redis.ResponseError)
    assert changed is None and consumed == len(stream) - len(notice([PREFIX + b"{i:1.0}:b"]))
    assert len(replies) == 1 and isinstance(replies[0], redis.ResponseError) and str(replies[0]) == "ERR nope"
    with pytest.raises(ValueError, match="not a string"):
        table.apply_notices(b">2\r\n$10\r\ninvalidate\r\n*1\r\n:5\r\n", PREFIX, redis.ResponseError)
