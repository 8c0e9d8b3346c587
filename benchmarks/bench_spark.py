"""The Spark batch job on synthetic lakes of N events over 60 days: wall time and peak memory on local[2].

    python -m benchmarks.bench_spark                          # 1M, 5M and 10M events (what `make bench` runs)
    python -m benchmarks.bench_spark --events 1000000         # one point

For each N, a lake is generated in the real layout (gzipped JSON lines under events/event_date=.../, users and
items CSV imports), then containers/processing/job.py runs in a fresh process with --mode all (user, item and
item-pair features at the cutoff, plus the training set at cutoff - 7 days) on local[2] with a 3 GB driver.
The peak memory is the largest resident set of the job's whole process tree (Python driver, JVM, Python
workers), sampled every 0.2 s. Generation time is not counted.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from benchmarks.common import record

REPO = Path(__file__).resolve().parent.parent
CUTOFF = 1_709_251_200  # 2024-03-01T00:00:00Z
DAY = 86_400
GENRES = [f"genre{i}" for i in range(30)]
DRIVER_MEMORY = "3g"


def generate_lake(root: Path, events: int, seed: int = 7) -> dict[str, int]:
    """Synthetic lake: popularity-skewed users and items, a realistic mix of event types, 60 days before CUTOFF."""
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    users, items = max(events // 20, 100), max(events // 100, 100)
    rng = random.Random(seed)
    (root / "datasets" / "users" / "import_id=1").mkdir(parents=True)
    (root / "datasets" / "items" / "import_id=1").mkdir(parents=True)
    with gzip.open(root / "datasets" / "users" / "import_id=1" / "users.csv.gz", "wt", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["USER_ID", "AGE", "GEO", "ACQUISITION_CHANNEL", "TOPICS"])
        for u in range(users):
            writer.writerow(
                [
                    f"u{u}",
                    rng.randint(16, 70),
                    rng.choice(["ES", "IN", "US", "RU"]),
                    rng.choice(["ads", "organic", "referral"]),
                    "|".join(rng.sample(GENRES, 2)),
                ]
            )
    with gzip.open(root / "datasets" / "items" / "import_id=1" / "items.csv.gz", "wt", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ITEM_ID", "GENRES", "CREATOR", "PRICE", "IS_PAID", "CREATION_TIMESTAMP"])
        for i in range(items):
            writer.writerow(
                [
                    f"i{i}",
                    "|".join(rng.sample(GENRES, rng.randint(1, 3))),
                    f"c{i // 10}",
                    round(rng.uniform(1, 100), 2),
                    rng.choice(["true", "false"]),
                    CUTOFF - rng.randint(1, 2000) * DAY,
                ]
            )

    spark = SparkSession.builder.master("local[2]").config("spark.sql.session.timeZone", "UTC").getOrCreate()
    kinds = (
        F.when(F.col("r") < 0.40, "view")
        .when(F.col("r") < 0.60, "click")
        .when(F.col("r") < 0.75, "listen")
        .when(F.col("r") < 0.80, "like")
        .when(F.col("r") < 0.83, "purchase")
        .when(F.col("r") < 0.85, "rating")
        .otherwise("impression")
    )

    def skewed(salt: int, size: int):  # squared uniform: low ids are much more popular
        return (F.pow(F.rand(seed + salt), 2) * size).cast("long")

    frame = (
        spark.range(events)
        .select(
            F.concat(F.lit("e"), F.col("id")).alias("event_id"),
            F.concat(F.lit("u"), skewed(1, users)).alias("user_id"),
            F.concat(F.lit("i"), skewed(2, items)).alias("item"),
            F.rand(seed + 3).alias("r"),
            (F.lit(CUTOFF) - F.rand(seed + 4) * 60 * DAY).alias("timestamp"),
            (F.rand(seed + 5) * 1800).alias("duration"),
        )
        .select(
            "event_id",
            "user_id",
            kinds.alias("event_type"),
            "timestamp",
            F.when(kinds != "impression", F.col("item")).alias("item_id"),
            F.when(kinds == "listen", F.col("duration"))
            .when(kinds == "rating", F.floor(F.col("r") * 100) % 11)
            .alias("event_value"),
            F.when(kinds == "impression", F.array(*(F.concat(F.lit("i"), skewed(10 + k, items)) for k in range(5))))
            .otherwise(F.array())
            .alias("impression"),
            F.from_unixtime("timestamp", "yyyy-MM-dd").alias("event_date"),
        )
    )
    frame.write.partitionBy("event_date").option("compression", "gzip").json(str(root / "events"))
    spark.stop()
    return {"users": users, "items": items}


def run_job(lake: Path, output: Path) -> dict:
    """The job in a fresh process; wall time, peak RSS of its process tree, and its own summary."""
    env = {**os.environ, "PYSPARK_SUBMIT_ARGS": f"--driver-memory {DRIVER_MEMORY} pyspark-shell"}
    command = [
        sys.executable,
        str(REPO / "containers" / "processing" / "job.py"),
        "--lake",
        str(lake),
        "--output",
        str(output),
        "--cutoff",
        str(CUTOFF),
        "--mode",
        "all",
        "--master",
        "local[2]",
    ]
    began = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = {"rss": 0}

    def sample() -> None:
        parent = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                tree = [parent, *parent.children(recursive=True)]
                peak["rss"] = max(peak["rss"], sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = process.communicate()
    wall = time.perf_counter() - began
    sampler.join()
    if process.returncode:
        raise SystemExit(f"job failed with exit code {process.returncode}")
    return {"wall_s": wall, "peak_rss_mb": peak["rss"] / 2**20, "summary": json.loads(stdout.strip().splitlines()[-1])}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 5_000_000, 10_000_000])
    args = parser.parse_args()
    for events in args.events:
        with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
            lake, output = Path(tmp) / "lake", Path(tmp) / "out"
            began = time.perf_counter()
            sizes = generate_lake(lake, events)
            generated = time.perf_counter() - began
            result = run_job(lake, output)
        rows = result["summary"]["rows"]
        conditions = (
            f"{events:,} events over 60 days, {sizes['users']:,} users, {sizes['items']:,} items; "
            f"job.py --mode all (features + training set) on local[2], driver {DRIVER_MEMORY}, JVM start included"
        )
        label = f"{events / 1e6:g}M"
        record(
            f"spark_batch_job_{label}_wall",
            figure=f"Spark batch job, {label} events: wall time",
            value=result["wall_s"],
            unit="s",
            conditions=conditions,
            extra={"job_seconds": result["summary"]["seconds"], "rows": rows, "generate_s": round(generated, 1)},
        )
        record(
            f"spark_batch_job_{label}_memory",
            figure=f"Spark batch job, {label} events: peak memory",
            value=result["peak_rss_mb"],
            unit="MB",
            conditions=conditions + "; RSS of driver + JVM + Python workers",
        )
        print(f"  rows: {rows}; events/s: {events / result['wall_s']:,.0f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
