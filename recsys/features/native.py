"""The FeatureReader's native decoder (`_decode.c`): its loader and its plan.

The reader decodes item records, parses its replies and keeps item records across reads (`ItemCache`) with the
extension when it is built (`python recsys/features/build_native.py`; make install runs it), else with numpy and
redis-py's parser, and no item cache; both give the same values (tests/unit/features/test_native_decoder.py).
"""

from __future__ import annotations

import re
import struct
from typing import Any

from recsys.features import layout
from recsys.features.spec import DAY, features_of

try:
    from recsys.features._decode import ItemCache, ItemDecoder, ReplyScanner, pack_mget, parse_replies
except ImportError:  # not built here: the reader decodes with numpy and reads replies with redis-py
    ItemCache = ItemDecoder = ReplyScanner = pack_mget = parse_replies = None  # type: ignore[assignment,misc]


def _catalog_offset(field: int) -> int:
    """Byte offset of the catalog field at position `field` of layout.CATALOG_FORMAT (creator, franchise, topics,
    price, created, flags)."""
    byte_order, codes = layout.CATALOG_FORMAT[0], re.findall(r"\d*[a-zA-Z]", layout.CATALOG_FORMAT[1:])
    return struct.calcsize(byte_order + "".join(codes[:field]))


def decoder_plan(record: layout.RecordLayout, columns: tuple[str, ...], salts: dict[str, int]) -> dict[str, Any]:
    """What the decoder needs to know of a record layout ("item" or "creator") and of the matrix columns, all from
    the spec. A creator record has no catalog section: only its counters are decoded."""
    at = {name: position for position, name in enumerate(columns)}
    counted = [spec for spec in features_of(record.entity) if spec.counter is not None]
    windowed = {(spec.window.name, spec.counter): at[spec.name] for spec in counted if spec.window is not None}
    plan: dict[str, Any] = {
        "record_size": record.size,
        "counter_offset": record.header_bytes,
        "columns": len(columns),
        "catalog": int(record.header_bytes > 0),
        "totals": [(record.total(str(spec.counter)), at[spec.name]) for spec in counted if spec.window is None],
        "rings": [
            (ring.first, ring.bucket_seconds, ring.buckets, ring.slot_words,
             [windowed.get((ring.window.name, kind), -1) for kind in ring.kinds])
            for ring in record.rings
        ],
        "creator_columns": [at[spec.name] for spec in features_of("creator") if spec.name in at],
    }
    if not plan["catalog"]:
        return plan
    return plan | {
        "creator_offset": _catalog_offset(0),
        "franchise_offset": _catalog_offset(1),
        "topics_offset": _catalog_offset(2),
        "max_topics": layout.MAX_TOPICS,
        "price_offset": _catalog_offset(3),
        "created_offset": _catalog_offset(4),
        "flags_offset": _catalog_offset(5),
        "flag_known": layout.FLAG_KNOWN,
        "flag_paid": layout.FLAG_PAID,
        "flag_animated": layout.FLAG_ANIMATED,
        "price_column": at["item_price"],
        "paid_column": at["item_is_paid"],
        "animated_column": at["item_is_animated_series"],
        "age_column": at["item_age_days"],
        "affinity_topic_column": at["affinity_topic"],
        "affinity_creator_column": at["affinity_creator"],
        "affinity_franchise_column": at["affinity_franchise"],
        "profile_match_column": at["profile_topic_match"],
        "creator_salt": salts["c"],
        "franchise_salt": salts["f"],
        "day_seconds": DAY,
    }
