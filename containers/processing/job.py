"""Entry point of the Spark batch-feature job (SageMaker Processing, or `local[*]` on one machine).

    python containers/processing/job.py --lake <dir|s3://...> --output <dir|s3://...> --cutoff 2024-03-01

Reads events with timestamp < cutoff from the lake, writes the feature tables (Parquet, by snapshot
date) and the point-in-time training set, and optionally ingests the user and item features into the
Feature Store. The Spark logic lives in recsys.batch (importable by tests); this file only parses
arguments. Under `smspark-submit` the master comes from the SageMaker cluster; run as plain Python
it is local[*]. It prints the run summary as one JSON line at the end.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

# In the container the recsys package sits next to this file (see the Dockerfile); in the repo, two levels up.
for candidate in (Path(__file__).resolve().parent, Path(__file__).resolve().parents[2]):
    if (candidate / "recsys" / "__init__.py").exists():
        sys.path.insert(0, str(candidate))
        break

from recsys.batch.feature_store import OfflineStoreLocation, feature_group  # noqa: E402
from recsys.batch.ingest import StoreTarget  # noqa: E402
from recsys.batch.lake import LakeError  # noqa: E402
from recsys.batch.pipeline import MODES, BatchRun, run_batch, spark_session  # noqa: E402
from recsys.batch.window import parse_cutoff  # noqa: E402
from recsys.config import load_stage  # noqa: E402


def _cutoff(text: str) -> float:
    try:
        return parse_cutoff(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="job.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lake", required=True, help="data lake root: a folder or s3:// URI")
    parser.add_argument("--output", required=True, help="where features/ and training/ go: a folder or s3:// URI")
    parser.add_argument("--cutoff", required=True, type=_cutoff, help="ISO date/datetime (UTC) or unix seconds")
    parser.add_argument("--mode", choices=MODES, default="all")
    parser.add_argument("--stage", default=None, help="config stage (default: $RECSYS_STAGE or dev)")
    parser.add_argument("--window-days", type=int, default=None, help="history window (default: stage config)")
    parser.add_argument("--snapshot-date", default=None, help="YYYY-MM-DD (default: the cutoff's UTC date)")
    parser.add_argument("--training-cutoff", type=_cutoff, default=None, help="default: cutoff - label horizon")
    parser.add_argument(
        "--ingest",
        choices=("none", "local", "sagemaker"),
        default="none",
        help="Feature Store ingestion of the user and item features",
    )
    parser.add_argument("--redis-url", default=None, help="online store of --ingest local")
    parser.add_argument("--offline-bucket", default=None, help="offline store bucket of --ingest local")
    parser.add_argument("--account", default=None, help="account id in the offline store layout (default: stage)")
    parser.add_argument("--master", default=None, help="Spark master (default: the submitter's, else local[*])")
    return parser


def store_target(args: argparse.Namespace, stage) -> StoreTarget | None:
    if args.ingest == "none":
        return None
    groups = tuple(feature_group(entity, stage.names) for entity in ("user", "item"))
    batch = stage.batch_features
    if args.ingest == "sagemaker":
        return StoreTarget("sagemaker", groups, batch_size=batch.online_batch_size)
    offline = None
    if args.offline_bucket:
        from recsys.config import LOCAL_ACCOUNT

        account = args.account or stage.account or LOCAL_ACCOUNT
        offline = OfflineStoreLocation(args.offline_bucket, batch.offline_store_prefix, account, stage.region)
    return StoreTarget("local", groups, redis_url=args.redis_url, offline=offline, batch_size=batch.online_batch_size)


def main(argv: list[str] | None = None, spark=None) -> int:
    args = build_parser().parse_args(argv)
    stage = load_stage(args.stage)
    config = stage.batch_features.resolved(stage.pit_features)
    try:
        if args.window_days is not None:
            config = replace(config, window_days=args.window_days)
        run = BatchRun(args.lake, args.output, args.cutoff, config, args.mode, args.snapshot_date, args.training_cutoff)
        target = store_target(args, stage)
    except ValueError as exc:
        print(f"job.py: error: {exc}", file=sys.stderr)
        return 2
    own_session = spark is None
    if own_session:
        spark = spark_session("recsys-batch-features", args.master)
    try:
        result = run_batch(spark, run, target)
    except LakeError as exc:
        print(f"job.py: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if own_session:
            spark.stop()
    print(result.summary(), file=sys.stderr)
    print(result.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
