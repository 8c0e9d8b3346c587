"""Reading what SNS delivered to SQS, with a deadline.

SNS delivers to SQS asynchronously on AWS and on LocalStack (moto happens to deliver within the Publish call), so a
test that reads a queue right after publishing waits for what it expects, up to a deadline, instead of assuming it
is already there.
"""

from __future__ import annotations

import time
from typing import Any

from recsys import aws

DEADLINE_S = 20.0


def receive(queue_url: str, count: int, *, timeout_s: float = DEADLINE_S, settle_s: float = 0.0,
            attributes: bool = False) -> list[dict[str, Any]]:
    """Receive and delete messages until `count` have arrived or `timeout_s` passed, then read on for `settle_s`
    seconds so that one too many shows. For "nothing arrives", `count=0` with `settle_s` as long as it must stay
    empty. The caller asserts on what came."""
    sqs = aws.client("sqs")
    messages: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    settle_until = None
    while True:
        now = time.monotonic()
        if len(messages) >= count and settle_until is None:
            settle_until = now + settle_s
        if (settle_until is not None and now >= settle_until) or (settle_until is None and now >= deadline):
            return messages
        extra = {"MessageAttributeNames": ["All"]} if attributes else {}
        batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, **extra).get(
            "Messages", [])
        if batch:
            messages += batch
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)])


def wait_for_messages(queue_url: str, count: int, *, timeout_s: float = DEADLINE_S) -> None:
    """Until `queue_url` holds at least `count` messages, visible or in flight, e.g. before a test runs the local
    event source over what was just published. Fails the test at the deadline."""
    sqs = aws.client("sqs")
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    deadline = time.monotonic() + timeout_s
    held = 0
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
        held = sum(int(attributes[name]) for name in names)
        if held >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{queue_url} holds {held} messages after {timeout_s:.0f} s, expected {count}")
