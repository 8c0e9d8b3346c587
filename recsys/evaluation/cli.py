"""`recsys evaluate`: the command-line face of recsys.evaluation.pipeline.evaluate.

Wire it into the project CLI with

    evaluate = commands.add_parser("evaluate", help=...)
    add_arguments(evaluate)
    evaluate.set_defaults(run=run)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from recsys.models.data import DataError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True,
                        help="Personalize CSV folder or s3:// prefix (interactions.csv, items.csv, users.csv), "
                             "a MovieTweetings folder, or a lake copy")
    parser.add_argument("--cutoff", type=float, default=None,
                        help="global time split, unix seconds (default: the 80%% quantile of TIMESTAMP)")
    parser.add_argument("--out", default="evaluation", help="folder for report.json, report.html and plots")
    parser.add_argument("--dump-recs", default=None, help="write each test user's top 25 as JSON lines here")
    parser.add_argument("--save-model", default=None,
                        help="write the evaluated model bundle here (loadable by the inference server)")
    parser.add_argument("--positive-threshold", default="auto",
                        help="EVENT_VALUE at or above which a test interaction is relevant; 'auto' (7 for 0-10 "
                             "ratings, else none) or 'none' (every interaction is relevant)")
    parser.add_argument("--positive-event-types", default="",
                        help="comma-separated EVENT_TYPEs that are relevant (or'ed with the threshold)")


def config_from_args(args: argparse.Namespace):
    from recsys.evaluation.pipeline import EvalConfig

    threshold: float | str | None = args.positive_threshold
    if isinstance(threshold, str):
        if threshold.lower() == "none":
            threshold = None
        elif threshold.lower() != "auto":
            try:
                threshold = float(threshold)
            except ValueError:
                raise DataError(f"--positive-threshold: {threshold!r} is not a number, 'auto' or 'none'") from None
    types = tuple(t.strip() for t in args.positive_event_types.split(",") if t.strip())
    return EvalConfig(positive_threshold=threshold, positive_event_types=types)


def run(args: argparse.Namespace) -> int:
    from recsys.evaluation.pipeline import evaluate
    from recsys.evaluation.report import ranking_table_markdown

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    try:
        report = evaluate(args.dataset, cutoff=args.cutoff, out_dir=args.out, dump_recs=args.dump_recs,
                          save_model=args.save_model, config=config_from_args(args))
    except (DataError, ValueError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report["conditions"], indent=2))
    print(ranking_table_markdown(report, 10))
    print(f"report: {args.out}/report.html")
    return 0
