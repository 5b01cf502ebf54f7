"""Kernels of MIL ``linear``, ``matmul`` and ``einsum`` (BLAS through numpy.matmul / einsum).

Matrix products are cut into blocks computed on the worker threads
(:func:`parallel_matmul`), since BLAS itself runs single-threaded while a program runs.
"""

from __future__ import annotations

import numpy as np

from ..threads import blocks, parallel_map
from .table import kernel


def parallel_matmul(a, b, bias=None) -> np.ndarray:
    """``np.matmul(a, b)`` (plus ``bias``, broadcast over the last axis), computed in blocks on the workers.

    The blocks run along the leading batch axis when it is long enough, otherwise along the
    larger of the rows of ``a`` and the columns of ``b``; the cut depends only on the shapes.
    """
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim < 2 or b.ndim < 2:
        out = np.matmul(a, b)
        return out if bias is None else out + bias
    if a.ndim > 2 and b.ndim == 2 and a.flags.c_contiguous:
        # [*, M, K] @ [K, N] is one [prod(*) * M, K] @ [K, N] product: fewer, larger BLAS calls.
        flat = parallel_matmul(a.reshape(-1, a.shape[-1]), b, bias)
        return flat.reshape(a.shape[:-1] + (b.shape[-1],))
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    rows, depth, columns = a.shape[-2], a.shape[-1], b.shape[-1]
    out = np.empty(batch + (rows, columns), dtype=np.result_type(a, b))
    if out.size == 0 or depth == 0:
        out[...] = np.matmul(a, b)
        return out if bias is None else out + bias
    a = np.broadcast_to(a, batch + a.shape[-2:])
    b = np.broadcast_to(b, batch + b.shape[-2:])
    bias = None if bias is None else np.asarray(bias, dtype=out.dtype)
    count = int(np.prod(batch)) if batch else 1
    work_bytes = out.itemsize * count * (rows * depth + depth * columns + rows * columns)
    if batch and batch[0] >= 8:
        axis, length = 0, batch[0]
    elif rows >= columns:
        axis, length = -2, rows
    else:
        axis, length = -1, columns

    def compute(span: tuple[int, int]) -> None:
        cut = slice(*span)
        if axis == 0:
            target = out[cut]
            np.matmul(a[cut], b[cut], out=target)
            if bias is not None:
                target += bias
        elif axis == -2:
            target = out[..., cut, :]
            np.matmul(a[..., cut, :], b, out=target)
            if bias is not None:
                target += bias
        else:
            target = out[..., cut]
            np.matmul(a, b[..., cut], out=target)
            if bias is not None:
                target += bias if bias.ndim == 0 or bias.shape[-1] == 1 else bias[..., cut]

    parallel_map(compute, blocks(length, work_bytes))
    return out


@kernel("linear")
def linear(ctx, x, weight, bias=None):
    # weight is [D_out, D_in]; x is [*, D_in].
    x = np.asarray(x)
    weight = np.asarray(weight)
    if bias is not None and np.ndim(bias) > 1:
        return parallel_matmul(x, weight.T) + bias
    return parallel_matmul(x, weight.T, bias)


@kernel("matmul")
def matmul(ctx, x, y, transpose_x=False, transpose_y=False):
    x = np.asarray(x)
    y = np.asarray(y)
    if bool(transpose_x) and x.ndim >= 2:
        x = np.swapaxes(x, -1, -2)
    if bool(transpose_y) and y.ndim >= 2:
        y = np.swapaxes(y, -1, -2)
    # Rank-1 operands follow numpy semantics (prepend/append a unit dim, then drop it), as MIL specifies.
    return parallel_matmul(x, y)


@kernel("einsum")
def einsum(ctx, values, equation):
    return np.einsum(str(equation), *values, optimize=True)
