"""Progress lines of the demo: numbered stages with their elapsed time, and the total.

Lines may come from a background thread (a lineage whose plugin declares its
own environment trains there while the others train), so printing is serialised by a lock.
A ``live`` object (the CLI's :class:`~interop.cli.console.Console`) is told when a
stage starts and ends, so a terminal shows the running stage's elapsed time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

Echo = Callable[[str], None]


class LiveLine(Protocol):
    """What a stage tells a live elapsed-time line (the CLI's Console has these two methods)."""

    def start_step(self, text: str) -> None: ...

    def end_steps(self) -> None: ...


class Progress:
    """Prints ``[n/N] stage ...`` / ``done in S s`` and remembers every stage's duration."""

    def __init__(self, stages: int, echo: Echo = print, live: LiveLine | None = None):
        self.stages = stages
        self.echo = echo
        self.live = live
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
        heading = f"[{self._index}/{self.stages}] {title}"
        with self._lock:
            self.echo(heading)
        if self.live is not None:
            self.live.start_step(heading)
        began = time.perf_counter()
        try:
            yield
        finally:
            if self.live is not None:
                self.live.end_steps()
        seconds = time.perf_counter() - began
        self.durations[title] = seconds
        with self._lock:
            self.echo(f"      done in {seconds:.1f} s")

    @property
    def total(self) -> float:
        """Seconds since the demo started."""
        return time.perf_counter() - self.started
