"""The native decoder (recsys/features/_decode.c) gives what the numpy path gives, and parses replies exactly.

`make install` builds the extension; without it these tests fail rather than skip, so CI always checks the code that
serves reads.
"""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recsys.config import PitFeatureConfig
from recsys.features import layout, native
from recsys.features.reader import _AFFINITY_SALTS, ITEM_COLUMNS, FeatureReader, _affinity_table, _counter_words

NOW = 1_700_000_000
CONFIGS = [PitFeatureConfig(), PitFeatureConfig(creator_recent_days=60, qualified_session_minutes=3)]


class NoStore:
    """The decoders under test never reach the store."""


def test_the_extension_is_built():
    assert native.ItemDecoder is not None, "run `python recsys/features/build_native.py` (make install does it)"


def readers(config: PitFeatureConfig) -> tuple[FeatureReader, FeatureReader]:
    fast, slow = FeatureReader(NoStore(), config), FeatureReader(NoStore(), config, native=False)
    assert fast._item_decoder is not None and slow._item_decoder is None
    return fast, slow


hashes = st.sampled_from([0, 1, -1, 2**63 - 1, -2**63]) | st.integers(-2**63, 2**63 - 1)


@st.composite
def records(draw, config: PitFeatureConfig):
    """Joined item records with arbitrary catalog sections and counters; heads fall around `now` so that every case
    of a window (empty, ahead of the read, behind it, out of the ring) comes up."""
    record = layout.record_layout("item", config)
    n = draw(st.integers(0, 12))
    second = NOW + draw(st.integers(-3 * 86400, 3 * 86400))
    rows = []
    for _ in range(n):
        catalog = struct.pack(
            layout.CATALOG_FORMAT, draw(hashes), draw(hashes), *[draw(hashes) for _ in range(layout.MAX_TOPICS)],
            draw(st.floats(width=32, allow_nan=False)), draw(st.sampled_from([NOW - 86400.0, NOW + 5.0, math.nan,
                                                                              math.inf, 0.0, second - 0.5])),
            draw(st.integers(0, 7)))
        counters = draw(st.lists(st.integers(0, 2**32 - 1), min_size=record.words, max_size=record.words))
        for ring in record.rings:
            near = st.sampled_from([-1, 0, 1, -ring.bucket_seconds, ring.bucket_seconds - 1, -86400])
            offset = draw(near | st.integers(-40 * 86400, 2 * 86400))
            counters[ring.first] = draw(st.sampled_from([0, 1, max(second + offset, 1)]))
        rows.append(catalog + struct.pack(f">{record.words}I", *counters))
    return b"".join(rows), n, second


@pytest.mark.parametrize("config", CONFIGS)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_the_native_decoder_gives_the_numpy_matrix(config, data):
    joined, n, second = data.draw(records(config))
    now = second + data.draw(st.sampled_from([0.0, 0.25, 0.999]))
    item_hashes = [h for row in range(n) for h in struct.unpack_from(">8q", joined, row * len(joined) // max(n, 1))]
    kinds = data.draw(st.lists(st.sampled_from("tcf"), max_size=len(item_hashes)))
    keys, found = _affinity_table([layout.name_hash(f"name-{position}") ^ _AFFINITY_SALTS[kind]
                                   for position, kind in enumerate(kinds)],
                                  [data.draw(st.floats(0, 1e6)) for _ in kinds])
    if len(item_hashes) and len(keys):  # make some of the items' own hashes affinity keys
        hits = data.draw(st.lists(st.sampled_from(item_hashes), max_size=4, unique=True))
        salted = [h ^ _AFFINITY_SALTS[data.draw(st.sampled_from("tcf"))] for h in hits]
        keys = np.unique(np.concatenate([keys, np.array(salted, dtype=np.int64)]))
        found = np.array([data.draw(st.floats(0, 1e6)) for _ in keys])
    topics = np.array(data.draw(st.lists(st.sampled_from(item_hashes or [5]) | hashes, max_size=3, unique=True)),
                      dtype=np.int64)

    fast, slow = readers(config)
    got = np.zeros((n, len(ITEM_COLUMNS)))
    fast._item_decoder.decode(joined, second, now, keys, found, topics, got)

    expected = np.zeros((n, len(ITEM_COLUMNS)))
    columns = {name: expected[:, i] for i, name in enumerate(ITEM_COLUMNS)}
    parsed = np.frombuffer(joined, dtype=slow._item_dtype)
    slow._counters(slow.item_layout, _counter_words(joined, slow.item_layout), now, columns)
    slow._catalog(parsed, now, columns)
    slow._affinities(parsed, keys, found, topics, columns)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("config", CONFIGS)
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_creator_counters_decode_natively_as_with_numpy(config, data):
    record = layout.record_layout("creator", config)
    second = NOW + data.draw(st.integers(-3 * 86400, 3 * 86400))
    rows = data.draw(st.lists(st.lists(st.integers(0, 2**32 - 1), min_size=record.words, max_size=record.words),
                              max_size=8))
    for row in rows:
        for ring in record.rings:
            offset = data.draw(st.sampled_from([-1, 0, 1, -86400, 86399]) | st.integers(-60 * 86400, 86400))
            row[ring.first] = data.draw(st.sampled_from([0, max(second + offset, 1)]))
    words = np.array(rows, dtype=np.uint32).reshape(len(rows), record.words)
    fast, slow = readers(config)
    np.testing.assert_array_equal(fast._creator_values(words, second), slow._creator_values(words, second))


def test_a_decoder_plan_that_does_not_fit_the_record_is_refused():
    reader = FeatureReader(NoStore(), PitFeatureConfig())
    plan = native.decoder_plan(reader.item_layout, ITEM_COLUMNS, _AFFINITY_SALTS)
    with pytest.raises(ValueError, match="ring 0 does not fit"):
        native.ItemDecoder({**plan, "record_size": plan["counter_offset"] + 4 * len(plan["totals"])})
    with pytest.raises(ValueError, match="column 99 is outside"):
        native.ItemDecoder({**plan, "price_column": 99})
    with pytest.raises(KeyError, match="no 'flags_offset'"):
        native.ItemDecoder({k: v for k, v in plan.items() if k != "flags_offset"})


def test_records_and_out_of_the_wrong_size_are_refused():
    reader = FeatureReader(NoStore(), PitFeatureConfig())
    empty = np.zeros(0, dtype=np.int64)
    with pytest.raises(ValueError, match="not a whole number"):
        reader._item_decoder.decode(b"x" * 7, NOW, NOW, empty, np.zeros(0), empty, np.zeros((1, len(ITEM_COLUMNS))))
    with pytest.raises(ValueError, match="expected 1 records"):
        reader._item_decoder.decode(bytes(reader.item_layout.size), NOW, NOW, empty, np.zeros(0), empty, np.zeros((1, 2)))


# ---- replies ----

class Error(Exception):
    pass


def parse(buffer: bytes, count: int, records_reply: int | None = None, record_size: int = 4, records: int = 0):
    out = bytearray(records * record_size)
    replies = native.parse_replies(buffer, count, count if records_reply is None else records_reply, record_size,
                                   out, Error)
    return replies, bytes(out)


RESP2 = b"*4\r\n$1\r\na\r\n$2\r\n10\r\n$1\r\nb\r\n$0\r\n\r\n" b":7\r\n" b"+OK\r\n" b"$-1\r\n" b"*-1\r\n"
RESP3 = (b"%2\r\n$1\r\na\r\n$2\r\n10\r\n+b\r\n_\r\n" b"#t\r\n" b",1.5\r\n" b"(12345678901234567890\r\n"
         b"=8\r\ntxt:abcd\r\n" b"~1\r\n:1\r\n" b"_\r\n")


def test_resp2_and_resp3_replies_become_python_values():
    assert parse(RESP2, 5)[0] == [[b"a", b"10", b"b", b""], 7, b"OK", None, None]
    assert parse(RESP3, 7)[0] == [{b"a": b"10", b"b": None}, True, 1.5, 12345678901234567890, b"abcd", [1], None]


def test_push_messages_are_skipped_and_attributes_dropped():
    push = b">2\r\n$7\r\nmessage\r\n$2\r\nhi\r\n"
    buffer = push + b":1\r\n" + push + b"|1\r\n+key\r\n+value\r\n:2\r\n"
    assert native.ReplyScanner(2).feed(buffer, len(buffer)) == len(buffer)
    assert parse(buffer, 2)[0] == [1, 2]


def test_error_replies_are_returned_not_raised():
    replies, _ = parse(b"-WRONGTYPE bad\r\n!5\r\nERR x\r\n:3\r\n", 3)
    assert [type(r) for r in replies] == [Error, Error, int]
    assert [str(r) for r in replies[:2]] == ["WRONGTYPE bad", "ERR x"]


@pytest.mark.parametrize("nil", [b"$-1\r\n", b"_\r\n"])
def test_records_are_written_end_to_end_with_nils_as_zeros_and_other_sizes_cut_or_padded(nil):
    buffer = b":0\r\n*4\r\n$4\r\nabcd\r\n" + nil + b"$2\r\nxy\r\n$6\r\nlonger\r\n"
    replies, out = parse(buffer, 2, records_reply=1, record_size=4, records=4)
    assert replies == [0, None]
    assert out == b"abcd" + bytes(4) + b"xy\0\0" + b"long"


def test_a_records_reply_of_the_wrong_length_or_an_error_is_reported():
    with pytest.raises(ValueError, match="2 records in the replies, 3 asked for"):
        parse(b"*2\r\n$1\r\na\r\n$1\r\nb\r\n", 1, records_reply=0, record_size=1, records=3)
    with pytest.raises(ValueError, match="3 records in a reply, room for 2"):
        parse(b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", 1, records_reply=0, record_size=1, records=2)
    replies, _ = parse(b"-ERR no\r\n", 1, records_reply=0, record_size=1, records=3)
    assert isinstance(replies[0], Error)
    with pytest.raises(ValueError, match="records_reply: the first records reply"):
        parse(b":1\r\n", 1, records_reply=-1)


def test_replies_after_the_first_records_reply_fill_the_records_one_after_another():
    # a cluster node's MGETs, one per key bucket, land where each bucket's records go
    buffer = b":5\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n*0\r\n*1\r\n_\r\n-MOVED 1 x:1\r\n*1\r\n$1\r\nc\r\n"
    replies, out = parse(buffer, 6, records_reply=1, record_size=1, records=4)
    assert replies[:4] == [5, None, None, None] and replies[5] is None
    assert isinstance(replies[4], Error) and str(replies[4]) == "MOVED 1 x:1"
    assert out == b"ab\0c"


NESTED = b":0\r\n*3\r\n$4\r\nabcd\r\n_\r\n*2\r\n>1\r\n:5\r\n|1\r\n+a\r\n+b\r\n$-1\r\n"
BUFFERS = {RESP2: 5, RESP3: 7, NESTED: 2}


@given(st.sampled_from(sorted(BUFFERS)), st.data())
def test_replies_end_only_once_every_byte_is_in_however_the_bytes_arrive(buffer, data):
    count = BUFFERS[buffer]
    cuts = data.draw(st.lists(st.integers(0, len(buffer) - 1), max_size=8).map(sorted))
    scanner = native.ReplyScanner(count)
    received = bytearray(len(buffer) + 4)  # what follows the received bytes is garbage
    for cut in cuts:
        received[:cut] = buffer[:cut]
        assert scanner.feed(received, cut) == -1
    received[:len(buffer)] = buffer
    received[len(buffer):] = b"junk"
    assert scanner.feed(received, len(buffer) + 4) == len(buffer)
    assert native.ReplyScanner(count).feed(buffer, len(buffer)) == len(buffer)


@pytest.mark.parametrize("bad", [b"?1\r\n", b"$x\r\n", b"*1234567890123456789012\r\n"])
def test_a_stream_that_is_not_resp_is_an_error(bad):
    with pytest.raises(ValueError, match="RESP"):
        native.ReplyScanner(1).feed(bad, len(bad))


resp_bytes = st.lists(st.sampled_from([b"*", b"%", b"~", b">", b"|", b"$", b"!", b"=", b"+", b"-", b":", b"_", b"#",
                                       b",", b"(", b"1", b"2", b"-1", b"0", b"\r\n", b"\r", b"\n", b"x", b"abc",
                                       b"\x80", b"\xff"]),
                      max_size=40).map(b"".join)


@settings(max_examples=400)
@given(st.one_of(st.binary(max_size=200), resp_bytes, st.tuples(st.binary(max_size=3), resp_bytes).map(b"".join)),
       st.integers(1, 4), st.integers(-1, 3), st.integers(1, 8),
       st.integers(0, 4))
def test_any_bytes_are_parsed_or_refused_never_read_out_of_bounds(buffer, count, records_reply, record_size, records):
    """Garbage, truncated or hostile streams end in a value, -1 or a ValueError: the C code stays in the buffer (run
    under valgrind once: no invalid read)."""
    try:
        end = native.ReplyScanner(count).feed(buffer, len(buffer))
    except ValueError:
        return
    assert end == -1 or 0 < end <= len(buffer)
    try:
        replies, out = parse(buffer, count, records_reply, record_size, records)
    except (ValueError, TypeError):  # TypeError: a map key that is not hashable
        return
    assert end > 0 and len(replies) == count and len(out) == record_size * records
