"""Kernels of MIL gather/scatter ops (iOS15/iOS16/iOS17 ``scatter_gather.py``)."""

from __future__ import annotations

import numpy as np

from .table import kernel, normalize_axis


def _wrap(indices, size):
    """MIL allows negative indices counted from the end."""
    indices = np.asarray(indices).astype(np.int64)
    return np.where(indices < 0, indices + size, indices)


@kernel("gather")
def gather(ctx, x, indices, axis=0, batch_dims=0, validate_indices=False):
    x = np.asarray(x)
    axis = normalize_axis(axis, x.ndim)
    indices = _wrap(indices, x.shape[axis])
    batch_dims = int(batch_dims)
    if batch_dims == 0:
        return np.take(x, indices, axis=axis)
    batch_shape = x.shape[:batch_dims]
    flat_x = x.reshape((-1,) + x.shape[batch_dims:])
    flat_indices = indices.reshape((-1,) + indices.shape[batch_dims:])
    parts = [np.take(flat_x[b], flat_indices[b], axis=axis - batch_dims) for b in range(flat_x.shape[0])]
    stacked = np.stack(parts)
    return stacked.reshape(batch_shape + stacked.shape[1:])


@kernel("gather_along_axis")
def gather_along_axis(ctx, x, indices, axis=0, validate_indices=False):
    x = np.asarray(x)
    axis = normalize_axis(axis, x.ndim)
    return np.take_along_axis(x, _wrap(indices, x.shape[axis]), axis=axis)


@kernel("gather_nd")
def gather_nd(ctx, x, indices, batch_dims=0, validate_indices=False):
    x = np.asarray(x)
    indices = np.asarray(indices).astype(np.int64)
    batch_dims = int(batch_dims)
    depth = indices.shape[-1]
    batch_shape = x.shape[:batch_dims]
    flat_x = x.reshape((-1,) + x.shape[batch_dims:])
    flat_indices = indices.reshape((flat_x.shape[0], -1, depth))
    parts = []
    for b in range(flat_x.shape[0]):
        picked = _wrap(flat_indices[b], np.array(flat_x.shape[1 : 1 + depth]))
        parts.append(flat_x[b][tuple(picked.T)])
    stacked = np.stack(parts)
    return stacked.reshape(batch_shape + indices.shape[batch_dims:-1] + x.shape[batch_dims + depth :])


_ACCUMULATE = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "max": np.maximum,
    "min": np.minimum,
}


def _scatter_into(data, index, updates, mode):
    out = np.array(data, copy=True)
    if mode == "update":
        out[index] = updates
        return out
    if mode not in _ACCUMULATE:
        raise ValueError(f"scatter: unknown mode {mode!r}")
    if mode == "div" and np.issubdtype(out.dtype, np.integer):
        out = out.astype(np.float64)
    _ACCUMULATE[mode].at(out, index, updates)
    return out


@kernel("scatter")
def scatter(ctx, data, indices, updates, axis=0, mode="add", validate_indices=False):
    data = np.asarray(data)
    axis = normalize_axis(axis, data.ndim)
    indices = _wrap(indices, data.shape[axis])
    # indices select positions along axis; updates has data's shape with that axis replaced by indices' shape.
    moved = np.moveaxis(data, axis, 0)
    updates = np.moveaxis(np.asarray(updates), axis, 0) if indices.ndim == 1 else np.asarray(updates)
    result = _scatter_into(moved, (indices,), updates, mode)
    return np.moveaxis(result, 0, axis)


@kernel("scatter_along_axis")
def scatter_along_axis(ctx, data, indices, updates, axis=0, mode="add", validate_indices=False):
    data = np.asarray(data)
    axis = normalize_axis(axis, data.ndim)
    indices = _wrap(indices, data.shape[axis])
    grid = list(np.indices(indices.shape, sparse=True))
    grid[axis] = indices
    return _scatter_into(data, tuple(grid), np.asarray(updates), mode)


@kernel("scatter_nd")
def scatter_nd(ctx, data, indices, updates, mode="add", validate_indices=False):
    data = np.asarray(data)
    indices = np.asarray(indices).astype(np.int64)
    depth = indices.shape[-1]
    indices = _wrap(indices, np.array(data.shape[:depth]))
    index = tuple(np.moveaxis(indices, -1, 0))
    return _scatter_into(data, index, np.asarray(updates), mode)
