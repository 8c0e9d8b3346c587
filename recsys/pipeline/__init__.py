"""The daily pipeline's contract: its steps in order, and the quality gate both the state machine and local mode use.

- `steps`: the ordered step names (the state machine's state names);
- `gate`: the quality gate over an evaluation report;
- `run`: ValidateInput's run plan (names, URIs, the window's manifest);
- `registry`: the model package request and the champion's registered figures;
- `deploy`: the endpoint variants after a model passed the gate;
- `aws_steps`: the Lambda steps against AWS (thin adapters over the modules above);
- `evaluate_job`, `ingest_job`: the Evaluate and IngestFeatures processing jobs' entry points;
- `start`: `python -m recsys pipeline-start`, a manual start of the deployed state machine.

The state machine is stacks/pipeline.py; docs/pipeline.md draws it and explains how the tests run it.
"""
