"""`python -m recsys COMMAND`: the project's command line.

- `demo`: the local platform end to end (what `make demo` runs);
- `up` / `down` / `status`: keep the local services running between commands;
- `localstack-up` / `localstack-down`: LocalStack on the host, the second local AWS target (docs/deploy.md);
- `import`: import a Personalize-format CSV folder into the data lake;
- `evaluate`: the offline evaluation report (docs/evaluation.md);
- `batch-recommend`: batch recommendations, JSON lines of users -> JSON lines of recommendations (S3 or local);
- `pipeline-start`: start the deployed daily pipeline now (docs/pipeline.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = REPO_ROOT / ".local"
STATE_FILE = STATE_DIR / "platform.json"
LOCALSTACK_STATE_FILE = STATE_DIR / "localstack.json"
DEFAULT_DATASET = REPO_ROOT.parent / "shared" / "datasets" / "movietweetings-100k"


def _up(args: argparse.Namespace) -> int:
    from recsys.local.serve import up

    up(STATE_FILE, args.stage, Path(args.dataset), tracker_port=args.tracker_port, recommend_port=args.recommend_port)
    return 0


def _down(args: argparse.Namespace) -> int:
    from recsys.local.platform import shut_down

    shut_down(STATE_FILE)
    return 0


def _status(args: argparse.Namespace) -> int:
    from recsys.local.platform import describe

    print(describe(STATE_FILE))
    return 0


def _localstack_up(args: argparse.Namespace) -> int:
    from recsys.local.localstack import up

    up(LOCALSTACK_STATE_FILE)
    return 0


def _localstack_down(args: argparse.Namespace) -> int:
    from recsys.local.localstack import down

    down(LOCALSTACK_STATE_FILE)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from recsys.local.demo import run_demo

    run_demo(STATE_FILE, stage=args.stage, dataset=Path(args.dataset), keep_running=args.keep_running)
    return 0


def _import(args: argparse.Namespace) -> int:
    from recsys.datasets.importer import DatasetImportError, import_dataset

    try:
        report = import_dataset(args.dataset, args.to)
    except DatasetImportError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(report.summary())
    return 0


def _batch_recommend(args: argparse.Namespace) -> int:
    from recsys.recommend.cli import run_batch_command

    return run_batch_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recsys", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--stage", default=None, help="config stage (default: $RECSYS_STAGE or dev)")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the local platform end to end")
    demo.add_argument("--dataset", default=str(DEFAULT_DATASET), help="MovieTweetings folder (default: %(default)s)")
    demo.add_argument("--keep-running", action="store_true", help="leave the services running (as `make up` does)")
    demo.set_defaults(run=_demo)

    from recsys.local.serve import RECOMMEND_PORT, TRACKER_PORT

    up = commands.add_parser("up", help="keep the local platform running: the demo's flow if nothing is deployed yet, "
                                        "then the tracker and recommend APIs until Ctrl-C (services stay up)")
    up.add_argument("--dataset", default=str(DEFAULT_DATASET), help="MovieTweetings folder (default: %(default)s)")
    up.add_argument("--tracker-port", type=int, default=TRACKER_PORT)
    up.add_argument("--recommend-port", type=int, default=RECOMMEND_PORT)
    up.set_defaults(run=_up)
    commands.add_parser("down", help="stop the local services that `up` started").set_defaults(run=_down)
    commands.add_parser("status", help="show what runs where").set_defaults(run=_status)
    commands.add_parser("localstack-up", help="start LocalStack on the host (port $LOCALSTACK_PORT, default 4566)"
                        ).set_defaults(run=_localstack_up)
    commands.add_parser("localstack-down", help="stop the LocalStack that localstack-up started"
                        ).set_defaults(run=_localstack_down)

    from recsys.evaluation.cli import add_arguments as add_evaluate_arguments
    from recsys.evaluation.cli import run as run_evaluate

    evaluate = commands.add_parser("evaluate", help="offline evaluation report on a Personalize-format CSV folder")
    add_evaluate_arguments(evaluate)
    evaluate.set_defaults(run=run_evaluate)

    importer = commands.add_parser("import", help="import a Personalize-format CSV folder into the lake")
    importer.add_argument("--dataset", required=True, help="folder (or s3:// prefix) with interactions.csv, users.csv, items.csv")
    importer.add_argument("--to", required=True, help="destination: s3://bucket[/prefix] or a local folder")
    importer.set_defaults(run=_import)

    from recsys.recommend.cli import add_batch_arguments

    batch = commands.add_parser("batch-recommend", help="batch recommendations: users JSON lines -> S3/local")
    add_batch_arguments(batch)
    batch.set_defaults(run=_batch_recommend)

    from recsys.pipeline.start import add_arguments as add_pipeline_arguments
    from recsys.pipeline.start import run as run_pipeline

    pipeline = commands.add_parser("pipeline-start", help="start the deployed daily pipeline (docs/pipeline.md)")
    add_pipeline_arguments(pipeline)
    pipeline.set_defaults(run=run_pipeline)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
