"""Shared by the benchmark scripts: print a figure with its conditions and keep it in results.json.

`make bench` runs every script (benchmarks/run_all.py) and regenerates the README's benchmark table
from benchmarks/results.json, so the table always shows the last measured figures.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).with_name("results.json")


def machine() -> str:
    return f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}"


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample list."""
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def record(
    key: str,
    *,
    figure: str,
    value: float,
    unit: str,
    conditions: str,
    target: str = "",
    meets: bool | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Print one figure and store it under `key` in results.json."""
    entry = {
        "figure": figure,
        "value": round(value, 4),
        "unit": unit,
        "conditions": f"{conditions}; {machine()}",
        "target": target,
        "meets": meets,
        "measured_at": time.strftime("%Y-%m-%d", time.gmtime()),
        **({"extra": extra} if extra else {}),
    }
    verdict = "" if meets is None else ("  [meets target]" if meets else "  [MISSES target]")
    print(f"{figure}: {value:,.3f} {unit}  ({entry['conditions']}){'  target ' + target if target else ''}{verdict}")
    # Benchmarks may run side by side: read-modify-write under a lock, and replace the file atomically.
    with open(RESULTS.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results[key] = entry
        staged = RESULTS.with_suffix(".tmp")
        staged.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        os.replace(staged, RESULTS)
