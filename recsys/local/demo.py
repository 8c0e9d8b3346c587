"""`make demo`: the platform on its local stand-ins, end to end, with step lines and timings."""

from __future__ import annotations

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


def run_demo(state_file: Path, *, stage: str | None, dataset: Path, keep_running: bool) -> None:
    from recsys.datasets.importer import import_dataset
    from recsys.datasets.movietweetings import convert_movietweetings

    config = load_stage(stage)
    steps = StepPrinter(total=4)
    with steps.step("Start the local services: moto as AWS, Valkey as MemoryDB"):
        platform, started = attach_or_start(state_file)
        steps.info(f"moto {platform.moto.url}, valkey {platform.valkey.url}" + ("" if started else " (reused)"))
    try:
        with steps.step(f"Create the {config.stage} resources from the stage config"):
            resources = create_resources(config)
            steps.info(f"topic {config.names.events_topic}, queue {config.names.feature_queue} (+DLQ)")
            steps.info("buckets " + ", ".join(resources.buckets.values()))
        with steps.step(f"Import the development dataset ({dataset.name})"):
            with tempfile.TemporaryDirectory(prefix="recsys-dataset-") as csv_dir:
                convert_movietweetings(dataset, Path(csv_dir))
                report = import_dataset(csv_dir, f"s3://{resources.lake_bucket}")
            steps.info(report.summary())
        with steps.step("Summary"):
            steps.info(f"lake objects: {_lake_object_count(resources.lake_bucket)} in s3://{resources.lake_bucket}")
            steps.info(describe(state_file))
    finally:
        if started and not keep_running:
            platform.stop()
            state_file.unlink(missing_ok=True)
            print(f"stopped the services this demo started ({steps.elapsed():.0f}s in all)")
        else:
            print(f"services left running ({steps.elapsed():.0f}s in all); stop them with `make down`")
