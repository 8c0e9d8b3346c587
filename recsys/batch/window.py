"""Cutoffs and windows of the batch job, in unix seconds (UTC); pure Python.

A run at cutoff T reads events with window_start <= timestamp < T, and (for training sets) labels
from T <= timestamp < T + horizon. The lake is partitioned by UTC event date, so a window maps to
the inclusive range of partition dates it touches; the exact bounds are then applied per event.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

DAY_S = 86_400.0


def parse_cutoff(text: str) -> float:
    """Unix seconds from an ISO date (midnight UTC), an ISO datetime (UTC unless it has an offset) or unix seconds."""
    value = text.strip()
    if not value:
        raise ValueError("cutoff: empty; expected an ISO date/datetime or unix seconds")
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"cutoff: {text!r} is neither an ISO date/datetime nor unix seconds") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.timestamp()


def utc_date(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%d")


def cutoff_label(timestamp: float) -> str:
    """ISO-8601 basic form (20240301T000000Z): a path segment without ':' (Hadoop paths reject it)."""
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


@dataclass(frozen=True)
class TimeRange:
    """[start, end) in unix seconds."""

    start: float
    end: float

    def __post_init__(self) -> None:
        if not self.start < self.end:
            raise ValueError(f"time range: start {self.start} must be before end {self.end}")

    @classmethod
    def before(cls, cutoff: float, days: float) -> TimeRange:
        return cls(cutoff - days * DAY_S, cutoff)

    @classmethod
    def after(cls, cutoff: float, days: float) -> TimeRange:
        return cls(cutoff, cutoff + days * DAY_S)

    def partition_dates(self) -> tuple[str, str]:
        """First and last UTC event_date partitions holding events of the range (inclusive)."""
        last = self.end - DAY_S if self.end % DAY_S == 0 else self.end
        return utc_date(self.start), utc_date(last)
