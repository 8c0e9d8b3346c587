"""The real-time path on the local platform: the event tracker behind a local HTTP API, and the feature writer fed
by a local SQS event source. Both are the real Lambda handlers, configured by the environment they get in AWS.

    with serve_realtime_path(resources, config, quiet=True) as path:
        report = replay_events(path.api.url, events, shift_to=time.time())   # POST /events, 100 per call
        path.wait_until_drained()                   # SNS (moto) -> SQS -> runner -> handler -> Valkey
        FeatureReader(redis_from_env(), config.pit_features).read(user_id, item_ids)
        path.lake.flush()                           # the local Firehose -> s3://<lake>/events/event_date=.../

Used by `make demo`, the integration tests and benchmarks/bench_reflection.py. To try it by hand (it uses the
services of `make up` when they run, else starts its own and stops them on Ctrl-C or SIGTERM):

    .venv/bin/python -m recsys.local.realtime --port 8080     # then curl it (recsys/tracker/README.md)
"""

from __future__ import annotations

import argparse
import importlib
import io
import itertools
import json
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from recsys import aws
from recsys.config import StageConfig, load_stage
from recsys.events import Event
from recsys.lake.local_firehose import LocalFirehose
from recsys.local.http_api import LocalHttpApi, post_json
from recsys.local.resources import LocalResources
from recsys.local.sqs_runner import SqsEventSourceRunner
from recsys.tracker.sinks import forget_local_stream, use_local_stream

REPO_ROOT = Path(__file__).resolve().parents[2]


def lambda_module(name: str) -> ModuleType:
    """`lambdas/<name>/handler.py` as the module `lambdas.<name>.handler` (one instance, whoever imports it)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    return importlib.import_module(f"lambdas.{name}.handler")


def realtime_env(resources: LocalResources, config: StageConfig, *, quiet: bool = False) -> dict[str, str]:
    """The environment the CDK stacks give both Lambdas (the store comes from RECSYS_REDIS_URL, set by the platform).
    `quiet` raises the handlers' log level to WARNING (it applies when the handler modules are first imported)."""
    env = {
        "EVENTS_TOPIC_ARN": resources.events_topic_arn,
        "FIREHOSE_STREAM_NAME": config.names.firehose_stream,
        "RECSYS_STAGE": config.stage,
    }
    if quiet:
        env["POWERTOOLS_LOG_LEVEL"] = "WARNING"
    return env


class _WithoutEmf(io.TextIOBase):
    """stdout minus the EMF metric lines Powertools prints (Lambda sends those to CloudWatch, not to a terminal)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._dropped = threading.local()

    def write(self, text: str) -> int:
        if text.startswith('{"_aws"'):
            self._dropped.newline = True
            return len(text)
        if text == "\n" and getattr(self._dropped, "newline", False):
            self._dropped.newline = False
            return len(text)
        self._dropped.newline = False
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def cold_start() -> None:
    """Forget the handlers' cached clients, as new Lambda execution environments would."""
    lambda_module("event_tracker").api.cache_clear()
    lambda_module("feature_writer").consumer.cache_clear()


@dataclass
class RealtimePath:
    api: LocalHttpApi
    runner: SqsEventSourceRunner
    lake: LocalFirehose  # the tracker's delivery stream into the lake bucket

    def wait_until_drained(self, timeout_s: float = 60.0) -> None:
        """Wait until the feature queue holds no message, visible or in flight (the threaded runner caught up)."""
        sqs = aws.client("sqs")
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            attributes = sqs.get_queue_attributes(QueueUrl=self.runner.queue_url, AttributeNames=names)["Attributes"]
            if not any(int(attributes[name]) for name in names):
                return
            time.sleep(0.05)
        raise TimeoutError(f"the feature queue still held messages after {timeout_s:.0f}s")


@dataclass
class ReplayReport:
    calls: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)  # the first few, for the operator

    def summary(self) -> str:
        return f"{self.calls} calls: {self.accepted} accepted, {self.rejected} rejected, {self.failed} failed"


def tracker_event(event: Event, shift_s: float = 0.0) -> dict[str, Any]:
    """The POST /events entry of `event` (user and session go in the envelope)."""
    entry: dict[str, Any] = {"event_id": event.event_id, "event_type": event.event_type}
    entry["sent_at"] = event.timestamp + shift_s
    for name in ("event_value", "item_id", "recommendation_id"):
        if getattr(event, name) is not None:
            entry[name] = getattr(event, name)
    if event.properties:
        entry["properties"] = dict(event.properties)
    if event.impression:
        entry["impression"] = list(event.impression)
    return entry


def replay_events(
    api_url: str, events: Iterable[Event], *, per_call: int = 100, shift_to: float | None = None
) -> ReplayReport:
    """POST `events` to the tracker, up to `per_call` per call, one call per run of (user, session).

    `shift_to` moves every event time by the same amount so that the latest event lands at `shift_to` (e.g.
    time.time()): a replay of an old dataset then fills the 1 h / 24 h / 7 d windows the way live traffic would.
    """
    events = list(events)
    shift_s = shift_to - max(event.timestamp for event in events) if shift_to is not None and events else 0.0
    report = ReplayReport()
    for (user_id, session_id), run in itertools.groupby(events, key=lambda e: (e.user_id, e.session_id or "replay")):
        run = list(run)
        for start in range(0, len(run), per_call):
            body = {
                "user_id": user_id,
                "session_id": session_id,
                "events": [tracker_event(event, shift_s) for event in run[start : start + per_call]],
            }
            status, answer = post_json(api_url.rstrip("/") + "/events", body)
            report.calls += 1
            if "results" not in answer:  # the whole call was refused
                report.rejected += len(body["events"])
                report.errors.append(f"HTTP {status}: {answer.get('message')}")
                continue
            for name in ("accepted", "rejected", "failed"):
                setattr(report, name, getattr(report, name) + answer[name])
            for result in answer["results"]:
                if result["status"] != "accepted" and len(report.errors) < 5:
                    report.errors.append(json.dumps(result))
    return report


@contextmanager
def serve_realtime_path(
    resources: LocalResources,
    config: StageConfig,
    *,
    port: int = 0,
    run_in_thread: bool = True,
    quiet: bool = False,
    **runner_settings: Any,
) -> Iterator[RealtimePath]:
    """Serve the tracker on a local HTTP API (`port` 0: a free one) and run the feature-writer event source, in a
    thread unless told not to (then drive `path.runner.poll_once()` / `run_until_empty()` yourself).
    `runner_settings` override the stage config's batch size and window (see SqsEventSourceRunner). `quiet` keeps
    the handlers' INFO logs and EMF metrics off stdout while serving (for `make demo` and the benchmark).
    The tracker's events also go to the lake through a local Firehose stream, flushed when the block ends."""
    env = realtime_env(resources, config, quiet=quiet)
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    cold_start()
    tracker, writer = lambda_module("event_tracker"), lambda_module("feature_writer")
    runner = SqsEventSourceRunner.from_config(writer.handler, resources.feature_queue_url, config, **runner_settings)
    api = LocalHttpApi(
        tracker.handler, function_name=config.names.function("event_tracker"), stage=config.stage, port=port
    )
    stdout = sys.stdout
    try:
        if quiet:
            sys.stdout = _WithoutEmf(stdout)
            # Calls refused before any event is counted flush no metric; Powertools warns about it.
            warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)
        with local_lake_stream(config, resources.lake_bucket) as lake:
            api.start()
            try:
                if run_in_thread:
                    runner.start()
                yield RealtimePath(api, runner, lake)
            finally:
                runner.stop()
                api.stop()
    finally:
        sys.stdout = stdout
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        cold_start()


@contextmanager
def local_lake_stream(config: StageConfig, bucket: str) -> Iterator[LocalFirehose]:
    """The stage's Firehose stream into the lake `bucket`, where the tracker's and the recommend API's lake sinks
    send (recsys.tracker.sinks), delivering on its own timer as Firehose does; on exit it delivers what it still
    buffers."""
    lake = LocalFirehose.for_stage(config, bucket)
    use_local_stream(lake.stream_name, lake)
    try:
        with lake:
            yield lake
    finally:
        forget_local_stream(lake.stream_name)


def main(argv: list[str] | None = None) -> None:
    from recsys.cli import STATE_FILE
    from recsys.local.platform import attach_or_start
    from recsys.local.resources import create_resources

    parser = argparse.ArgumentParser(description="Serve the event tracker and run the feature writer locally.")
    parser.add_argument("--stage", default=None)
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    config = load_stage(args.stage)
    platform, started = attach_or_start(STATE_FILE)
    resources = create_resources(config)
    with serve_realtime_path(resources, config, port=args.port, quiet=True) as path:
        print(f"event tracker on {path.api.url} (POST /events, /items, /users); store {platform.valkey.url}")
        print("Ctrl-C to stop" + (" (and the services this command started)" if started else ""))
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())  # `kill` stops it as cleanly as Ctrl-C
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    if started:
        platform.stop()
        STATE_FILE.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
