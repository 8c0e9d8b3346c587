"""The feature writer's batch logic: which messages are handed back, what is counted, what is measured."""

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from recsys.events import Event
from recsys.tracker.consumer import QueueConsumer

NOW = 1_714_564_800.0


class StoreDown(Exception):
    pass


@dataclass
class Outcome:
    event_id: str
    status: str


class MemoryWriter:
    """Applies each event id once, like the real writer; can be made to fail."""

    def __init__(self, down=False, breaks_on=None):
        self.applied = {}
        self.down = down
        self.breaks_on = breaks_on
        self.calls = 0

    def apply(self, events):
        self.calls += 1
        if self.down:
            raise StoreDown("connection refused")
        if any(event.event_id == self.breaks_on for event in events):
            raise TypeError("cannot handle this event")
        outcomes = []
        for event in events:
            outcomes.append(Outcome(event.event_id, "duplicate" if event.event_id in self.applied else "applied"))
            self.applied.setdefault(event.event_id, event)
        return outcomes


def record(message_id, body, receive_count=1):
    return {"messageId": message_id, "body": body, "attributes": {"ApproximateReceiveCount": str(receive_count)}}


def event_record(message_id, event_id, timestamp=NOW - 2.0, received_at=NOW - 0.5):
    event = Event(event_id=event_id, user_id="u", event_type="like", timestamp=timestamp, received_at=received_at)
    return record(message_id, event.to_json())


def consumer(writer):
    return QueueConsumer(writer, store_errors=(StoreDown,), clock=lambda: NOW)


def test_a_clean_batch_is_applied_and_nothing_is_handed_back():
    writer = MemoryWriter()
    report = consumer(writer).consume([event_record("m1", "e1"), event_record("m2", "e2")])
    assert report.response() == {"batchItemFailures": []}
    assert (report.applied, report.duplicates, report.failed, report.processed) == (2, 0, 0, 2)
    assert set(writer.applied) == {"e1", "e2"}


def test_reflection_time_is_measured_from_event_time_and_from_arrival():
    report = consumer(MemoryWriter()).consume([event_record("m1", "e1", timestamp=NOW - 2.0, received_at=NOW - 0.5)])
    assert report.reflection_ms == [2000.0]
    assert report.arrival_to_written_ms == [500.0]


def test_poison_messages_are_handed_back_and_the_rest_is_applied():
    writer = MemoryWriter()
    records = [event_record("m1", "e1"), record("bad", "{not json", receive_count=3), event_record("m2", "e2")]
    report = consumer(writer).consume(records)
    assert report.response() == {"batchItemFailures": [{"itemIdentifier": "bad"}]}
    assert report.applied == 2 and set(writer.applied) == {"e1", "e2"}
    (poison,) = report.poison
    assert (poison.message_id, poison.receive_count) == ("bad", 3) and "not JSON" in poison.reason


def test_redelivered_events_count_once_and_are_not_handed_back():
    writer = MemoryWriter()
    consumer(writer).consume([event_record("m1", "e1")])
    report = consumer(writer).consume([event_record("m1-again", "e1"), event_record("m2", "e2")])
    assert (report.applied, report.duplicates, report.failed) == (1, 1, 0)
    assert report.reflection_ms == [2000.0]  # duplicates were written earlier: not measured again


def test_a_store_outage_hands_back_the_whole_batch():
    report = consumer(MemoryWriter(down=True)).consume([event_record("m1", "e1"), record("bad", "[]")])
    assert [item["itemIdentifier"] for item in report.response()["batchItemFailures"]] == ["bad", "m1"]
    assert report.applied == 0 and report.store_errors == ["StoreDown: connection refused"]


def test_an_event_that_breaks_the_writer_holds_back_no_other():
    writer = MemoryWriter(breaks_on="e2")
    report = consumer(writer).consume([event_record("m1", "e1"), event_record("m2", "e2"), event_record("m3", "e3")])
    assert report.response() == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert set(writer.applied) == {"e1", "e3"}
    assert "TypeError: cannot handle this event" in report.poison[0].reason


def test_an_event_the_writer_refuses_is_poison_without_touching_the_rest():
    def validate(event):
        if event.event_id == "bad":
            raise ValueError("event 'bad': timestamp must be unix seconds")

    writer = MemoryWriter()
    records = [event_record("m1", "e1"), event_record("m2", "bad")]
    report = QueueConsumer(writer, store_errors=(StoreDown,), validate=validate, clock=lambda: NOW).consume(records)
    assert report.response() == {"batchItemFailures": [{"itemIdentifier": "m2"}]}
    assert writer.calls == 1 and set(writer.applied) == {"e1"}
    assert report.poison[0].reason == "event 'bad': timestamp must be unix seconds"


def test_an_empty_batch_does_nothing():
    writer = MemoryWriter()
    assert consumer(writer).consume([]).response() == {"batchItemFailures": []} and writer.calls == 0


@given(st.lists(st.tuples(st.sampled_from(["ok", "poison", "dup"]), st.integers(0, 5)), max_size=20))
def test_every_message_is_either_handed_back_or_done_exactly_once(plan):
    writer = MemoryWriter()
    records = []
    for position, (kind, key) in enumerate(plan):
        body_record = record(f"m{position}", "x") if kind == "poison" else event_record(f"m{position}", f"e{key}")
        records.append(body_record)
    report = consumer(writer).consume(records)
    failed = {item["itemIdentifier"] for item in report.response()["batchItemFailures"]}
    assert failed == {f"m{position}" for position, (kind, _) in enumerate(plan) if kind == "poison"}
    assert report.processed + report.failed == len(records)
    assert report.applied == len(writer.applied) == len({key for kind, key in plan if kind != "poison"})
