"""`make bench`: run every benchmark script, then regenerate the README's benchmark table."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from benchmarks.readme_table import update_readme

HERE = Path(__file__).parent


def main() -> int:
    failures = []
    for script in sorted(HERE.glob("bench_*.py")):
        module = f"benchmarks.{script.stem}"
        print(f"== {module}", flush=True)
        began = time.monotonic()
        code = subprocess.call([sys.executable, "-m", module], cwd=HERE.parent)
        print(f"== {module}: exit {code} in {time.monotonic() - began:.0f}s", flush=True)
        if code:
            failures.append(module)
    update_readme()
    if failures:
        print("failed: " + ", ".join(failures), file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
