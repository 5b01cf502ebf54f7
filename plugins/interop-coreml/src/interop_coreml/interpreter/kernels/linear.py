"""Kernels of MIL ``linear``, ``matmul`` and ``einsum`` (BLAS through numpy.matmul / einsum)."""

from __future__ import annotations

import numpy as np

from .registry import kernel


@kernel("linear")
def linear(ctx, x, weight, bias=None):
    # weight is [D_out, D_in]; x is [*, D_in].
    out = np.matmul(x, np.asarray(weight).T)
    if bias is not None:
        out = out + bias
    return out


@kernel("matmul")
def matmul(ctx, x, y, transpose_x=False, transpose_y=False):
    x = np.asarray(x)
    y = np.asarray(y)
    if bool(transpose_x) and x.ndim >= 2:
        x = np.swapaxes(x, -1, -2)
    if bool(transpose_y) and y.ndim >= 2:
        y = np.swapaxes(y, -1, -2)
    # Rank-1 operands follow numpy semantics (prepend/append a unit dim, then drop it), as MIL specifies.
    return np.matmul(x, y)


@kernel("einsum")
def einsum(ctx, values, equation):
    return np.einsum(str(equation), *values, optimize=True)
