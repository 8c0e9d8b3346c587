"""Secure-by-default constructs, each defined once and reused by every stack.

- `SecureBucket`: KMS, SSL only, public access blocked, versioned, server access logs (to `AccessLogsBucket`);
- `QueueWithDlq`: KMS, SSL only, a dead-letter queue with redrive and a DLQ-depth alarm;
- `PythonLambda`: `recsys/` + the handler + pinned dependencies bundled locally (no Docker), Powertools, X-Ray,
  an encrypted log group with retention, VPC placement when asked;
- `AlarmTopic` / `EncryptedTopic`: KMS-encrypted SNS topics that refuse non-TLS publishers;
- `logged_state_machine`: a Step Functions state machine traced, logged to an encrypted log group, and with its
  execution history encrypted by the platform key.
"""

from stacks.constructs.logs import encrypted_log_group, retention_days
from stacks.constructs.python_lambda import PythonLambda, VpcPlacement
from stacks.constructs.queue_with_dlq import QueueWithDlq
from stacks.constructs.secure_bucket import AccessLogsBucket, SecureBucket
from stacks.constructs.state_machine import logged_state_machine
from stacks.constructs.topics import AlarmTopic, EncryptedTopic

__all__ = [
    "AccessLogsBucket",
    "AlarmTopic",
    "EncryptedTopic",
    "PythonLambda",
    "QueueWithDlq",
    "SecureBucket",
    "VpcPlacement",
    "encrypted_log_group",
    "logged_state_machine",
    "retention_days",
]
