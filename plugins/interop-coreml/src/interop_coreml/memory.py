"""Giving freed heap memory back to the system (glibc's ``malloc_trim``).

glibc keeps the memory Python and numpy free for reuse. Two steps leave a lot of it
behind: a finished translation frees arrays about the weights' size, and coremltools'
loader of a saved program copies each weight twice and frees one copy, leaving holes
between the arrays it keeps. glibc also raises its mmap threshold as large arrays are
freed, so later arrays of the same sizes land on that heap instead of in mappings of
their own. ``malloc_trim`` returns the free pages, including those of holes. Where the
C library has no ``malloc_trim`` (macOS, musl) this is a no-op.
"""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None


def return_freed_memory() -> None:
    """Return the heap's free pages to the system (a few milliseconds)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class TrimEvery:
    """Call :func:`return_freed_memory` each time at least ``interval`` bytes were added since the last call."""

    def __init__(self, interval: int):
        self.interval = interval
        self._since = 0

    def add(self, nbytes: int) -> None:
        self._since += nbytes
        if self._since >= self.interval:
            self._since = 0
            return_freed_memory()
