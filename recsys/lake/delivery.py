"""How the events delivery stream writes the lake: S3 prefixes as Firehose expressions, and their evaluation.

The CDK stream (stacks/constructs/firehose_to_lake.py) is configured with these expressions, and the local
stand-in (recsys.lake.local_firehose) evaluates them with `render_prefix`, so both write the same keys:

- delivered events: `events/event_date=YYYY-MM-DD/<stream>-1-<yyyy-MM-dd-HH-mm-ss>-<uuid>.jsonl.gz`, the date
  taken from the `event_date` partition key the transform Lambda returns (recsys.lake.transform);
- failed records: `events-errors/<error-output-type>/<yyyy-MM-dd of arrival>/...`, one JSON error document per line.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping

from recsys.events import EVENTS_ERROR_PREFIX, EVENTS_PREFIX

PARTITION_KEY = "event_date"
EVENTS_S3_PREFIX = f"{EVENTS_PREFIX}/{PARTITION_KEY}=!{{partitionKeyFromLambda:{PARTITION_KEY}}}/"
ERRORS_S3_PREFIX = f"{EVENTS_ERROR_PREFIX}/!{{firehose:error-output-type}}/!{{timestamp:yyyy-MM-dd}}/"
# Overrides Firehose's default `.gz`: the lake's readers and the Glue table expect JSON lines, gzipped.
FILE_EXTENSION = ".jsonl.gz"
# The error-output-type Firehose uses for records the transform Lambda failed or could not process.
PROCESSING_FAILED = "processing-failed"

_EXPRESSION = re.compile(r"!\{([A-Za-z]+):([^}]*)\}")
# Java DateTimeFormatter letters Firehose accepts in !{timestamp:...}, as strftime directives.
_DATE_TOKENS = {"yyyy": "%Y", "MM": "%m", "dd": "%d", "HH": "%H", "mm": "%M", "ss": "%S"}
_DATE_TOKEN = re.compile("|".join(sorted(_DATE_TOKENS, key=len, reverse=True)))


class PrefixError(ValueError):
    """An S3 prefix expression cannot be evaluated for a record; the message names the expression."""


def _timestamp(pattern: str, at: float) -> str:
    leftover = _DATE_TOKEN.sub("", pattern)
    if re.search(r"[A-Za-z]", leftover):
        raise PrefixError(f"!{{timestamp:{pattern}}}: only {', '.join(_DATE_TOKENS)} are supported")
    return time.strftime(_DATE_TOKEN.sub(lambda m: _DATE_TOKENS[m.group(0)], pattern), time.gmtime(at))


def render_prefix(
    template: str,
    *,
    arrival: float,
    partition_keys: Mapping[str, str] | None = None,
    error_output_type: str | None = None,
) -> str:
    """`template` with its Firehose expressions evaluated for one record arriving at `arrival` (unix seconds)."""

    def evaluate(match: re.Match[str]) -> str:
        namespace, name = match.group(1), match.group(2)
        if namespace == "partitionKeyFromLambda":
            value = (partition_keys or {}).get(name)
            if not value:
                raise PrefixError(f"!{{partitionKeyFromLambda:{name}}}: the transform returned no {name!r} key")
            return value
        if namespace == "firehose" and name == "error-output-type":
            if error_output_type is None:
                raise PrefixError("!{firehose:error-output-type}: only error prefixes may use it")
            return error_output_type
        if namespace == "timestamp":
            return _timestamp(name, arrival)
        raise PrefixError(f"!{{{namespace}:{name}}}: not an expression this stand-in evaluates")

    return _EXPRESSION.sub(evaluate, template)


def object_name(stream_name: str, first_arrival: float, unique: str) -> str:
    """Firehose's object name: <stream>-<stream version>-<yyyy-MM-dd-HH-mm-ss>-<random>, plus the extension."""
    stamp = time.strftime("%Y-%m-%d-%H-%M-%S", time.gmtime(first_arrival))
    return f"{stream_name}-1-{stamp}-{unique}{FILE_EXTENSION}"
