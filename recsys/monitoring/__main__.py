"""`python -m recsys.monitoring drift|ab|showcase`: run one monitoring job by hand or from a scheduler.

Sources and report locations are S3 URIs or local paths. Metrics go to
CloudWatch (namespace: the stage's metrics namespace) with `--cloudwatch`;
otherwise they are printed, so a job can be run and read without AWS.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timezone

from recsys.config import load_stage
from recsys.monitoring.metrics import CloudWatchPublisher, InMemoryPublisher, MetricsPublisher


def _pairs(text: str, what: str) -> dict[str, str]:
    pairs = {}
    for part in filter(None, text.split(",")):
        name, sep, value = part.partition("=")
        if not sep or not name or not value:
            raise argparse.ArgumentTypeError(f"{what}: expected name=value[,name=value], got {part!r}")
        pairs[name] = value
    return pairs


def _weights(text: str) -> dict[str, float]:
    try:
        return {name: float(value) for name, value in _pairs(text, "--weights").items()}
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--weights: {exc}") from exc


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m recsys.monitoring", description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default=None, help="stage config to use (default: $RECSYS_STAGE or dev)")
    parser.add_argument("--cloudwatch", action="store_true", help="publish the metrics to CloudWatch")
    jobs = parser.add_subparsers(dest="job", required=True)

    drift = jobs.add_parser("drift", help="feature and prediction drift against the training baseline")
    drift.add_argument("--baseline", required=True, help="baseline JSON saved with the model")
    drift.add_argument("--served", required=True, help="folder/prefix of logged scored rows (JSON lines)")
    drift.add_argument("--report", required=True, help="folder/prefix for the JSON and HTML report")

    ab = jobs.add_parser("ab", help="A/B analysis; with --endpoint also the promotion decision")
    ab.add_argument("--exposures", required=True, help="folder/prefix of exposure JSON lines")
    ab.add_argument("--outcomes", required=True, help="folder/prefix of lake event JSON lines")
    ab.add_argument("--report", required=True, help="folder/prefix for the JSON and HTML report")
    ab.add_argument("--weights", type=_weights, help="variant weights, e.g. control=1,B=1 (analysis only)")
    ab.add_argument("--window-start", type=float, help="unix seconds the allocation period started")
    ab.add_argument("--endpoint", help="SageMaker endpoint whose variant weights are under test")
    ab.add_argument("--variants", type=lambda t: _pairs(t, "--variants"),
                    help="A/B variant to production variant, e.g. control=model-a,B=model-b")
    ab.add_argument("--decision-log", help="folder/prefix of the promotion records")

    showcase = jobs.add_parser("showcase", help="showcase health from the Redis snapshots")
    showcase.add_argument("--date", type=date.fromisoformat, default=datetime.now(timezone.utc).date())
    showcase.add_argument("--report", required=True, help="folder/prefix for the JSON and HTML report")
    showcase.add_argument("--redis-url", default=None,
                          help="default: the feature store the environment names (recsys.store.redis_from_env: "
                               "$RECSYS_REDIS_URL locally, $MEMORYDB_ENDPOINT and $MEMORYDB_SECRET_ARN on AWS)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    stage = load_stage(args.stage)
    publisher: MetricsPublisher = (
        CloudWatchPublisher(stage.names.metrics_namespace) if args.cloudwatch else InMemoryPublisher()
    )
    if args.job == "drift":
        from recsys.monitoring.drift import run_drift_job

        report = run_drift_job(args.baseline, args.served, stage.monitoring.drift, publisher, report_uri=args.report)
        print(f"drift: {report.rows} rows, {report.rejected_rows} rejected, in alarm: "
              f"{', '.join(report.drifted_features) or 'none'}")
    elif args.job == "ab":
        summary = _ab(args, parser, stage, publisher)
        print(summary)
    else:
        from recsys.monitoring.showcase_health import SnapshotStore, run_showcase_health_job
        from recsys.store import redis_from_env

        if args.redis_url:
            import redis

            client = redis.Redis.from_url(args.redis_url)
        else:
            try:
                client = redis_from_env()
            except RuntimeError as exc:
                parser.error(f"showcase: --redis-url is not given and {exc}")
        ttl_days = stage.monitoring.showcase.snapshot_ttl_days
        store = SnapshotStore(client, stage.prefix, ttl_days)
        report = run_showcase_health_job(store, args.date, stage.monitoring.showcase, publisher, report_uri=args.report)
        print(f"showcase {report.day}: {report.users_compared} users compared, unchanged {report.unchanged_share:.1%}, "
              f"novelty {report.daily_novelty:.1%}; alarms: {'; '.join(report.alarms) or 'none'}")
    if isinstance(publisher, InMemoryPublisher):
        for metric in publisher.metrics:
            dims = ",".join(f"{k}={v}" for k, v in sorted(metric.dimensions.items()))
            print(f"  {metric.name}{'[' + dims + ']' if dims else ''} = {metric.value:.6g}")
    print(f"report: {args.report}")
    return 0


def _ab(args: argparse.Namespace, parser: argparse.ArgumentParser, stage, publisher: MetricsPublisher) -> str:
    qualified_play_s = stage.pit_features.qualified_session_minutes * 60
    if args.endpoint:
        if not (args.variants and args.decision_log):
            parser.error("ab: --endpoint needs --variants and --decision-log")
        from recsys import aws
        from recsys.monitoring.promotion import run_ab_cycle

        _, decision = run_ab_cycle(
            args.exposures, args.outcomes, stage.monitoring, publisher, endpoint_name=args.endpoint,
            variant_names=args.variants, sagemaker_client=aws.client("sagemaker"), log_uri=args.decision_log,
            report_uri=args.report, qualified_play_s=qualified_play_s, experiment_start=args.window_start,
        )
        return f"ab: {'promoted' if decision.act else 'no change'}: {decision.reason}"
    if not args.weights:
        parser.error("ab: give --weights (analysis only) or --endpoint with --variants and --decision-log")
    from recsys.monitoring.abtest import run_ab_job

    report = run_ab_job(args.exposures, args.outcomes, args.weights, stage.monitoring.ab, publisher,
                        qualified_play_s=qualified_play_s, window_start=args.window_start, report_uri=args.report)
    significant = [f"{c.variant}/{c.metric}" for c in report.comparisons if c.significant]
    return (f"ab: {sum(v.exposures for v in report.variants)} exposures, SRM p={report.srm.p_value:.3g}, "
            f"significant: {', '.join(significant) or 'none'}")


if __name__ == "__main__":
    sys.exit(main())
