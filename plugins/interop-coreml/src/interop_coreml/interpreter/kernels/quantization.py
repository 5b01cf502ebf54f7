"""Kernels of MIL weight-decompression and quantization ops (constexpr_*, quantize, dequantize).

constexpr ops have only constant inputs, so the program folds them once at load time.
"""

from __future__ import annotations

import numpy as np

from .table import kernel, normalize_axis


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


def _unpack_lsb_first(packed: np.ndarray, nbits: int, count: int) -> np.ndarray:
    """Unsigned nbits-wide elements packed least-significant bit first into a uint8 stream."""
    bits = np.unpackbits(np.asarray(packed).astype(np.uint8), bitorder="little")[: count * nbits]
    weights = (1 << np.arange(nbits)).astype(np.int64)
    return bits.reshape(count, nbits).astype(np.int64) @ weights


@kernel("constexpr_lut_to_dense")
def constexpr_lut_to_dense(ctx, lut, indices, shape=None, vector_axis=None):
    lut = np.asarray(lut)
    indices = np.asarray(indices)
    if shape is not None:
        # iOS16: one palette, indices bit-packed into uint8.
        shape = tuple(int(d) for d in np.asarray(shape).ravel())
        nbits = int(np.log2(lut.size))
        return lut[_unpack_lsb_first(indices, nbits, int(np.prod(shape)))].reshape(shape)
    # iOS18: lut is [*groups, palette, vector]; each group of indices picks from its own palette.
    if lut.shape[-1] != 1:
        raise ValueError("constexpr_lut_to_dense with vector palettes (vector size > 1) is not supported")
    palettes = lut[..., 0]
    group_index = tuple(
        (np.arange(size) // (size // groups)).reshape((-1,) + (1,) * (indices.ndim - axis - 1))
        for axis, (size, groups) in enumerate(zip(indices.shape, palettes.shape[:-1]))
    )
    return palettes[group_index + (indices.astype(np.int64),)]


@kernel("constexpr_sparse_to_dense")
def constexpr_sparse_to_dense(ctx, nonzero_data, mask, shape=None):
    nonzero_data = np.asarray(nonzero_data)
    if shape is not None:
        # iOS16: mask is a bit-packed uint8 stream over the flattened output.
        shape = tuple(int(d) for d in np.asarray(shape).ravel())
        flags = np.unpackbits(np.asarray(mask).astype(np.uint8), bitorder="little")[: int(np.prod(shape))]
    else:
        # iOS18: mask is a uint1 tensor of the output's shape.
        shape = np.shape(mask)
        flags = np.asarray(mask).ravel()
    dense = np.zeros(int(np.prod(shape)), dtype=nonzero_data.dtype)
    dense[np.flatnonzero(flags)] = nonzero_data
    return dense.reshape(shape)
