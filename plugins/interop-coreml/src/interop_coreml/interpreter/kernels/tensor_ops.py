"""Kernels of MIL tensor ops (iOS15/iOS16/iOS17 ``tensor_operation.py``) and ``select``."""

from __future__ import annotations

import numpy as np

from .table import as_int_tuple, kernel, normalize_axis


@kernel("identity")
def identity(ctx, x):
    return np.array(x, copy=True)


@kernel("shape")
def shape(ctx, x):
    return np.asarray(np.shape(x), dtype=np.int32)


@kernel("concat")
def concat(ctx, values, axis, interleave=False):
    arrays = [np.atleast_1d(v) if np.ndim(v) == 0 else np.asarray(v) for v in values]
    axis = normalize_axis(axis, arrays[0].ndim)
    if not bool(interleave):
        return np.concatenate(arrays, axis=axis)
    # Interleave: take one slice from each input in turn along axis.
    stacked = np.stack(arrays, axis=axis + 1)
    shape = list(arrays[0].shape)
    shape[axis] *= len(arrays)
    return stacked.reshape(shape)


@kernel("split")
def split(ctx, x, axis, num_splits=None, split_sizes=None):
    x = np.asarray(x)
    axis = normalize_axis(axis, x.ndim)
    if split_sizes is not None:
        boundaries = np.cumsum(as_int_tuple(split_sizes))[:-1]
        return tuple(np.split(x, boundaries, axis=axis))
    return tuple(np.split(x, int(num_splits), axis=axis))


@kernel("stack")
def stack(ctx, values, axis):
    arrays = [np.asarray(v) for v in values]
    return np.stack(arrays, axis=normalize_axis(axis, arrays[0].ndim + 1))


@kernel("tile")
def tile(ctx, x, reps):
    return np.tile(x, as_int_tuple(reps))


@kernel("pad")
def pad(ctx, x, pad, mode="constant", constant_val=0.0):
    x = np.asarray(x)
    values = as_int_tuple(pad)
    # pad lists (before, after) for the last len(pad)/2 dims.
    padded_dims = len(values) // 2
    widths = [(0, 0)] * (x.ndim - padded_dims) + [
        (values[2 * i], values[2 * i + 1]) for i in range(padded_dims)
    ]
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=constant_val)
    if mode == "reflect":
        return np.pad(x, widths, mode="reflect")
    if mode == "replicate":
        return np.pad(x, widths, mode="edge")
    raise ValueError(f"pad: unknown mode {mode!r}")


@kernel("fill")
def fill(ctx, shape, value=0.0):
    return np.full(as_int_tuple(shape), value)


@kernel("fill_like")
def fill_like(ctx, ref_tensor, value=0.0):
    return np.full(np.shape(ref_tensor), value)


@kernel("range_1d")
def range_1d(ctx, end, start, step):
    return np.arange(np.asarray(start).item(), np.asarray(end).item(), np.asarray(step).item())


@kernel("band_part")
def band_part(ctx, x, lower=-1, upper=-1):
    x = np.asarray(x)
    rows, cols = x.shape[-2:]
    i = np.arange(rows)[:, None]
    j = np.arange(cols)[None, :]
    keep = np.ones((rows, cols), dtype=bool)
    if int(lower) >= 0:
        keep &= (i - j) <= int(lower)
    if int(upper) >= 0:
        keep &= (j - i) <= int(upper)
    return np.where(keep, x, np.zeros((), dtype=x.dtype))


@kernel("cumsum")
def cumsum(ctx, x, axis=0, exclusive=False, reverse=False):
    x = np.asarray(x)
    axis = normalize_axis(axis, x.ndim)
    if bool(reverse):
        x = np.flip(x, axis=axis)
    out = np.cumsum(x, axis=axis)
    if bool(exclusive):
        out = out - x
    if bool(reverse):
        out = np.flip(out, axis=axis)
    return out


@kernel("non_zero")
def non_zero(ctx, x):
    return np.transpose(np.nonzero(x)).astype(np.int32)


@kernel("one_hot")
def one_hot(ctx, indices, one_hot_vector_size, axis=-1, on_value=1, off_value=0):
    indices = np.asarray(indices)
    depth = int(one_hot_vector_size)
    axis = normalize_axis(axis, indices.ndim + 1)
    positions = np.arange(depth).reshape((1,) * axis + (depth,) + (1,) * (indices.ndim - axis))
    hits = np.expand_dims(indices, axis) == positions
    return np.where(hits, on_value, off_value)


@kernel("flatten2d")
def flatten2d(ctx, x, axis=1):
    x = np.asarray(x)
    axis = normalize_axis(axis, x.ndim)
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


@kernel("argsort")
def argsort(ctx, x, axis=-1, ascending=False):
    x = np.asarray(x)
    axis = normalize_axis(axis, x.ndim)
    if bool(ascending):
        return np.argsort(x, axis=axis, kind="stable").astype(np.int32)
    return np.argsort(-x, axis=axis, kind="stable").astype(np.int32)


@kernel("topk")
def topk(ctx, x, k=1, axis=-1, ascending=False, sort=True, return_indices=True, output_indices_dtype="int32"):
    x = np.asarray(x)
    axis = normalize_axis(axis, x.ndim)
    order = np.argsort(x if bool(ascending) else -x, axis=axis, kind="stable")
    indices = np.take(order, range(int(k)), axis=axis)
    values = np.take_along_axis(x, indices, axis=axis)
    return values, indices.astype(np.uint16 if str(output_indices_dtype) == "uint16" else np.int32)


@kernel("select")
def select(ctx, cond, a, b):
    return np.where(cond, a, b)
