"""The table of numpy kernels, keyed by MIL op type.

A kernel is ``fn(ctx, **inputs)`` where ``inputs`` are the op's MIL inputs as
numpy arrays (float16 already widened to float32), Python strings, or lists of
arrays for tuple inputs; ``ctx`` is an OpContext describing the op's declared
outputs.  It returns one array, or a tuple for multi-output ops.  The program
then casts every result to the dtype the program declares for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

Kernel = Callable[..., Any]

KERNELS: dict[str, Kernel] = {}


@dataclass
class OpContext:
    """What a kernel may need to know about the op beyond its inputs."""

    op_type: str
    op_name: str
    output_dtypes: list[np.dtype | None] = field(default_factory=list)
    output_shapes: list[tuple[int | None, ...]] = field(default_factory=list)
    opset: str = ""
    # Params whose array the kernel may overwrite: freshly allocated by an earlier kernel and
    # not read after this op.  Empty unless the program allows in-place evaluation.
    overwritable: frozenset[str] = frozenset()
    # Elementwise ops the program fused into this one ("add" of ``fused_input``, "relu"), applied to
    # the result in this order; only kernels that accept ``fused_input`` are given any.
    epilogue: tuple[str, ...] = ()
    # The program's pool of large buffers (interpreter.buffers), shared by every op of the program.
    buffers: Any = None


def kernel(*op_types: str) -> Callable[[Kernel], Kernel]:
    """Register the decorated function as the kernel of each of ``op_types``."""

    def register(fn: Kernel) -> Kernel:
        for op_type in op_types:
            if op_type in KERNELS:
                raise RuntimeError(f"two kernels registered for MIL op {op_type!r}")
            KERNELS[op_type] = fn
        return fn

    return register


def as_int_tuple(value: Any) -> tuple[int, ...]:
    """A const int vector (or scalar) as a tuple of Python ints."""
    return tuple(int(v) for v in np.atleast_1d(np.asarray(value)).ravel())


def normalize_axis(axis: Any, rank: int) -> int:
    """A possibly negative axis as a non-negative one."""
    axis = int(axis)
    return axis + rank if axis < 0 else axis


def normalize_axes(axes: Any, rank: int) -> tuple[int, ...]:
    """Possibly negative axes as sorted non-negative ones."""
    return tuple(sorted(normalize_axis(a, rank) for a in as_int_tuple(axes)))
