"""Dataset import: rows per second and peak memory, importing N synthetic interactions into a local lake folder.

    python -m benchmarks.bench_import                 # 1,000,000 interactions
    python -m benchmarks.bench_import --events 10000000

The synthetic dataset is generated first (its rate is reported too), then imported in a fresh process, so that the
peak RSS is the importer's alone; an idle process with the same imports gives the baseline. Bounded memory shows as a
peak that does not grow with N.
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

from benchmarks.common import record


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _child(argv: list[str]) -> None:
    """Run in a fresh process: import modules, optionally import a dataset, print timings and peak RSS as JSON."""
    from recsys.datasets.importer import import_dataset

    result: dict[str, float] = {"baseline_rss_mb": _peak_rss_mb()}
    if argv:
        source, destination = argv
        began = time.perf_counter()
        report = import_dataset(source, destination)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result |= {"seconds": time.perf_counter() - began, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                   "rows": sum(report.rows.values()), "interactions": report.interactions, "files": len(report.keys)}
    result["peak_rss_mb"] = _peak_rss_mb()
    print(json.dumps(result))


def _run_child(*argv: str) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_import", "--child", *argv], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        _child(args.child)
        return 0

    from recsys.datasets.synthetic import generate

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-import-") as scratch:
        source, lake = Path(scratch) / "csv", Path(scratch) / "lake"
        began = time.perf_counter()
        generate(source, n_users=args.users, n_items=args.items, n_events=args.events, days=args.days, seed=1)
        generated_s = time.perf_counter() - began
        size_mb = sum(p.stat().st_size for p in source.iterdir()) / 2**20
        baseline = _run_child()
        run = _run_child(str(source), str(lake))
        lake_mb = sum(p.stat().st_size for p in lake.rglob("*") if p.is_file()) / 2**20

    conditions = (
        f"{args.events:,} synthetic interactions ({args.users:,} users, {args.items:,} items, {args.days} days; "
        f"CSVs {size_mb:,.0f} MiB) into a local lake folder ({run['files']:,.0f} gzip files, {lake_mb:,.0f} MiB); "
        f"default import config (32 MiB buffer); load average {load:.1f} at start"
    )
    record(
        "dataset_import_rows_per_s",
        figure="Dataset import throughput",
        value=run["rows"] / run["seconds"],
        unit="rows/s",
        conditions=f"{conditions}; {run['seconds']:.1f} s in all, validation included; "
        f"{run['rows'] / run['cpu_seconds']:,.0f} rows per CPU second",
        extra={"rows_per_cpu_s": round(run["rows"] / run["cpu_seconds"])},
    )
    record(
        "dataset_import_peak_rss_mb",
        figure="Dataset import peak RSS",
        value=run["peak_rss_mb"],
        unit="MiB",
        conditions=f"{conditions}; an idle process with the same imports peaks at {baseline['peak_rss_mb']:.0f} MiB",
    )
    record(
        "dataset_generate_events_per_s",
        figure="Synthetic dataset generation",
        value=args.events / generated_s,
        unit="events/s",
        conditions=f"{args.events:,} interactions, {args.users:,} users, {args.items:,} items, {args.days} days",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
