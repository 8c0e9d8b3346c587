"""Step lines with timings for long local runs (`make demo`, `make up`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


class StepPrinter:
    def __init__(self, total: int, stream=sys.stdout) -> None:
        self.total = total
        self.done = 0
        self.stream = stream
        self.started = time.monotonic()

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.done += 1
        print(f"[{self.done}/{self.total}] {title} ...", file=self.stream, flush=True)
        began = time.monotonic()
        try:
            yield
        except BaseException:
            print(f"      FAILED after {time.monotonic() - began:.1f}s", file=self.stream, flush=True)
            raise
        print(f"      done in {time.monotonic() - began:.1f}s", file=self.stream, flush=True)

    def info(self, text: str) -> None:
        for line in text.splitlines():
            print(f"      {line}", file=self.stream, flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self.started
