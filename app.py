#!/usr/bin/env python3
"""The CDK app: `npx cdk synth -c stage=dev|prod` (or `make synth`), `npx cdk deploy --all -c stage=dev`.

Every stack is built from `recsys.config.load_stage(stage)`; cdk-nag checks each synth, which fails on any
unacknowledged finding. No AWS call is made at synth time: no credentials and no Docker are needed.
`-c localstack=true` writes the LocalStack profile of the same app (stacks/localstack.py, docs/deploy.md).
"""

from __future__ import annotations

import os
import sys

# jsii's banner about Node 20's end of life would otherwise open every synth; the README asks for Node 18+.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from stacks import localstack  # noqa: E402
from stacks.platform import create_app  # noqa: E402  (after the environment is set)


def main() -> int:
    app, _ = create_app()
    try:
        assembly = app.synth()
    except RuntimeError as error:
        if "ValidationFailed" not in str(error):
            raise
        print(f"synth failed: cdk-nag reported unacknowledged findings (listed above): {error}", file=sys.stderr)
        return 1
    if localstack.enabled(app.node.try_get_context(localstack.CONTEXT_KEY)):
        report = localstack.apply_profile(assembly.directory)
        print(f"LocalStack profile: {len(report['left_out'])} resources left out "
              f"({assembly.directory}/{localstack.REPORT_FILE})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
