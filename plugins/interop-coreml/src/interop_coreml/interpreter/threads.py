"""Splitting a kernel's work over the machine's cores.

numpy releases the GIL inside BLAS calls, copies and ufunc loops, so a kernel that
cuts its output into independent pieces (column blocks of a convolution, rows of a
matrix product, channels of a pooling) can compute them on several Python threads
at once. Letting BLAS thread each call instead leaves the copies and elementwise
work around it on one core, and makes the threads meet at a barrier inside every
call; pieces taken in turn by the calling thread and ``thread_count() - 1`` workers,
each with a single-threaded BLAS, keep every core busy on everything.

How many threads: the number BLAS itself would use (OPENBLAS_NUM_THREADS,
OMP_NUM_THREADS or the cores it sees), read once through threadpoolctl; without
threadpoolctl, the CPUs this process may run on. ``INTEROP_INTERPRETER_THREADS=N``
overrides both. While a program runs, BLAS is held to one thread (and given back its
own setting afterwards) so that the workers do not oversubscribe the cores.

How a kernel cuts its work (:func:`blocks`) depends on the work's size and on the
number of threads: as few pieces as keep every thread busy, since BLAS is less
efficient on narrow products. Results are deterministic for a given thread count;
another count may cut a product differently, which BLAS may round differently in the
last bit.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_lock = threading.Lock()
_state: dict[str, Any] = {"count": None, "pool": None, "controller": None, "blas_users": 0, "blas_limit": None}
_in_worker = threading.local()
_scratch = threading.local()


def _controller() -> Any:
    """threadpoolctl's view of the loaded BLAS libraries, or None when threadpoolctl is missing."""
    if _state["controller"] is None:
        import numpy  # noqa: F401  - threadpoolctl sees only the BLAS libraries already loaded

        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _state["controller"] = False
        else:
            _state["controller"] = ThreadpoolController()
    return _state["controller"] or None


def thread_count() -> int:
    """How many threads kernels split their work over (at least 1)."""
    if _state["count"] is None:
        with _lock:
            if _state["count"] is None:
                _state["count"] = _decide_thread_count()
    return _state["count"]


def _decide_thread_count() -> int:
    configured = os.environ.get("INTEROP_INTERPRETER_THREADS", "").strip()
    if configured:
        try:
            return max(1, int(configured))
        except ValueError:
            pass
    controller = _controller()
    if controller is not None:
        blas = [info["num_threads"] for info in controller.info() if info.get("user_api") == "blas"]
        if blas:
            return max(1, min(blas))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _pool() -> ThreadPoolExecutor:
    if _state["pool"] is None:
        with _lock:
            if _state["pool"] is None:
                _state["pool"] = ThreadPoolExecutor(
                    max_workers=max(1, thread_count() - 1), thread_name_prefix="interop-interpreter",
                    initializer=_mark_worker,
                )
    return _state["pool"]


def _mark_worker() -> None:
    _in_worker.active = True


def _forget_pool_after_fork() -> None:
    _state["pool"] = None  # the child has none of the parent's threads; a new pool starts its own


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def parallel_map(function: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[function(item) for item in items]``, computed on the calling thread and the workers together.

    Runs in the calling thread alone when there is one item, one thread, or when called from a
    worker (no nesting, so no deadlock). Each thread takes the next piece not yet taken, so a
    piece's result does not depend on which thread computed it. Once a piece fails no other
    starts, and the first failure (in item order) is raised after every started piece ended.
    """
    if len(items) <= 1 or thread_count() <= 1 or getattr(_in_worker, "active", False):
        return [function(item) for item in items]
    results: list[Any] = [None] * len(items)
    errors: list[tuple[int, BaseException]] = []
    taken = [0]
    taking = threading.Lock()

    def drain() -> None:
        while not errors:
            with taking:
                index = taken[0]
                taken[0] += 1
            if index >= len(items):
                return
            try:
                results[index] = function(items[index])
            except BaseException as exc:  # noqa: BLE001 - raised by the caller once every piece ended
                errors.append((index, exc))

    # The caller computes pieces too: one hand-off fewer per call, and one worker fewer to wake.
    helpers = [_pool().submit(drain) for _ in range(min(thread_count(), len(items)) - 1)]
    _in_worker.active = True
    try:
        drain()
    except BaseException as exc:  # noqa: BLE001 - an interruption between pieces
        errors.append((len(items), exc))
    finally:
        _in_worker.active = False
    for helper in helpers:
        while True:  # the pieces write into the caller's buffers: they must end before it goes on
            try:
                helper.exception()
                break
            except BaseException as exc:  # noqa: BLE001 - interrupted while waiting: wait on, raise after
                errors.append((len(items), exc))
    if errors:
        raise min(errors, key=lambda pair: pair[0])[1]
    return results


# Kernels cut their work into one piece per thread, or more when a piece would exceed
# _BLOCK_BYTES (the im2col columns of a convolution's piece are a temporary of that size).
_BLOCK_BYTES = 1 << 23


def blocks(length: int, work_bytes: int, block_bytes: int | None = None) -> list[tuple[int, int]]:
    """``[0, length)`` cut into contiguous ranges, a multiple of the thread count, for ``work_bytes`` of work
    in pieces of at most ``block_bytes`` (default _BLOCK_BYTES)."""
    threads = thread_count()
    limit = block_bytes or _BLOCK_BYTES
    return split(length, threads * max(1, -(-work_bytes // (threads * limit))))


def split(length: int, pieces: int, minimum: int = 1) -> list[tuple[int, int]]:
    """``[0, length)`` cut into at most ``pieces`` contiguous, nearly equal ranges of >= ``minimum``."""
    pieces = max(1, min(pieces, length // max(1, minimum)))
    bounds = [length * i // pieces for i in range(pieces + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Hold BLAS to one thread while kernels run their own workers (nestable, thread-safe)."""
    controller = _controller() if thread_count() > 1 else None
    if controller is None:
        yield
        return
    with _lock:
        _state["blas_users"] += 1
        if _state["blas_users"] == 1:
            _state["blas_limit"] = controller.limit(limits=1, user_api="blas")
    try:
        yield
    finally:
        with _lock:
            _state["blas_users"] -= 1
            if _state["blas_users"] == 0 and _state["blas_limit"] is not None:
                _state["blas_limit"].restore_original_limits()
                _state["blas_limit"] = None


def scratch(shape: tuple[int, ...], dtype: Any) -> Any:
    """An uninitialised array for temporary use by the calling thread (im2col columns, say).

    The memory is the thread's own and is reused by its next call, so the array must be
    dead before the thread asks again. Reusing it spares the kernel from handing out and
    zeroing fresh pages for every block of every run.
    """
    import numpy as np

    dtype = np.dtype(dtype)
    count = 1
    for size in shape:
        count *= int(size)
    needed = count * dtype.itemsize
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or buffer.nbytes < needed:
        buffer = _scratch.buffer = np.empty(max(needed, 1), dtype=np.uint8)
    return buffer[:needed].view(dtype).reshape(shape)


# map_slices hands the function pieces of about this many bytes: small enough that the
# function's temporaries stay in a core's cache, large enough that numpy's per-call cost is small.
_SLICE_BYTES = 1 << 17


def map_slices(function: Callable[[Any], Any], x: Any) -> Any:
    """``function(x)`` for an elementwise ``function``, computed slice by slice on the worker threads.

    The result has x's shape and memory order (a channel-major x gives a channel-major result).
    """
    import numpy as np

    x = np.asarray(x)
    flat = x.ravel(order="K")  # a view when x is contiguous in some axis order
    out = np.empty_like(x)
    flat_out = out.ravel(order="K")
    if x.size == 0 or not np.shares_memory(flat_out, out):
        return function(x)
    step = max(1024, _SLICE_BYTES // max(1, x.itemsize))

    def compute(span: tuple[int, int]) -> None:
        for start in range(span[0], span[1], step):
            stop = min(start + step, span[1])
            flat_out[start:stop] = function(flat[start:stop])

    parallel_map(compute, split(x.size, thread_count() if x.size >= 4 * step else 1))
    return out
