"""Kernels of MIL ``conv`` and ``conv_transpose`` for 1-D, 2-D and 3-D inputs.

Convolution is im2col over a strided view of the padded input followed by one
wide matrix product per group (BLAS); 1x1 kernels skip the window view.
Transposed convolution is a matrix product followed by a col2im scatter-add
that loops only over kernel positions.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .registry import as_int_tuple, kernel


def resolve_padding(pad_type, pad, spatial, kernel_shape, strides, dilations) -> list[tuple[int, int]]:
    """(before, after) padding per spatial dim for MIL's pad_type values valid/same/same_lower/custom."""
    rank = len(spatial)
    if pad_type == "valid":
        return [(0, 0)] * rank
    if pad_type == "custom":
        values = as_int_tuple(pad) if pad is not None else (0,) * (2 * rank)
        return [(values[2 * i], values[2 * i + 1]) for i in range(rank)]
    if pad_type in ("same", "same_lower"):
        result = []
        for size, k, s, d in zip(spatial, kernel_shape, strides, dilations):
            effective = (k - 1) * d + 1
            total = max(0, s * math.ceil(size / s) - size + effective - s)
            small, large = total // 2, total - total // 2
            # "same" puts the odd pixel at the end, "same_lower" at the beginning.
            result.append((small, large) if pad_type == "same" else (large, small))
        return result
    raise ValueError(f"unknown pad_type {pad_type!r}")


def windows(x: np.ndarray, kernel_shape, strides, dilations, out_shape) -> np.ndarray:
    """Read-only view [N, C, *out, *kernel] of every receptive field of x ([N, C, *spatial])."""
    nd = len(kernel_shape)
    spatial_strides = x.strides[2:]
    shape = x.shape[:2] + tuple(out_shape) + tuple(kernel_shape)
    strides = (
        x.strides[:2]
        + tuple(st * s for st, s in zip(spatial_strides, strides))
        + tuple(st * d for st, d in zip(spatial_strides, dilations))
    )
    assert len(shape) == 2 + 2 * nd
    return as_strided(x, shape=shape, strides=strides, writeable=False)


def pad_spatial(x: np.ndarray, padding, value=0.0) -> np.ndarray:
    """x ([N, C, *spatial]) padded with value; a plain fill-and-copy, much cheaper than np.pad."""
    if not any(b or a for b, a in padding):
        return x
    shape = x.shape[:2] + tuple(size + b + a for size, (b, a) in zip(x.shape[2:], padding))
    out = np.full(shape, value, dtype=x.dtype)
    out[(slice(None), slice(None)) + tuple(slice(b, b + size) for size, (b, _) in zip(x.shape[2:], padding))] = x
    return out


def output_size(size, before, after, effective_kernel, stride, ceil_mode=False) -> int:
    if not ceil_mode:
        return (size + before + after - effective_kernel) // stride + 1
    out = -(-(size + before + after - effective_kernel) // stride) + 1
    # The last window must start inside the input or its left padding (PyTorch's rule, which MIL follows).
    if (out - 1) * stride >= size + before:
        out -= 1
    return out


@kernel("conv")
def conv(ctx, x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
    x = np.asarray(x)
    weight = np.asarray(weight, dtype=x.dtype)
    nd = x.ndim - 2
    kernel_shape = weight.shape[2:]
    strides = as_int_tuple(strides) if strides is not None else (1,) * nd
    dilations = as_int_tuple(dilations) if dilations is not None else (1,) * nd
    groups = int(groups)
    padding = resolve_padding(pad_type, pad, x.shape[2:], kernel_shape, strides, dilations)
    out_shape = [
        output_size(size, b, a, (k - 1) * d + 1, s)
        for size, (b, a), k, s, d in zip(x.shape[2:], padding, kernel_shape, strides, dilations)
    ]
    n, c_in = x.shape[:2]
    c_out = weight.shape[0]
    positions = int(np.prod(out_shape))
    taps = int(np.prod(kernel_shape))
    c_in_group, c_out_group = c_in // groups, c_out // groups

    # Columns are laid out [C_in, *k, N, *out] so that each group is ONE wide matrix product
    # (batch folded into the columns): OpenBLAS is several times faster on one wide product
    # than on N narrow ones.  The result is returned as a transposed view of a [C_out, N, *out]
    # buffer; elementwise ops keep that memory order, so the next 1x1 conv needs no copy.
    if taps == 1 and not any(b or a for b, a in padding):
        index = (slice(None), slice(None)) + tuple(
            slice(0, (o - 1) * s + 1, s) for o, s in zip(out_shape, strides)
        )
        columns = x[index].swapaxes(0, 1)
    else:
        view = windows(pad_spatial(x, padding), kernel_shape, strides, dilations, out_shape)
        # [N, C, *out, *k] -> [C, *k, N, *out]
        columns = view.transpose((1,) + tuple(range(2 + nd, 2 + 2 * nd)) + (0,) + tuple(range(2, 2 + nd)))
    columns = np.ascontiguousarray(columns).reshape(groups, c_in_group * taps, n * positions)
    kernels = weight.reshape(groups, c_out_group, c_in_group * taps)
    if groups == 1:
        out = np.matmul(kernels[0], columns[0])
    else:
        out = np.matmul(kernels, columns)  # [G, C_out/G, N * positions]
    out = out.reshape(c_out, n * positions)
    if bias is not None:
        out += np.asarray(bias, dtype=out.dtype).reshape(c_out, 1)
    return out.reshape((c_out, n) + tuple(out_shape)).swapaxes(0, 1)


@kernel("conv_transpose")
def conv_transpose(
    ctx, x, weight, bias=None, pad=None, output_shape=None, pad_type="valid", strides=None, dilations=None, groups=1
):
    x = np.asarray(x)
    weight = np.asarray(weight, dtype=x.dtype)  # [C_in, C_out/G, *k]
    nd = x.ndim - 2
    n, c_in = x.shape[:2]
    spatial_in = x.shape[2:]
    kernel_shape = weight.shape[2:]
    strides = as_int_tuple(strides) if strides is not None else (1,) * nd
    dilations = as_int_tuple(dilations) if dilations is not None else (1,) * nd
    groups = int(groups)
    c_in_group, c_out_group = c_in // groups, weight.shape[1]
    c_out = c_out_group * groups
    taps = int(np.prod(kernel_shape))
    positions = int(np.prod(spatial_in))

    # Each input pixel contributes weight[c_in] * x to a kernel-shaped patch of the output.
    kernels = weight.reshape(groups, c_in_group, c_out_group * taps).transpose(0, 2, 1)
    inputs = x.reshape(n, groups, c_in_group, positions)
    contributions = np.matmul(kernels, inputs)  # [N, G, C_out/G * taps, positions]
    contributions = contributions.reshape((n, c_out) + tuple(kernel_shape) + tuple(spatial_in))

    effective = [(k - 1) * d + 1 for k, d in zip(kernel_shape, dilations)]
    full_shape = [s * (i - 1) + e for s, i, e in zip(strides, spatial_in, effective)]
    full = np.zeros((n, c_out) + tuple(full_shape), dtype=contributions.dtype)
    for tap in np.ndindex(*kernel_shape):
        target = (slice(None), slice(None)) + tuple(
            slice(t * d, t * d + (i - 1) * s + 1, s) for t, d, i, s in zip(tap, dilations, spatial_in, strides)
        )
        full[target] += contributions[(slice(None), slice(None)) + tap]

    if output_shape is not None:
        wanted = as_int_tuple(output_shape)[2:]
    elif pad_type == "same":
        wanted = tuple(s * i for s, i in zip(strides, spatial_in))
    elif pad_type == "custom" and pad is not None:
        values = as_int_tuple(pad)
        wanted = tuple(f - values[2 * i] - values[2 * i + 1] for i, f in enumerate(full_shape))
    else:
        wanted = tuple(full_shape)
    if pad_type == "custom" and pad is not None:
        begins = as_int_tuple(pad)[0::2]
    elif pad_type == "same":
        begins = tuple(max(0, f - w) // 2 for f, w in zip(full_shape, wanted))
    else:
        begins = (0,) * nd
    out = np.zeros((n, c_out) + tuple(wanted), dtype=full.dtype)
    source = tuple(slice(b, min(b + w, f)) for b, w, f in zip(begins, wanted, full_shape))
    target = tuple(slice(0, min(b + w, f) - b) for b, w, f in zip(begins, wanted, full_shape))
    out[(slice(None), slice(None)) + target] = full[(slice(None), slice(None)) + source]
    if bias is not None:
        out = out + np.asarray(bias, dtype=out.dtype).reshape((1, c_out) + (1,) * nd)
    return out
