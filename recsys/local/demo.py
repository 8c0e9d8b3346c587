"""`make demo`: the platform on its local stand-ins, end to end, with step lines and timings."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from recsys import aws
from recsys.config import load_stage
from recsys.local.platform import attach_or_start, describe
from recsys.local.resources import create_resources
from recsys.local.steps import StepPrinter


def _lake_object_count(bucket: str) -> int:
    paginator = aws.client("s3").get_paginator("list_objects_v2")
    return sum(page.get("KeyCount", 0) for page in paginator.paginate(Bucket=bucket))


REPLAYED_EVENTS = 3000


def _show_features(config, events) -> None:
    from collections import Counter

    from recsys.features import FeatureReader
    from recsys.store import redis_from_env

    reader = FeatureReader(redis_from_env(), config.pit_features)
    users = [user for user, _ in Counter(e.user_id for e in events).most_common(3)]
    items = [item for item, _ in Counter(e.item_id for e in events).most_common(3)]
    for user in users:
        snapshot = reader.read(user, items)
        counts = {k: v for k, v in snapshot.user.items() if isinstance(v, (int, float)) and v}
        print(f"      user {user}: " + ", ".join(f"{k}={v:g}" for k, v in sorted(counts.items())[:6]))
    snapshot = reader.read(users[0], items)
    for item in items:
        values = {k: v for k, v in snapshot.items[item].items() if v}
        print(f"      item {item}: " + ", ".join(f"{k}={v:g}" for k, v in sorted(values.items())[:6]))


def run_demo(state_file: Path, *, stage: str | None, dataset: Path, keep_running: bool) -> None:
    import time

    from recsys.datasets.importer import import_dataset
    from recsys.datasets.movietweetings import convert_movietweetings
    from recsys.local.realtime import replay_events, serve_realtime_path
    from recsys.local.replay import latest_interactions, upsert_items

    config = load_stage(stage)
    steps = StepPrinter(total=5)
    csv_dir = Path(tempfile.mkdtemp(prefix="recsys-dataset-"))
    with steps.step("Start the local services: moto as AWS, Valkey as MemoryDB"):
        platform, started = attach_or_start(state_file)
        steps.info(f"moto {platform.moto.url}, valkey {platform.valkey.url}" + ("" if started else " (reused)"))
    try:
        with steps.step(f"Create the {config.stage} resources from the stage config"):
            resources = create_resources(config)
            steps.info(f"topic {config.names.events_topic}, queue {config.names.feature_queue} (+DLQ)")
            steps.info("buckets " + ", ".join(resources.buckets.values()))
        with steps.step(f"Import the development dataset ({dataset.name})"):
            convert_movietweetings(dataset, csv_dir)
            report = import_dataset(csv_dir, f"s3://{resources.lake_bucket}")
            steps.info(report.summary())
        with steps.step(f"Replay the latest {REPLAYED_EVENTS:,} interactions through POST /events, shifted to now"):
            events = latest_interactions(csv_dir, REPLAYED_EVENTS)
            with serve_realtime_path(resources, config, quiet=True) as path:
                items = upsert_items(path.api.url, csv_dir, {e.item_id for e in events if e.item_id})
                steps.info(f"event tracker on {path.api.url}; {items} items upserted through POST /items")
                replay = replay_events(path.api.url, events, shift_to=time.time())
                path.wait_until_drained()
            steps.info(replay.summary() + "; SNS -> SQS -> feature writer -> Valkey drained")
            _show_features(config, events)
        with steps.step("Summary"):
            steps.info(f"lake objects: {_lake_object_count(resources.lake_bucket)} in s3://{resources.lake_bucket}")
            steps.info(describe(state_file))
    finally:
        shutil.rmtree(csv_dir, ignore_errors=True)
        if started and not keep_running:
            platform.stop()
            state_file.unlink(missing_ok=True)
            print(f"stopped the services this demo started ({steps.elapsed():.0f}s in all)")
        else:
            print(f"services left running ({steps.elapsed():.0f}s in all); stop them with `make down`")
