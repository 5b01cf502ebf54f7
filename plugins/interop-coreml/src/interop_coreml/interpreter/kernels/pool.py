"""Kernels of MIL ``avg_pool``, ``max_pool`` and ``l2_pool`` (strided window views, no loops)."""

from __future__ import annotations

import numpy as np

from ..threads import blocks, parallel_map
from .conv import output_size, pad_spatial, resolve_padding, windows
from .table import as_int_tuple, kernel


def _pool_geometry(x, kernel_sizes, strides, pad_type, pad, ceil_mode):
    nd = x.ndim - 2
    kernel_shape = as_int_tuple(kernel_sizes)
    strides = as_int_tuple(strides) if strides is not None else (1,) * nd
    dilations = (1,) * nd
    padding = resolve_padding(pad_type, pad, x.shape[2:], kernel_shape, strides, dilations)
    ceil_mode = bool(ceil_mode)
    out_shape = [
        output_size(size, b, a, k, s, ceil_mode)
        for size, (b, a), k, s in zip(x.shape[2:], padding, kernel_shape, strides)
    ]
    # ceil_mode may let the last window run past the padded input; pad that overhang too.
    overhang = [
        max(0, (o - 1) * s + k - (size + b + a))
        for o, s, k, size, (b, a) in zip(out_shape, strides, kernel_shape, x.shape[2:], padding)
    ]
    return kernel_shape, strides, dilations, padding, overhang, out_shape


def _windows_of(x, value, kernel_shape, strides, dilations, padding, overhang, out_shape):
    full_padding = [(b, a + extra) for (b, a), extra in zip(padding, overhang)]
    return windows(pad_spatial(x, full_padding, value), kernel_shape, strides, dilations, out_shape)


def _reduce_taps(view, nd, ufunc, out=None):
    """Combine the kernel taps of a window view with ufunc, one tap at a time.

    Looping over the few taps keeps numpy's inner loop on the long spatial axes, which is far
    faster than reducing the short trailing kernel axes of the strided view.
    """
    kernel_shape = view.shape[2 + nd :]
    taps = iter(np.ndindex(*kernel_shape))
    first = view[(Ellipsis,) + next(taps)]
    if out is None:
        out = np.empty_like(first)  # the input's memory order (channel-major stays so)
    np.copyto(out, first)
    for tap in taps:
        ufunc(out, view[(Ellipsis,) + tap], out=out)
    return out


# Windows of more taps than this, when there are fewer of them than taps per (image, channel) (a
# global pool, say), are reduced in one ufunc.reduce call over the window axes: the tap loop's
# numpy calls would each combine only a few values.
_LOOP_TAPS = 8


def _pool(x, value, geometry, ufunc):
    """Every window of x (padded with value) combined with ufunc, channel blocks on the worker threads."""
    kernel_shape, _, _, _, _, out_shape = geometry
    nd = x.ndim - 2
    out = np.empty_like(x[(Ellipsis,) + (slice(0, 1),) * nd], shape=x.shape[:2] + tuple(out_shape))
    if out.size == 0:
        return out
    taps = int(np.prod(kernel_shape))
    whole_windows = taps > _LOOP_TAPS and int(np.prod(out_shape)) < taps

    def compute(span):
        channels = slice(*span)
        view = _windows_of(x[:, channels], value, *geometry)
        if whole_windows:
            ufunc.reduce(view, axis=tuple(range(2 + nd, 2 + 2 * nd)), out=out[:, channels])
        else:
            _reduce_taps(view, nd, ufunc, out=out[:, channels])

    parallel_map(compute, blocks(x.shape[1], x.itemsize * (x.size + out.size * taps)))
    return out


@kernel("max_pool")
def max_pool(ctx, x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False):
    x = np.asarray(x)
    geometry = _pool_geometry(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
    return _pool(x, -np.inf, geometry, np.maximum)


@kernel("l2_pool")
def l2_pool(ctx, x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False):
    x = np.asarray(x)
    geometry = _pool_geometry(x, kernel_sizes, strides, pad_type, pad, ceil_mode)
    return np.sqrt(_pool(np.square(x), 0.0, geometry, np.add))


@kernel("avg_pool")
def avg_pool(
    ctx, x, kernel_sizes, strides=None, pad_type="valid", pad=None, exclude_padding_from_average=False, ceil_mode=False
):
    x = np.asarray(x)
    nd = x.ndim - 2
    kernel_shape, strides_, dilations, padding, overhang, out_shape = geometry = _pool_geometry(
        x, kernel_sizes, strides, pad_type, pad, ceil_mode
    )
    total = _pool(x, 0.0, geometry, np.add)
    # The divisor counts the input elements of each window, plus (unless excluded) the explicit
    # padding; the ceil_mode overhang never counts.
    ones = np.ones((1, 1) + x.shape[2:], dtype=x.dtype)
    if not bool(exclude_padding_from_average):
        ones = pad_spatial(ones, padding, 1.0)
        geometry = (kernel_shape, strides_, dilations, [(0, 0)] * nd, overhang, out_shape)
    counts = _reduce_taps(_windows_of(ones, 0.0, *geometry), nd, np.add)
    return total / np.maximum(counts, 1)
