"""Step lines with timings for long local runs (`make demo`, `make up`, the local daily pipeline).

    steps = StepPrinter(total=3)
    with steps.step("Import the dataset"):
        steps.info("100,000 interactions")
    inner = steps.nested(total=10)            # sub-steps, indented under the current step
    inner.skip("RegisterModel", "the quality gate rejected the model")
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

INDENT = "      "


class StepPrinter:
    def __init__(self, total: int, stream=None, indent: str = "") -> None:
        self.total = total
        self.done = 0
        self.stream = stream if stream is not None else sys.stdout
        self.indent = indent
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}

    def _print(self, text: str) -> None:
        print(f"{self.indent}{text}", file=self.stream, flush=True)

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        self.done += 1
        self._print(f"[{self.done}/{self.total}] {title} ...")
        began = time.monotonic()
        try:
            yield
        except BaseException:
            self.timings[title] = time.monotonic() - began
            self._print(f"{INDENT}FAILED after {self.timings[title]:.1f}s")
            raise
        self.timings[title] = time.monotonic() - began
        self._print(f"{INDENT}done in {self.timings[title]:.1f}s")

    def skip(self, title: str, reason: str) -> None:
        self.done += 1
        self._print(f"[{self.done}/{self.total}] {title} skipped: {reason}")

    def info(self, text: str) -> None:
        for line in text.splitlines():
            self._print(f"{INDENT}{line}")

    def nested(self, total: int) -> "StepPrinter":
        """A printer for the sub-steps of the current step, indented under it, on the same stream."""
        return StepPrinter(total, self.stream, self.indent + INDENT)

    def elapsed(self) -> float:
        return time.monotonic() - self.started
