"""The whole real-time path, on the local stand-ins: HTTP POST /events on the local API -> event-tracker handler ->
SNS (moto) -> SQS (raw delivery) -> local event source -> feature-writer handler -> Valkey -> FeatureReader."""

import os
import signal
import time

import pytest

from recsys import aws, store
from recsys.events import Event
from recsys.features import FeatureReader
from recsys.local.http_api import post_json
from recsys.local.realtime import cold_start, replay_events, serve_realtime_path
from recsys.local.services import start_valkey
from tests.delivery import wait_for_messages



@pytest.fixture
def path(local_resources, stage_config, redis_client):
    # Driven step by step; failed messages are retried at once instead of after the visibility timeout.
    settings = {"batch_size": 10, "batching_window_s": 0, "retry_delay_s": 0}
    with serve_realtime_path(local_resources, stage_config, run_in_thread=False, **settings) as served:
        yield served


def post_events(path, user_id, *events):
    return post_json(path.api.url + "/events", {"user_id": user_id, "session_id": "s1", "events": list(events)})


def like(item_id, **fields):
    return {"event_type": "like", "item_id": item_id, "sent_at": time.time() - 30, **fields}


def features(client, stage_config, user_id, item_ids):
    return FeatureReader(client, stage_config.pit_features).read(user_id, item_ids)


def queue_depths(local_resources):
    depths = []
    for url in (local_resources.feature_queue_url, local_resources.feature_dlq_url):
        attributes = aws.client("sqs").get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        depths.append(sum(int(value) for value in attributes.values()))
    return tuple(depths)


def test_a_posted_event_becomes_a_readable_feature(path, redis_client, stage_config, local_resources):
    item = {"ITEM_ID": "show-7", "GENRES": "comedy|drama", "CREATOR": "c-1"}
    assert post_json(path.api.url + "/items", {"items": [item]}) == (200, {"upserted": 1})
    status, answer = post_events(
        path,
        "u1",
        like("show-7", event_id="e-like"),
        {"event_type": "listen", "item_id": "show-7", "event_value": 400, "sent_at": time.time() - 20},
    )
    assert status == 200 and answer["accepted"] == 2
    assert features(redis_client, stage_config, "u1", ["show-7"]).items["show-7"]["item_likes"] == 0
    wait_for_messages(local_resources.feature_queue_url, 2)

    summary = path.runner.run_until_empty()

    assert (summary.received, summary.deleted) == (2, 2)
    snapshot = features(redis_client, stage_config, "u1", ["show-7"])
    show = snapshot.items["show-7"]
    assert (show["item_likes"], show["item_plays"], show["item_qualified_sessions"]) == (1, 1, 1)
    assert (show["item_events_1h"], show["creator_plays"]) == (2, 1)
    assert show["affinity_topic"] > 0 and show["affinity_creator"] > 0
    assert (snapshot.user["user_events"], snapshot.user["user_events_like"]) == (2, 1)
    assert queue_depths(local_resources) == (0, 0)


def test_a_poison_message_ends_in_the_dlq_while_the_rest_of_its_batch_is_applied(
    path, redis_client, stage_config, local_resources
):
    assert post_events(path, "u1", like("a"), like("b"))[0] == 200
    poison = '{"event_id": "p", "user_id": "u1"}'
    aws.client("sns").publish(TopicArn=local_resources.events_topic_arn, Message=poison)
    wait_for_messages(local_resources.feature_queue_url, 3)

    summary = path.runner.run_until_empty()

    assert len(summary.batches[0].message_ids) == 3  # one batch: the poison and the good events
    assert summary.batches[0].deleted == 2
    assert summary.received == 2 + stage_config.queue.max_receive_count
    snapshot = features(redis_client, stage_config, "u1", ["a", "b"])
    assert [snapshot.items[i]["item_likes"] for i in ("a", "b")] == [1, 1] and snapshot.user["user_events"] == 2
    dead = aws.client("sqs").receive_message(QueueUrl=local_resources.feature_dlq_url, MaxNumberOfMessages=10)
    assert [message["Body"] for message in dead["Messages"]] == [poison]


def test_duplicate_delivery_counts_once(path, redis_client, stage_config, local_resources):
    for _ in range(2):  # the client retries the same event
        assert post_events(path, "u1", like("a", event_id="dup-1"))[0] == 200
    wait_for_messages(local_resources.feature_queue_url, 1)
    path.runner.run_until_empty()
    # Once more after it was applied, and SNS delivers that message twice (at-least-once delivery).
    assert post_events(path, "u1", like("a", event_id="dup-1"))[0] == 200
    wait_for_messages(local_resources.feature_queue_url, 1)
    aws.client("sns").publish(TopicArn=local_resources.events_topic_arn, Message=_only_message(local_resources))
    wait_for_messages(local_resources.feature_queue_url, 2)

    summary = path.runner.run_until_empty()

    assert summary.failed == 0 and queue_depths(local_resources) == (0, 0)
    snapshot = features(redis_client, stage_config, "u1", ["a"])
    assert snapshot.items["a"]["item_likes"] == 1 and snapshot.user["user_events"] == 1


def _only_message(local_resources):
    """The body of the one message in the queue, left in the queue."""
    sqs = aws.client("sqs")
    (message,) = sqs.receive_message(QueueUrl=local_resources.feature_queue_url, MaxNumberOfMessages=10)["Messages"]
    sqs.change_message_visibility(
        QueueUrl=local_resources.feature_queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
    )
    return message["Body"]


def test_a_store_outage_fails_the_batch_and_a_retry_makes_the_totals_exact(
    path, stage_config, local_resources, tmp_path, monkeypatch
):
    import redis

    valkey = start_valkey(tmp_path)  # our own server: freezing it leaves the session's Valkey alone
    monkeypatch.setenv("RECSYS_REDIS_URL", valkey.url)
    monkeypatch.setattr(store, "SOCKET_TIMEOUT_S", 0.3)  # the outage surfaces in a fraction of a second
    cold_start()
    client = redis.Redis.from_url(valkey.url)
    try:
        assert post_events(path, "u1", like("a"), like("b"), like("c"))[0] == 200
        wait_for_messages(local_resources.feature_queue_url, 3)
        assert path.runner.run_until_empty().deleted == 3

        view = {"event_type": "view", "sent_at": time.time()}
        assert post_events(path, "u1", like("a"), like("b"), like("d"), view)[0] == 200
        wait_for_messages(local_resources.feature_queue_url, 4)
        os.kill(valkey.pid, signal.SIGSTOP)  # the store hangs mid-batch: writes may land after the client gave up
        try:
            during = path.runner.poll_once(wait_s=0)
        finally:
            os.kill(valkey.pid, signal.SIGCONT)
        assert len(during.message_ids) == 4 and sorted(during.failed_message_ids) == sorted(during.message_ids)

        after = path.runner.run_until_empty()

        assert (after.received, after.failed) == (4, 0) and queue_depths(local_resources) == (0, 0)
        snapshot = features(client, stage_config, "u1", ["a", "b", "c", "d"])
        assert [snapshot.items[i]["item_likes"] for i in "abcd"] == [2, 2, 1, 1]
        assert (snapshot.user["user_events"], snapshot.user["user_events_view"]) == (7, 1)
    finally:
        client.close()
        valkey.stop()


@pytest.mark.filterwarnings("ignore:No application metrics to publish")  # calls refused before any event is counted
def test_the_api_rejects_malformed_events_with_a_4xx_naming_the_field(path, local_resources):
    status, answer = post_events(path, "u1", {"event_type": "like", "item_id": "a"})
    assert status == 400
    assert answer["results"][0]["errors"] == [{"field": "events[0].sent_at", "message": "is required"}]

    status, answer = post_events(path, "u1", like("a"), like("b", sent_at=time.time() * 1000))
    assert status == 200 and answer["results"][1]["errors"][0]["field"] == "events[1].sent_at"
    assert "milliseconds?" in answer["results"][1]["errors"][0]["message"]

    status, answer = post_json(path.api.url + "/events", {"session_id": "s", "events": [like("a")]})
    assert (status, answer["errors"]) == (400, [{"field": "user_id", "message": "is required"}])
    status, answer = post_events(path, "u1", *[like("a")] * 101)
    assert status == 413 and answer["errors"][0]["field"] == "events"
    status, answer = post_json(path.api.url + "/items", {"items": [{"ITEM_ID": "x", "PRICE": -3}]})
    assert (status, answer["errors"]) == (400, [{"field": "items[0].PRICE", "message": "must be >= 0, got -3"}])

    # Only the one valid event went anywhere.
    wait_for_messages(local_resources.feature_queue_url, 1)
    assert path.runner.run_until_empty().received == 1


def test_a_replayed_history_lands_in_the_features_with_its_windows(local_resources, stage_config, redis_client):
    day = 86_400
    old = 1_400_000_000.0  # 2014: a dataset's history, replayed as if its last event were now
    history = [
        Event(event_id=f"h{i}", user_id=f"u{i % 3}", event_type="like", timestamp=old + i, item_id=f"i{i % 7}")
        for i in range(120)
    ]
    history.append(Event(event_id="long-ago", user_id="u0", event_type="view", timestamp=old - 2 * day, item_id="i0"))
    history.sort(key=lambda event: (event.user_id, event.timestamp))
    with serve_realtime_path(local_resources, stage_config, quiet=True, batch_size=10, batching_window_s=0) as path:
        report = replay_events(path.api.url, history, per_call=25, shift_to=time.time())
        path.wait_until_drained(timeout_s=60)

    assert (report.accepted, report.rejected, report.failed) == (121, 0, 0)
    assert report.calls == 6  # 41 + 40 + 40 events of three users, 25 per call
    snapshot = features(redis_client, stage_config, "u0", [f"i{k}" for k in range(7)])
    assert sum(snapshot.items[f"i{k}"]["item_likes"] for k in range(7)) == 120
    assert sum(snapshot.items[f"i{k}"]["item_events_1h"] for k in range(7)) == 120  # shifted to now
    assert snapshot.items["i0"]["item_events_7d"] == snapshot.items["i0"]["item_events_1h"] + 1
    assert snapshot.user["user_events"] == 41
