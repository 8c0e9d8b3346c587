"""Hypothesis strategies for hostile input: what a careless or malicious client can put in a JSON body.

Strings include lone surrogates (hypothesis's default text leaves them out), control characters of every range,
line separators and overlong values; times include every ISO-8601 year with extreme offsets, numbers beyond
float range and milliseconds; documents nest deeper than any limit. Used by the API fuzz tests and by the
unit properties of the validators.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

NASTY_STRINGS = (
    "", " ", "\t", "\ud800", "a\udfffb", "\udbff\udc00", "\x00", "a\x00b", "\x1f", "\x7f", "\x85", "\x9f",
    "line\nbreak", "\r", "\u2028", "\u2029", "\ufeff", "\u200b", "\U0001f600", "x" * 257, "x" * 5000,
    "$GENRE", '"', "\\", "{}", "null", "1e400", "NaN", "-0", "../../etc/passwd", "'; DROP TABLE items;--",
)

# Every code point, surrogates and controls included, and the nasty ones often.
any_char = st.characters(exclude_categories=())
hostile_text = st.one_of(
    st.sampled_from(NASTY_STRINGS),
    st.text(alphabet=any_char, max_size=40),
    st.builds(lambda a, b, c: a + b + c, st.text(max_size=8), st.sampled_from(NASTY_STRINGS), st.text(max_size=8)),
)
safe_id = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)


def _iso(moment: datetime, offset_minutes: int, style: int) -> str:
    zone = timezone(timedelta(minutes=offset_minutes))
    text = moment.replace(tzinfo=zone).isoformat()
    return text.replace("+00:00", "Z") if style == 1 else text


iso_times = st.builds(
    _iso,
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    st.integers(-14 * 60 + 1, 14 * 60 - 1),
    st.integers(0, 1),
)
hostile_number = st.one_of(
    st.integers(-(10**20), 10**20),
    st.sampled_from([0, -1, 1, 2**31, 2**32, 2**53 + 1, 2**63, 10**400, -(10**400), 1714564800000]),
    st.floats(allow_nan=True, allow_infinity=True),
)
hostile_time = st.one_of(iso_times, hostile_number, hostile_text, st.booleans(), st.none())
scalars = st.one_of(st.none(), st.booleans(), hostile_number, hostile_text)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(hostile_text, inner, max_size=4)),
    max_leaves=12,
)


def nested(depth: int, leaf: Any = 1) -> Any:
    """A document `depth` levels deep (lists and objects alternating)."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


deep_json = st.integers(20, 800).map(nested)  # json.dumps can still write it; deeper texts: deep_text
deep_text = st.builds(lambda n, open_, close: (open_ * n + close * n).encode(), st.integers(30, 200_000),
                      st.sampled_from(["[", '{"a":']), st.sampled_from(["]", "}"]))


def fields(known: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """A body with any subset of `known` fields (each valid-ish or hostile) plus, sometimes, unknown ones."""
    return st.builds(
        lambda chosen, extra: {**chosen, **extra},
        st.fixed_dictionaries({}, optional={name: st.one_of(strategy, json_values, deep_json)
                                            for name, strategy in known.items()}),
        st.dictionaries(hostile_text, json_values, max_size=2),
    )


def encode(body: Any) -> bytes:
    """The JSON text of `body`: lone surrogates escaped as \\udxxx, as a JSON client may send them; NaN and
    Infinity written as JavaScript would (not JSON: the server must refuse them)."""
    return json.dumps(body).encode()


def mutated(valid: dict[str, Any], hostile: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """`valid` with one or two of its fields replaced by hostile values: most such bodies are accepted or fail on
    one field, which is where a value that passes one door and breaks a later stage would show."""
    names = sorted(hostile)
    return st.lists(st.sampled_from(names), min_size=1, max_size=2, unique=True).flatmap(
        lambda chosen: st.fixed_dictionaries({name: hostile[name] for name in chosen}).map(
            lambda changes: {**valid, **changes}))
