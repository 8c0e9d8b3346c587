"""Training time and peak memory of the SageMaker training job for 1M training rows.

    python -m benchmarks.bench_training [--rows 1000000] [--keep DIR]

Setup (not timed): seeded synthetic data (recsys.datasets.synthetic: 20,000 users, 5,000 items, 1,000,000
events over 60 days) as the interactions channel; a training set in the batch builder's shape (user_id, item_id,
label_*, row_source) at the cutoff T = the 85% time quantile, labelled by the 7 days after T: each active user's
full candidate pool (default quotas), users added until the train split holds `--rows` rows, plus a validation
split of a quarter of that; both written as Parquet channels.

Timed: containers/training/train.py run as its own process exactly as SageMaker runs it (read the channels, fit
the candidate models at T, assemble every row, fit the LTR and Random Forest rankers with calibration, refit the
candidate models on all history for serving, write the bundle). Peak memory is the job process's maximum RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import record

REPO = Path(__file__).resolve().parents[1]
DAY = 86_400.0


def build_channels(root: Path, rows: int) -> float:
    from recsys.datasets.synthetic import generate
    from recsys.models import Catalog, CandidateModels, Interactions
    from recsys.ranking.features import user_requests
    from recsys.ranking.training import LabelConfig, candidate_rows, horizon_labels

    interactions_dir = root / "input/data/interactions"
    generate(interactions_dir, n_users=20_000, n_items=5_000, n_events=1_000_000, days=60, seed=7)
    frame = pd.read_csv(interactions_dir / "interactions.csv", dtype={"USER_ID": str, "ITEM_ID": str})
    catalog = Catalog.from_frame(pd.read_csv(interactions_dir / "items.csv", dtype={"ITEM_ID": str}), frame["ITEM_ID"])
    interactions = Interactions.from_frame(frame, catalog)
    cutoff = float(np.quantile(interactions.timestamp, 0.85))
    models = CandidateModels.fit(catalog, interactions, cutoff)
    labelled = horizon_labels(interactions, catalog, cutoff, cutoff + 7 * DAY, LabelConfig(event_types=("purchase",)))
    requests = user_requests(models, interactions, cutoff)
    users = np.random.default_rng(0).permutation(sorted(labelled["user_id"].unique())).tolist()
    parts: dict[str, list[pd.DataFrame]] = {"train": [], "validation": []}
    wanted = {"train": rows, "validation": rows // 4}
    counts = {"train": 0, "validation": 0}
    for user in users:
        split = "train" if counts["train"] < wanted["train"] else "validation"
        if counts[split] >= wanted[split]:
            break
        part = candidate_rows(models, requests, [user], labelled)
        part = part.rename(columns={"label_interaction": "label_click", "label_positive": "label_purchase"})
        part["label_play"] = 0
        part["row_source"] = np.where(part["label_click"] > 0, "interaction", "sampled")
        parts[split].append(part.drop(columns=["channel"]))
        counts[split] += len(part)
    for split, frames in parts.items():
        out = root / "input/data" / split
        out.mkdir(parents=True, exist_ok=True)
        pd.concat(frames, ignore_index=True).head(wanted[split]).to_parquet(out / "part-00000.parquet", index=False)
    (root / "input/config").mkdir(parents=True, exist_ok=True)
    (root / "input/config/hyperparameters.json").write_text(json.dumps({"cutoff": str(cutoff)}))
    return cutoff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", default=None, help="build the channels here and keep them")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        root = Path(args.keep or tmp)
        if not (root / "input/data/train").exists():
            began = time.perf_counter()
            build_channels(root, args.rows)
            print(f"built the channels in {time.perf_counter() - began:.0f}s")
        train_rows = len(pd.read_parquet(root / "input/data/train"))
        valid_rows = len(pd.read_parquet(root / "input/data/validation"))
        load = os.getloadavg()[0]
        command = [sys.executable, str(REPO / "containers/training/train.py"), "train",
                   "--train", str(root / "input/data/train"), "--validation", str(root / "input/data/validation"),
                   "--interactions", str(root / "input/data/interactions"), "--model-dir", str(root / "model"),
                   "--hyperparameters", str(root / "input/config/hyperparameters.json"),
                   "--output-dir", str(root / "output")]
        began = time.perf_counter()
        code = subprocess.call(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
        seconds = time.perf_counter() - began
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if code:
            raise SystemExit(f"the training job failed with exit code {code}")
        bundle = json.loads((root / "model/bundle.json").read_text())
        trees = {name: json.loads((root / "model/rankers" / name / "ranker.json").read_text())["info"]["trees"]
                 for name in bundle["rankers"]}
    conditions = (f"{train_rows:,} training + {valid_rows:,} validation rows (Parquet), interactions channel of "
                  f"1,000,000 synthetic events (20,000 users, 5,000 items); the whole job: candidate models fitted "
                  f"twice, {len(bundle['schema']['model'])} model + "
                  f"{sum(len(v) for k, v in bundle['schema'].items() if k != 'model')} batch features assembled, LTR "
                  f"(trees {trees['ltr']}) and RF (trees {trees['rf']}) fitted and calibrated; load average "
                  f"{load:.1f} at start")
    record("training_seconds_1m_rows", figure="Training job wall time, 1M rows", value=seconds, unit="s",
           conditions=conditions)
    record("training_peak_rss_mb_1m_rows", figure="Training job peak memory, 1M rows", value=peak_mb, unit="MiB",
           conditions=conditions)


if __name__ == "__main__":
    main()
