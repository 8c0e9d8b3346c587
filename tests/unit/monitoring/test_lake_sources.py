"""The scheduled A/B job reads the lake: impression events are its exposures, and old partitions are skipped."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from recsys.events import Event
from recsys.monitoring import storage
from recsys.monitoring.abtest import Exposure, _Rejects, read_exposures, read_outcomes

T0 = datetime(2024, 5, 10, 12, tzinfo=timezone.utc).timestamp()
DAY = 86400.0


def _impression(event_id: str, variant: str | None, t: float = T0, **properties: str) -> Event:
    props = {"route": "recommendations", "degraded": "false", "latency_ms": "12.50", **properties}
    if variant is not None:
        props["variant"] = variant
    return Event(event_id, "u1", "impression", t, recommendation_id=f"r-{event_id}", impression=("a", "b"),
                 properties=props)


def _write_lake(root, days: dict[str, list[Event]]) -> None:
    for day, events in days.items():
        folder = root / "events" / f"event_date={day}"
        folder.mkdir(parents=True)
        (folder / "part-0.jsonl").write_text("".join(event.to_json() + "\n" for event in events))


def test_an_impression_event_is_the_exposure_the_recommend_api_logged() -> None:
    exposure = Exposure.from_impression(_impression("e1", "challenger", degraded="true"))
    assert exposure == Exposure(recommendation_id="r-e1", variant="challenger", user_id="u1", timestamp=T0,
                                latency_ms=12.5, degraded=True, items=("a", "b"))


@pytest.mark.parametrize(("variant", "extra", "message"), [
    (None, {}, "properties.variant"),
    ("champion", {"latency_ms": "fast"}, "properties.latency_ms: 'fast' is not a number"),
])
def test_an_impression_without_a_usable_variant_or_latency_is_rejected_by_field(variant, extra, message) -> None:
    with pytest.raises(ValueError, match=message):
        Exposure.from_impression(_impression("e1", variant, **extra))


def test_lake_events_give_exposures_from_impressions_and_outcomes_from_the_rest(tmp_path) -> None:
    click = Event("c1", "u1", "click", T0 + 5, item_id="a", recommendation_id="r-e1")
    _write_lake(tmp_path, {"2024-05-10": [_impression("e1", "champion"), click,
                                          _impression("e2", None)]})
    rejects = _Rejects()
    exposures = list(read_exposures(str(tmp_path / "events"), None, rejects))
    outcomes = list(read_outcomes(str(tmp_path / "events"), None, 300.0, _Rejects()))
    assert [e.recommendation_id for e in exposures] == ["r-e1"]
    assert rejects.count == 1 and "part-0.jsonl:3: properties.variant" in rejects.errors[0]
    assert [(o.type, o.recommendation_id) for o in outcomes] == [("click", "r-e1")]


def test_partitions_more_than_a_day_before_the_window_are_not_read(tmp_path) -> None:
    _write_lake(tmp_path, {
        "2024-05-08": [_impression("old", "champion", T0 - 2 * DAY)],
        "2024-05-09": [_impression("late", "champion", T0 - DAY)],
        "2024-05-10": [_impression("now", "champion")],
    })
    (tmp_path / "events" / "event_date=2024-05-08" / "part-0.jsonl").write_text("not json: must not be read\n")
    lines = list(storage.iter_lines(str(tmp_path / "events"), since=T0 - 3600))
    assert {line.location.split("event_date=")[1][:10] for line in lines} == {"2024-05-09", "2024-05-10"}
    assert len(list(storage.iter_lines(str(tmp_path / "events")))) == 3
    rejects = _Rejects()
    assert [e.recommendation_id for e in read_exposures(str(tmp_path / "events"), T0 - 3600, rejects)] == ["r-now"]
    assert rejects.count == 0
