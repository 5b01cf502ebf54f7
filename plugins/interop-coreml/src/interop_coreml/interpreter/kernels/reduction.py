"""Kernels of MIL reductions (``reduce_*``, iOS15 and iOS17's argmax/argmin)."""

from __future__ import annotations

import numpy as np

from .table import kernel, normalize_axes, normalize_axis


def _axes(x, axes):
    return normalize_axes(axes, np.ndim(x)) if axes is not None else None


def _reduction(fn):
    def evaluate(ctx, x, axes=None, keep_dims=False):
        return fn(np.asarray(x), _axes(x, axes), bool(keep_dims))

    return evaluate


_REDUCTIONS = {
    "reduce_sum": lambda x, a, k: np.sum(x, axis=a, keepdims=k),
    "reduce_mean": lambda x, a, k: np.mean(x, axis=a, keepdims=k),
    "reduce_prod": lambda x, a, k: np.prod(x, axis=a, keepdims=k),
    "reduce_max": lambda x, a, k: np.max(x, axis=a, keepdims=k),
    "reduce_min": lambda x, a, k: np.min(x, axis=a, keepdims=k),
    "reduce_sum_square": lambda x, a, k: np.sum(np.square(x), axis=a, keepdims=k),
    "reduce_l1_norm": lambda x, a, k: np.sum(np.abs(x), axis=a, keepdims=k),
    "reduce_l2_norm": lambda x, a, k: np.sqrt(np.sum(np.square(x), axis=a, keepdims=k)),
    "reduce_log_sum": lambda x, a, k: np.log(np.sum(x, axis=a, keepdims=k)),
    "reduce_log_sum_exp": lambda x, a, k: _log_sum_exp(x, a, k),
}


def _log_sum_exp(x, axes, keep_dims):
    peak = np.max(x, axis=axes, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0)
    out = np.log(np.sum(np.exp(x - peak), axis=axes, keepdims=True)) + peak
    if not keep_dims:
        out = np.squeeze(out, axis=axes)
    return out


for _name, _fn in _REDUCTIONS.items():
    kernel(_name)(_reduction(_fn))


def _arg_reduction(fn):
    def evaluate(ctx, x, axis=-1, keep_dims=False, output_dtype="int32"):
        x = np.asarray(x)
        axis = normalize_axis(axis, x.ndim)
        out = fn(x, axis=axis)
        if bool(keep_dims):
            out = np.expand_dims(out, axis)
        return out.astype(np.int32 if str(output_dtype) == "int32" else np.uint16)

    return evaluate


kernel("reduce_argmax")(_arg_reduction(np.argmax))
kernel("reduce_argmin")(_arg_reduction(np.argmin))
