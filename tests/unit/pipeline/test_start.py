"""`python -m recsys pipeline-start`: the manual start, against moto's Step Functions."""

from __future__ import annotations

import json

import pytest

from recsys import aws as aws_clients
from recsys.cli import main
from recsys.config import LOCAL_ACCOUNT
from recsys.pipeline.start import execution_input


def test_the_input_holds_what_was_given() -> None:
    assert execution_input(None, None, None) == {"source": "manual"}
    assert execution_input("2024-03-01", 180, '{"default_ranker": "rf"}') == {
        "source": "manual", "cutoff": "2024-03-01", "window_days": 180, "hyperparameters": {"default_ranker": "rf"}}
    with pytest.raises(ValueError, match="--hyperparameters: not JSON"):
        execution_input(None, None, "{rf")


def test_cli_starts_the_state_machine_of_the_stage(aws, stage_config, capsys) -> None:
    sfn = aws_clients.client("stepfunctions")
    definition = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}
    sfn.create_state_machine(name=stage_config.names.state_machine, definition=json.dumps(definition),
                             roleArn=f"arn:aws:iam::{LOCAL_ACCOUNT}:role/x")
    assert main(["--stage", "dev", "pipeline-start", "--cutoff", "2024-03-01", "--name", "backfill-2024-03-01"]) == 0
    arn = capsys.readouterr().out.strip()
    execution = sfn.describe_execution(executionArn=arn)
    assert execution["name"] == "backfill-2024-03-01"
    assert json.loads(execution["input"]) == {"source": "manual", "cutoff": "2024-03-01"}
    assert main(["pipeline-start", "--hyperparameters", "{"]) == 2
