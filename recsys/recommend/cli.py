"""`python -m recsys batch-recommend --input s3://... --output s3://... --model build/model`.

The scoring endpoint, the store and the sinks come from the same environment as the Lambda's
(`recsys.recommend.wiring`); `--model` and `--scoring-url` override RECSYS_MODEL_DIR / RECSYS_SCORING_URL.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="JSON lines of users: s3://bucket/key (or prefix) or a path")
    parser.add_argument("--output", required=True, help="where the JSON lines of recommendations go")
    parser.add_argument("--model", help="model bundle directory (default: $RECSYS_MODEL_DIR)")
    parser.add_argument("--scoring-url", help="local inference server URL (default: $RECSYS_SCORING_URL or the "
                                              "SageMaker endpoint)")
    parser.add_argument("--num-results", type=int, help="items per user, for lines without numResults")
    parser.add_argument("--filter-name", help="a named filter for lines without filterName")
    parser.add_argument("--filter-values", default="{}", help='JSON object, e.g. {"GENRE": "\\"drama\\""}')


def run_batch_command(args: argparse.Namespace) -> int:
    from recsys.config import load_stage
    from recsys.recommend.batch import run_batch
    from recsys.recommend.wiring import recommender_from_env

    if args.model:
        os.environ["RECSYS_MODEL_DIR"] = args.model
    if args.scoring_url:
        os.environ["RECSYS_SCORING_URL"] = args.scoring_url
    try:
        filter_values = json.loads(args.filter_values)
    except ValueError as exc:
        print(f"--filter-values: not valid JSON: {exc}", file=sys.stderr)
        return 2
    recommender = recommender_from_env(load_stage(args.stage))
    try:
        report = run_batch(recommender, args.input, args.output, num_results=args.num_results,
                           filter_name=args.filter_name, filter_values=filter_values)
    finally:
        recommender.close()
    print(json.dumps(report.to_dict()))
    return 1 if report.errors and report.errors == report.users else 0
