"""Impression events, their A/B exposure records, delivery retries, and the TTL cache."""

from __future__ import annotations

import pytest

from recsys.events import parse_event_record
from recsys.recommend.exposure import ShownList, SideEffects, deliver, exposure_record, impression_events
from recsys.recommend.stores import TtlCache


def events():
    return impression_events(user_id="u1", session_id="s1", recommendation_id="r1", variant="challenger",
                             route="showcase", now=1_714_557_600.0, degraded=True, latency_ms=12.345,
                             lists=[ShownList(("a", "b"), "for_you", 0), ShownList((), "empty", 1),
                                    ShownList(("c",), "new", 2)])


def test_one_impression_event_per_shown_list_in_order():
    found = events()
    assert [e.event_id for e in found] == ["r1-0", "r1-2"]  # empty shelves log nothing
    first = found[0]
    assert (first.event_type, first.user_id, first.session_id, first.recommendation_id) == ("impression", "u1", "s1",
                                                                                            "r1")
    assert first.impression == ("a", "b")
    assert first.properties == {"variant": "challenger", "route": "showcase", "degraded": "true",
                                "latency_ms": "12.35", "shelf": "for_you", "shelf_position": "0"}
    assert parse_event_record(first.to_dict()) == first  # a valid canonical event for the tracker's sinks


def test_exposure_record_for_the_ab_job():
    exposure = exposure_record(events()[1])
    assert (exposure.recommendation_id, exposure.variant, exposure.user_id, exposure.items) == ("r1", "challenger",
                                                                                                "u1", ("c",))
    assert exposure.degraded is True and exposure.latency_ms == pytest.approx(12.35)


class FlakySink:
    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.delivered: list[str] = []

    def deliver(self, batch):
        if self.failures:
            self.failures -= 1
            return {event.event_id: "Throttled" for event in batch}
        self.delivered += [event.event_id for event in batch]
        return {}


def test_delivery_retries_what_a_sink_did_not_take():
    sink = FlakySink(failures=2)
    assert deliver([sink], events()) == {}
    assert sink.delivered == ["r1-0", "r1-2"]
    assert deliver([FlakySink(failures=5)], events()) == {"r1-0": "flaky: Throttled", "r1-2": "flaky: Throttled"}


def test_side_effects_run_in_order_and_survive_failures():
    done = []
    for background in (False, True):
        effects = SideEffects(background)
        effects.submit(lambda: done.append(1))
        effects.submit(lambda: 1 / 0)
        effects.submit(lambda: done.append(2))
        effects.drain()
        effects.close()
        assert effects.failures == 1
    assert done == [1, 2, 1, 2]


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_ttl_cache_loads_missing_keys_once_per_ttl():
    clock = Clock()
    cache = TtlCache(ttl_s=10.0, clock=clock)
    loads = []

    def loader(keys):
        loads.append(list(keys))
        return {key: {"v": key} for key in keys if key != "absent"}

    assert cache.get_many(["a", "b", "absent"], loader) == {"a": {"v": "a"}, "b": {"v": "b"}, "absent": {}}
    assert cache.get_many(["a", "absent", "c"], loader)["c"] == {"v": "c"}
    assert loads == [["a", "b", "absent"], ["c"]]
    clock.now = 10.0
    cache.get_many(["a"], loader)
    assert loads[-1] == ["a"]


def test_ttl_cache_does_not_cache_a_failed_load():
    cache = TtlCache(ttl_s=10.0)

    def broken(keys):
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        cache.get_many(["a"], broken)
    assert cache.get_many(["a"], lambda keys: {"a": {"x": 1}}) == {"a": {"x": 1}}
