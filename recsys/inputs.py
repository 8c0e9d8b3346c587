"""One rule for the strings, times and nesting of what enters the platform.

Both APIs, the batch jobs, the dataset importer, the queue consumer and the lake transform check their input
with these functions, so that what one door accepts every later stage accepts too: a client can never send
something that turns into a poison message downstream.

- Identifiers (user, item, session, event type, filter names, property keys): a non-blank string of at most
  `max_chars` characters, well-formed Unicode (no lone surrogates: they cannot be encoded as UTF-8), with no
  control character (Unicode category Cc: C0, DEL and C1) and no line or paragraph separator, so that an id
  sent to one API can be sent to every other one, and written to CSV, JSON lines and Redis keys alike.
- Free text (property values, metadata columns, filter expressions): well-formed Unicode, and of the control
  characters only tab, line feed and carriage return.
- Times: unix seconds (a JSON number) or an ISO-8601 string with a timezone, in every format within
  [`MIN_TIME_S`, `MAX_TIME_S`): after the epoch and before 2100.
- JSON documents nest at most `MAX_JSON_DEPTH` levels.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

MIN_TIME_S = 1.0  # 1970-01-01T00:00:01Z: the feature store keeps 0 for "no event"
MAX_TIME_S = 4_102_444_800.0  # 2100-01-01T00:00:00Z, exclusive
MAX_ID_CHARS = 256
MAX_PROPERTY_CHARS = 4096  # the longest event property value any door accepts
MAX_JSON_DEPTH = 32
FREE_TEXT_CONTROLS = frozenset("\t\n\r")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Characters refused in identifiers beyond the controls: they end a line in some reader (CSV, JSON lines, logs).
_LINE_BREAKS = frozenset("\u2028\u2029\x85")
TIME_HINT = "unix seconds or an ISO-8601 time with a timezone, e.g. 2024-05-01T12:00:00Z"


def iso(seconds: float) -> str:
    return (_EPOCH + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


TIME_RANGE_TEXT = f"between {iso(MIN_TIME_S)} and {iso(MAX_TIME_S)}"


def type_name(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _surrogate(char: str) -> bool:
    return "\ud800" <= char <= "\udfff"


def bad_char(value: str, *, free_text: bool = False) -> int | None:
    """The index of the first character the rule refuses in `value` (an identifier, or free text), or None."""
    if value.isascii() and value.isprintable():
        return None  # the common case, without a per-character loop
    for index, char in enumerate(value):
        if _surrogate(char) or (unicodedata.category(char) == "Cc" and not (free_text and char in FREE_TEXT_CONTROLS)):
            return index
        if not free_text and char in _LINE_BREAKS:
            return index
    return None


def describe_char(char: str) -> str:
    """A refused character, for a message: its code point and why it is refused."""
    if _surrogate(char):
        kind = "a lone surrogate (not valid Unicode)"
    elif unicodedata.category(char) == "Cc":
        kind = "a control character"
    else:
        kind = "a line break"
    return f"U+{ord(char):04X}, {kind}"


def text_problem(value: Any, max_chars: int, *, free_text: bool = False) -> str | None:
    """Why `value` is not an acceptable identifier (or free text), or None."""
    if not isinstance(value, str):
        return f"must be a string, got {type_name(value)}"
    if not free_text and not value.strip():
        return "must not be empty or blank"
    if len(value) > max_chars:
        return f"has {len(value)} characters; the limit is {max_chars}"
    index = bad_char(value, free_text=free_text)
    if index is not None:
        return f"must not contain {describe_char(value[index])}, at character {index}"
    return None


def id_problem(value: Any, max_chars: int = MAX_ID_CHARS) -> str | None:
    return text_problem(value, max_chars)


def field_label(name: Any) -> str:
    """A client's field name as an error message names it: as sent when it is a short, well-formed id, else
    quoted (an empty, blank or control-laden name would otherwise name nothing readable)."""
    text = str(name)
    return text if id_problem(text, 64) is None else repr(text[:64])


def finite_number(value: Any) -> float | None:
    """`value` as a finite float, or None when it is not a finite JSON number (booleans are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer literal beyond float range
        return None
    return number if math.isfinite(number) else None


def parse_time(value: Any, *, earliest: float = MIN_TIME_S) -> tuple[float | None, str | None]:
    """(unix seconds, None) for a time in the platform's range, else (None, the problem).

    Numbers are unix seconds; strings are ISO-8601 with a timezone. Every year 1-9999 parses without overflow,
    and is then held to the same range as a number.
    """
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None, f"must be {TIME_HINT}"
        if parsed.tzinfo is None:
            return None, "an ISO-8601 time needs a timezone (Z or +hh:mm)"
        try:
            seconds = (parsed - _EPOCH).total_seconds()
        except OverflowError:  # year 1 or 9999 with an offset that leaves datetime's range
            seconds = -math.inf if parsed.year < 1970 else math.inf
        shown = repr(value)
    else:
        number = finite_number(value)
        if number is None:
            return None, f"must be {TIME_HINT}, got {type_name(value)}"
        seconds, shown = number, repr(value)
    if not earliest <= seconds < MAX_TIME_S:
        in_milliseconds = not isinstance(value, str) and earliest <= seconds / 1000 < MAX_TIME_S
        hint = " (milliseconds? send seconds)" if in_milliseconds else ""
        return None, f"{shown} is outside the platform's time range: must be {time_range_text(earliest)}{hint}"
    return seconds, None


def time_range_text(earliest: float = MIN_TIME_S) -> str:
    return TIME_RANGE_TEXT if earliest == MIN_TIME_S else f"between {iso(earliest)} and {iso(MAX_TIME_S)}"


def json_depth_problem(value: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why a decoded JSON document nests too deeply, or None. Iterative: any depth is safe to measure."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > max_depth:
            return f"nests more than {max_depth} levels of arrays and objects"
        stack.extend((child, depth + 1) for child in children)
    return None
