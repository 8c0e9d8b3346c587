"""A manual start of the deployed daily pipeline: `python -m recsys pipeline-start [--cutoff ...]`.

Same as `aws stepfunctions start-execution --state-machine-arn <arn> --input '{...}'` (docs/pipeline.md); the
state machine is found by its configured name in the caller's account and region.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from recsys import aws
from recsys.config import StageConfig, load_stage


def execution_input(cutoff: str | None, window_days: int | None, hyperparameters: str | None) -> dict[str, Any]:
    """The execution input ValidateInput accepts (recsys.pipeline.run.INPUT_FIELDS); bad JSON names the flag."""
    given: dict[str, Any] = {"source": "manual"}
    if cutoff:
        given["cutoff"] = cutoff
    if window_days is not None:
        given["window_days"] = window_days
    if hyperparameters:
        try:
            given["hyperparameters"] = json.loads(hyperparameters)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--hyperparameters: not JSON ({exc.msg})") from None
    return given


def state_machine_arn(config: StageConfig) -> str:
    account = aws.client("sts").get_caller_identity()["Account"]
    return f"arn:aws:states:{aws.region()}:{account}:stateMachine:{config.names.state_machine}"


def start_pipeline(config: StageConfig, given: dict[str, Any], name: str | None = None) -> str:
    """Starts an execution; returns its ARN. `name` makes a start idempotent (a second start with it fails)."""
    request: dict[str, Any] = {"stateMachineArn": state_machine_arn(config), "input": json.dumps(given)}
    if name:
        request["name"] = name
    return aws.client("stepfunctions").start_execution(**request)["executionArn"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cutoff", default=None, help="ISO date/time or unix seconds (default: the start hour)")
    parser.add_argument("--window-days", type=int, default=None, help="history window (default: stage config)")
    parser.add_argument("--hyperparameters", default=None,
                        help='training hyperparameters, JSON: \'{"default_ranker": "rf"}\'')
    parser.add_argument("--name", default=None, help="execution name (default: generated)")


def run(args: argparse.Namespace) -> int:
    try:
        given = execution_input(args.cutoff, args.window_days, args.hyperparameters)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(start_pipeline(load_stage(args.stage), given, args.name))
    return 0
