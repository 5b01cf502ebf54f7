"""Large result buffers a program reuses from one run to the next.

A convolution's output and its padded input are new arrays of a few to tens of MiB
on every run; fresh memory costs the kernel a page fault and a page clear for every
2 MiB, about as much as another pass over the data. A program keeps the large arrays
its kernels allocate in a pool and hands one out again when nothing refers to it any
more: every numpy view of an array holds a reference to it, so a buffer whose
reference count is back to the pool's own is free. The pool holds at most
``limit`` bytes (beyond it, kernels get ordinary arrays) and lives as long as the
program.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np

# Smaller arrays come cheaply from malloc; pooling them would only cost bookkeeping.
_SMALLEST = 1 << 20
DEFAULT_LIMIT = 1 << 30


class BufferPool:
    """Uninitialised arrays backed by reusable buffers (see the module doc)."""

    def __init__(self, limit: int = DEFAULT_LIMIT):
        self.limit = limit
        self._buffers: list[np.ndarray] = []
        self._bytes = 0
        self._lock = threading.Lock()

    def empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """An uninitialised C-contiguous array of ``shape`` and ``dtype``."""
        dtype = np.dtype(dtype)
        size = dtype.itemsize
        for dim in shape:
            size *= int(dim)
        if size < _SMALLEST:
            return np.empty(shape, dtype)
        with self._lock:
            for buffer in self._buffers:
                # References: the list, getrefcount's argument, the loop variable.
                if buffer.nbytes == size and sys.getrefcount(buffer) == 3:
                    return buffer.view(dtype).reshape(shape)
            if self._bytes + size > self.limit:
                return np.empty(shape, dtype)
            buffer = np.empty(size, np.uint8)
            self._buffers.append(buffer)
            self._bytes += size
            return buffer.view(dtype).reshape(shape)

    @property
    def nbytes(self) -> int:
        """Bytes held by the pool."""
        return self._bytes


def empty(context: Any, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised array from the program's pool (``context.buffers``), or a plain one."""
    pool = getattr(context, "buffers", None)
    return pool.empty(shape, dtype) if pool is not None else np.empty(shape, dtype)
