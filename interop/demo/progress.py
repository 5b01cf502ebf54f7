"""Progress lines of the demo: numbered stages with their elapsed time, and the total.

Lines may come from a background thread (the MXNet lineage runs in its own
environment while the others train), so printing is serialised by a lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Echo = Callable[[str], None]


class Progress:
    """Prints ``[n/N] stage ...`` / ``done in S s`` and remembers every stage's duration."""

    def __init__(self, stages: int, echo: Echo = print):
        self.stages = stages
        self.echo = echo
        self.started = time.perf_counter()
        self.durations: dict[str, float] = {}
        self._lock = threading.Lock()
        self._index = 0

    def say(self, message: str) -> None:
        """One indented line under the current stage (safe from any thread)."""
        with self._lock:
            self.echo(f"      {message}")

    @contextmanager
    def stage(self, title: str) -> Iterator[None]:
        """Time a stage; its duration is recorded under ``title``."""
        self._index += 1
        with self._lock:
            self.echo(f"[{self._index}/{self.stages}] {title}")
        began = time.perf_counter()
        yield
        seconds = time.perf_counter() - began
        self.durations[title] = seconds
        with self._lock:
            self.echo(f"      done in {seconds:.1f} s")

    @property
    def total(self) -> float:
        """Seconds since the demo started."""
        return time.perf_counter() - self.started
