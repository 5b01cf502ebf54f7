"""Kernels of MIL weight-decompression and quantization ops (constexpr_*, quantize, dequantize).

constexpr ops have only constant inputs, so the program folds them once at load time.
"""

from __future__ import annotations

import numpy as np

from .registry import kernel, normalize_axis


def _along(param, rank, axis):
    param = np.asarray(param)
    if param.ndim == 0 or axis is None:
        return param
    shape = [1] * rank
    shape[normalize_axis(axis, rank)] = -1
    return param.reshape(shape)


@kernel("constexpr_affine_dequantize")
def constexpr_affine_dequantize(ctx, quantized_data, zero_point, scale, axis=0):
    q = np.asarray(quantized_data).astype(np.float32)
    rank = q.ndim
    return (q - _along(zero_point, rank, axis).astype(np.float32)) * _along(scale, rank, axis).astype(np.float32)


@kernel("constexpr_cast")
def constexpr_cast(ctx, source_val, output_dtype="fp32"):
    return np.asarray(source_val)  # the program's declared output dtype performs the cast


@kernel("dequantize")
def dequantize(ctx, input, scale, zero_point=None, axis=None):
    q = np.asarray(input).astype(np.float32)
    zero = 0.0 if zero_point is None else _along(zero_point, q.ndim, axis).astype(np.float32)
    return (q - zero) * _along(scale, q.ndim, axis).astype(np.float32)


@kernel("quantize")
def quantize(ctx, input, scale, zero_point=None, axis=None, output_dtype="int8"):
    x = np.asarray(input, dtype=np.float32)
    zero = 0.0 if zero_point is None else _along(zero_point, x.ndim, axis).astype(np.float32)
    info = np.iinfo(np.int8 if str(output_dtype) == "int8" else np.uint8)
    return np.clip(np.round(x / _along(scale, x.ndim, axis) + zero), info.min, info.max)


@kernel("constexpr_blockwise_shift_scale")
def constexpr_blockwise_shift_scale(ctx, data, scale, offset=None):
    data = np.asarray(data).astype(np.float32)
    # scale/offset have data's rank; each of their entries covers a block of data.
    def expand(param):
        param = np.asarray(param).astype(np.float32)
        for axis in range(data.ndim):
            param = np.repeat(param, data.shape[axis] // param.shape[axis], axis=axis)
        return param

    if offset is not None:
        data = data - expand(offset)
    return data * expand(scale)
