"""The IngestFeatures state's processing job: the run's user and item feature snapshots into the Feature Store.

The BatchFeatures job writes the snapshot tables (`features/<entity>/snapshot_date=D/`); this job reads them back
and writes them to the online and offline stores with recsys.batch.ingest, spread over the cluster's executors.
Kept apart from the feature computation so that a failed or throttled ingestion is retried without recomputing,
and a snapshot can be re-ingested by hand. Submitted in the Spark processing image:

    smspark-submit /opt/program/recsys/pipeline/ingest_job.py --output s3://<lake> --snapshot-date 2024-03-01 \
        --ingest sagemaker --stage prod
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __name__ == "__main__":  # submitted as a file: make the recsys package next to it importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from recsys.batch.paths import feature_table_uri  # noqa: E402

INGESTED_ENTITIES = ("user", "item")


def ingest_snapshot(spark, output: str, snapshot_date: str, target) -> dict[str, int]:
    """Records written per feature group."""
    from recsys.batch.lake import spark_uri
    from recsys.batch.ingest import ingest_frame

    written = {}
    for group in target.groups:
        frame = spark.read.parquet(spark_uri(feature_table_uri(output, group.entity, snapshot_date)))
        written[group.name] = ingest_frame(frame, group, target)
    return written


def main(argv: list[str] | None = None, spark=None) -> int:
    parser = argparse.ArgumentParser(prog="ingest_job", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="the batch job's --output (a folder or s3:// URI)")
    parser.add_argument("--snapshot-date", required=True, help="YYYY-MM-DD")
    parser.add_argument("--ingest", choices=("local", "sagemaker"), default="sagemaker")
    parser.add_argument("--redis-url", default=None, help="online store of --ingest local")
    parser.add_argument("--stage", default=None)
    parser.add_argument("--master", default=None)
    args = parser.parse_args(argv)

    from recsys.batch.feature_store import feature_group
    from recsys.batch.ingest import StoreTarget
    from recsys.batch.pipeline import spark_session
    from recsys.config import load_stage

    stage = load_stage(args.stage)
    groups = tuple(feature_group(entity, stage.names) for entity in INGESTED_ENTITIES)
    try:
        target = StoreTarget(args.ingest, groups, redis_url=args.redis_url,
                             batch_size=stage.batch_features.online_batch_size)
    except ValueError as exc:
        print(f"ingest_job: error: {exc}", file=sys.stderr)
        return 2
    own_session = spark is None
    if own_session:
        spark = spark_session("recsys-ingest-features", args.master)
    try:
        written = ingest_snapshot(spark, args.output, args.snapshot_date, target)
    finally:
        if own_session:
            spark.stop()
    print(json.dumps({"snapshot_date": args.snapshot_date, "ingested": written}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
