"""The Evaluate state's processing job: the offline evaluation (recsys.evaluation) on the run's window.

Runs in the training image (which has the model code but no plotting libraries), so it writes report.json only:

    python3 -m recsys.pipeline.evaluate_job --dataset /opt/ml/processing/input/interactions \
        --out /opt/ml/processing/output

`--dataset` is the lake copy that the run's manifest (recsys.pipeline.run.lake_manifest) puts in the job's input
folder; the evaluation trains the same candidate models and rankers the Train step trains, on a time split of
that window, and compares them with the popularity and collaborative-filtering baselines. The QualityGate
state reads the report. Exit code 2 with a message naming the problem when the data cannot be evaluated.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

REPORT_FILE = "report.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="evaluate_job", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="lake copy or Personalize CSV folder")
    parser.add_argument("--out", required=True, help=f"folder for {REPORT_FILE}")
    parser.add_argument("--cutoff", type=float, default=None, help="test split, unix seconds (default: 80%% quantile)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    from recsys.evaluation.pipeline import evaluate
    from recsys.models.data import DataError

    try:
        report = evaluate(args.dataset, cutoff=args.cutoff)
    except (DataError, ValueError) as exc:
        print(f"evaluate_job: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / REPORT_FILE).write_text(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
