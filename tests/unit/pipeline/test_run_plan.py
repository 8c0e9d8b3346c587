"""ValidateInput's plan (recsys.pipeline.run): names, URIs, the window's manifest, and input errors."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recsys.batch.window import parse_cutoff
from recsys.config import load_stage
from recsys.pipeline.run import MAX_NAME, PipelineInputError, feature_snapshot, lake_manifest, plan_run

CONFIG = load_stage("dev")
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/recsys-training:1"


def plan(given=None, *, execution="run-1", started_at="2024-03-01T22:00:07Z", config=CONFIG):
    return plan_run(given, execution_name=execution, started_at=started_at, config=config,
                    lake_bucket="lake-b", artifacts_bucket="art-b", training_image=IMAGE)


def test_the_scheduled_run_cuts_off_at_its_start_hour_and_plans_every_uri() -> None:
    run = plan({"source": "schedule"})
    assert run.cutoff == "2024-03-01T22:00:00Z"
    assert run.snapshot_date == "2024-03-01"
    assert run.training_cutoff == "2024-02-23T22:00:00Z"  # minus the 7-day label horizon
    assert run.window_days == CONFIG.batch_features.window_days
    assert run.training_set == "s3://lake-b/training/cutoff=20240223T220000Z/"
    assert run.interactions_manifest == f"s3://art-b/pipeline/{run.run_id}/interactions.manifest"
    assert run.evaluation_report == f"s3://art-b/pipeline/{run.run_id}/evaluation/report.json"
    assert run.evaluation_report.startswith(run.evaluation)
    assert run.jobs["features"] == f"recsys-dev-features-{run.run_id}"
    assert run.hyperparameters == {"cutoff": "2024-02-23T22:00:00Z"}
    assert run.training_image == IMAGE
    assert feature_snapshot(run, "user") == "s3://lake-b/features/user/snapshot_date=2024-03-01/"


def test_the_input_sets_cutoff_window_and_hyperparameters() -> None:
    run = plan({"cutoff": "2024-02-10", "window_days": 180,
                "hyperparameters": {"default_ranker": "rf", "candidates": {"ease": {"l2": 300}}}})
    assert (run.cutoff, run.window_days) == ("2024-02-10T00:00:00Z", 180)
    assert run.hyperparameters == {"cutoff": "2024-02-03T00:00:00Z", "default_ranker": "rf",
                                   "candidates": '{"ease": {"l2": 300}}'}


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"cuttoff": "2024-01-01"}, "unknown field(s) cuttoff"),
        ({"cutoff": "yesterday"}, "cutoff: 'yesterday'"),
        ({"cutoff": "2024-03-05"}, "is after the execution's start"),
        ({"window_days": 30}, "window_days: 30 is shorter than the 60-day"),
        ({"window_days": "90"}, "window_days: '90' is not an integer"),
        ({"hyperparameters": ["a"]}, "hyperparameters: expected a JSON object"),
        ({"training_image": "docker.io/x"}, "training_image: 'docker.io/x' is not an ECR image URI"),
    ],
)
def test_bad_input_is_refused_with_the_field_named(given, message: str) -> None:
    with pytest.raises(PipelineInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        plan(given)


@given(st.text(min_size=1, max_size=80), st.datetimes(min_value=dt.datetime(2001, 1, 1),
                                                      max_value=dt.datetime(2099, 1, 1)))
def test_names_are_valid_sagemaker_names_and_differ_per_execution(execution: str, start: dt.datetime) -> None:
    started = start.strftime("%Y-%m-%dT%H:%M:%SZ")
    run = plan(execution=execution, started_at=started)
    other = plan(execution=execution + "x", started_at=started)
    for name in (*run.jobs.values(), run.model_name, run.endpoint_config):
        assert len(name) <= MAX_NAME
        assert all(c.isalnum() or c == "-" for c in name) and name[0].isalnum()
    assert run.run_id != other.run_id
    assert plan(execution=execution, started_at=started).run_id == run.run_id  # stable on retry


def test_manifest_lists_the_window_and_the_newest_imports() -> None:
    cutoff = parse_cutoff("2024-03-01")
    keys = [
        "events/event_date=2023-12-31/a.jsonl.gz",  # before the 60-day window
        "events/event_date=2024-01-01/a.jsonl.gz",  # first day of the window
        "events/event_date=2024-02-29/b.jsonl.gz",
        "events/event_date=2024-03-01/c.jsonl.gz",  # at the cutoff: after it
        "datasets/items/import_id=20240101/items.csv.gz",
        "datasets/items/import_id=20240201/items.csv.gz",
        "datasets/users/import_id=20240101/users.csv.gz",
        "features/user/snapshot_date=2024-02-29/part-0.parquet",
    ]
    manifest = lake_manifest(keys, lake_bucket="lake-b", cutoff=cutoff, window_days=60)
    assert manifest == [
        {"prefix": "s3://lake-b/"},
        "events/event_date=2024-01-01/a.jsonl.gz",
        "events/event_date=2024-02-29/b.jsonl.gz",
        "datasets/items/import_id=20240201/items.csv.gz",
        "datasets/users/import_id=20240101/users.csv.gz",
    ]


def test_an_empty_window_is_an_input_error() -> None:
    with pytest.raises(PipelineInputError, match=r"lake: no events under s3://lake-b/events/ between 2024-01-01 "
                                                 r"and 2024-02-29"):
        lake_manifest(["events/event_date=2023-01-01/a.jsonl.gz"], lake_bucket="lake-b",
                      cutoff=parse_cutoff("2024-03-01"), window_days=60)
