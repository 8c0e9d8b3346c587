"""The AWS CDK app's stacks: one stack per lifecycle, built from `recsys.config.StageConfig`.

- `foundation.FoundationStack`: the platform's KMS key, its S3 buckets and the on-call alarm topic;
- `network.NetworkStack`: the VPC, its endpoints and flow logs;
- `realtime.RealtimeStack`: the event tracker API, SNS -> SQS -> feature writer Lambda, and MemoryDB.

`platform.build_platform` wires them together; `app.py` calls it. The secure-by-default building blocks
live in `stacks.constructs`; `stacks.nag` runs cdk-nag on every synth. See docs/infrastructure.md.
"""
