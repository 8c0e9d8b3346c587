"""Exposure logging: every response becomes impression events on the event tracker's path, off the hot path.

One canonical `Event` (event_type "impression") per list shown — one for a recommendation list, one per shelf of
a showcase — carries the recommendation id, the user, the items in the order shown (`impression`: the position
of an item is its index) and, as properties, the variant that served it, the route, the shelf and its position
on the page, whether the response was degraded and its latency. The events go to the tracker's sinks (SNS to
the feature writer, Firehose to the lake), where the A/B job (`recsys.monitoring.abtest`, via
`exposure_record`) and "not interested" find them.

`SideEffects` runs the response's writes (events, impression history, the daily showcase snapshot) on a
background thread in long-lived processes, or inline (`background=False`, the Lambda: an execution
environment is frozen between invocations, so nothing may be left pending).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from recsys.events import IMPRESSION, Event
from recsys.monitoring.abtest import Exposure
from recsys.tracker.sinks import EventSink

log = logging.getLogger(__name__)
ATTEMPTS = 3


@dataclass(frozen=True)
class ShownList:
    items: tuple[str, ...]
    shelf_id: str | None = None
    shelf_position: int | None = None


def impression_events(*, user_id: str, session_id: str | None, recommendation_id: str, variant: str, route: str,
                      lists: Sequence[ShownList], now: float, degraded: bool, latency_ms: float) -> list[Event]:
    events = []
    for index, shown in enumerate(lists):
        if not shown.items:
            continue
        properties = {"variant": variant, "route": route, "degraded": "true" if degraded else "false",
                      "latency_ms": f"{latency_ms:.2f}"}
        if shown.shelf_id is not None:
            properties["shelf"] = shown.shelf_id
            properties["shelf_position"] = str(shown.shelf_position)
        events.append(Event(event_id=f"{recommendation_id}-{index}", user_id=user_id, event_type=IMPRESSION,
                            timestamp=now, session_id=session_id, recommendation_id=recommendation_id,
                            impression=shown.items, properties=properties, received_at=now))
    return events


def exposure_record(event: Event) -> Exposure:
    """The A/B job's exposure record of an impression event logged here."""
    properties = event.properties
    return Exposure(recommendation_id=event.recommendation_id or event.event_id, variant=properties["variant"],
                    user_id=event.user_id, timestamp=event.timestamp,
                    latency_ms=float(properties["latency_ms"]) if "latency_ms" in properties else None,
                    degraded=properties.get("degraded") == "true", items=tuple(event.impression))


def deliver(sinks: Sequence[EventSink], events: Sequence[Event]) -> dict[str, str]:
    """Send `events` to every sink, retrying what a sink did not take; {event_id: reason} of what never made it."""
    lost: dict[str, str] = {}
    for sink in sinks:
        pending = list(events)
        for _ in range(ATTEMPTS):
            failed = sink.deliver(pending)
            pending = [event for event in pending if event.event_id in failed]
            if not pending:
                break
        lost.update({event.event_id: f"{sink.name}: {failed[event.event_id]}" for event in pending})
    return lost


class SideEffects:
    """Runs tasks inline or on one background thread (in order); a failing task is logged, never raised."""

    def __init__(self, background: bool, max_pending: int = 10_000) -> None:
        self.background = background
        self.failures = 0
        self._queue: queue.Queue[Callable[[], None] | None] = queue.Queue(max_pending)
        self._thread: threading.Thread | None = None
        if background:
            self._thread = threading.Thread(target=self._work, name="recommend-side-effects", daemon=True)
            self._thread.start()

    def submit(self, task: Callable[[], None]) -> None:
        if self._thread is None:
            self._run(task)
        else:
            self._queue.put(task)

    def _run(self, task: Callable[[], None]) -> None:
        try:
            task()
        except Exception:  # noqa: BLE001 - a side effect must never fail the response
            self.failures += 1
            log.exception("a recommend side effect failed")

    def _work(self) -> None:
        while True:
            task = self._queue.get()
            try:
                if task is None:
                    return
                self._run(task)
            finally:
                self._queue.task_done()

    def drain(self) -> None:
        """Wait until every submitted task ran (tests, shutdown)."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None
