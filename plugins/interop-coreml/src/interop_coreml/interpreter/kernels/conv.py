"""Kernels of MIL ``conv`` and ``conv_transpose`` for 1-D, 2-D and 3-D inputs.

Convolution is im2col followed by one matrix product per group (BLAS). Tensors are
kept channel-major in memory ([C, N, *spatial], shown to the program as [N, C,
*spatial] through a transposed view): the columns of a 1x1 convolution are then the
input itself, and each output is already laid out as the next layer's input. The
output columns are cut into blocks that the threads (:mod:`..threads`) fill
independently: build the block's columns, multiply, add the bias and apply the
epilogue the program fused into the op (a residual ``add``, a ``relu``) while the
block is still in cache. A wide 1x1 convolution on a small map is cut into blocks of
output channels instead (see _split_channels), and an im2col block for few output
channels is multiplied in narrower sub-blocks (see _NARROW_CHANNELS); a strided 1x1
first gathers the positions it reads (see subsample) and is then computed like a
stride-1 one; a stride-1 3x3 on a large map skips im2col (see _conv_on_padded_grid).
Transposed convolution is a matrix product followed by a col2im scatter-add
that loops only over kernel positions.
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..blas import accumulate, available
from ..buffers import empty
from ..threads import blocks, parallel_map, scratch, split, thread_count
from .activation import relu_into
from .epilogue import Epilogue
from .table import as_int_tuple, kernel

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
    """Read-only view [N, C, *out, *kernel] of every receptive field of x ([N, C, *spatial]).

    Only the spatial axes are re-strided, so x may lie in memory in any order (channel-major
    [C, N, *spatial] shown as [N, C, ...] works the same).
    """
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


def is_channel_major(x: np.ndarray) -> bool:
    """True when x ([N, C, ...]) lies in memory as a C-contiguous [C, N, ...] array."""
    return x.ndim >= 2 and x.swapaxes(0, 1).flags.c_contiguous


def channel_major(x: np.ndarray) -> np.ndarray:
    """x ([N, C, *spatial]) as a C-contiguous [C, N, *spatial] array (a view when it already lies so)."""
    return np.ascontiguousarray(x.swapaxes(0, 1))


def pad_spatial(x: np.ndarray, padding, value=0.0, context=None) -> np.ndarray:
    """x ([N, C, *spatial]) padded with value, in the same memory order (channel-major stays so).

    The borders are filled and the inside copied once (channel blocks on the worker threads),
    much cheaper than np.pad. ``context`` (an op's) lends the program's buffer pool.
    """
    if not any(b or a for b, a in padding):
        return x
    spatial = tuple(size + b + a for size, (b, a) in zip(x.shape[2:], padding))
    if is_channel_major(x):
        out = empty(context, (x.shape[1], x.shape[0]) + spatial, x.dtype).swapaxes(0, 1)
    else:
        out = empty(context, x.shape[:2] + spatial, x.dtype)
    inside = tuple(slice(before, before + size) for size, (before, _) in zip(x.shape[2:], padding))

    def fill(span: tuple[int, int]) -> None:
        channels = slice(*span)
        target = out[:, channels]
        for axis, (before, after) in enumerate(padding, start=2):
            edge = [slice(None)] * x.ndim
            if before:
                edge[axis] = slice(0, before)
                target[tuple(edge)] = value
            if after:
                edge[axis] = slice(target.shape[axis] - after, None)
                target[tuple(edge)] = value
        target[(slice(None), slice(None)) + inside] = x[:, channels]

    parallel_map(fill, blocks(x.shape[1], out.nbytes))
    return out


def subsample(x: np.ndarray, strides, out_shape, context=None) -> np.ndarray:
    """x ([C, N, *spatial], C-contiguous) at positions 0, s, 2s, ... of each spatial axis, ``out_shape`` of them:
    a new C-contiguous [C, N, *out_shape] array (channel blocks copied on the worker threads)."""
    picked = x[(slice(None), slice(None)) + tuple(slice(0, o * s, s) for o, s in zip(out_shape, strides))]
    out = empty(context, picked.shape, x.dtype)

    def fill(span: tuple[int, int]) -> None:
        out[span[0]:span[1]] = picked[span[0]:span[1]]

    parallel_map(fill, blocks(x.shape[0], out.nbytes))
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
def conv(ctx, x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1,
         *, fused_input=None):
    x = np.asarray(x)
    weight = np.asarray(weight, dtype=x.dtype)
    nd = x.ndim - 2
    kernel_shape = weight.shape[2:]
    strides = as_int_tuple(strides) if strides is not None else (1,) * nd
    dilations = as_int_tuple(dilations) if dilations is not None else (1,) * nd
    groups = int(groups)
    padding = resolve_padding(pad_type, pad, x.shape[2:], kernel_shape, strides, dilations)
    out_shape = tuple(
        output_size(size, b, a, (k - 1) * d + 1, s)
        for size, (b, a), k, s, d in zip(x.shape[2:], padding, kernel_shape, strides, dilations)
    )
    n, c_in = x.shape[:2]
    c_out = weight.shape[0]
    positions = int(np.prod(out_shape))
    taps = int(np.prod(kernel_shape))
    c_in_group, c_out_group = c_in // groups, c_out // groups
    depth = c_in_group * taps  # rows of one group's columns
    out = empty(ctx, (c_out, n * positions), x.dtype)
    bias_column = None if bias is None else np.asarray(bias, dtype=out.dtype).reshape(c_out, 1)
    epilogue = Epilogue(
        ctx.epilogue if ctx is not None else (), fused_input, (n, c_out) + out_shape, out.dtype,
        lambda array: channel_major(array).reshape(c_out, n * positions), bias=bias_column,
    )
    if out.size == 0:
        return epilogue.finish(out.reshape((c_out, n) + out_shape).swapaxes(0, 1))

    source = channel_major(pad_spatial(x, padding, context=ctx))  # [C, N, *padded]
    if _grid_suits(nd, groups, strides, taps, source.shape[2:], out_shape):
        _conv_on_padded_grid(source, weight, dilations, bias_column, epilogue, out, out_shape)
        return epilogue.finish(out.reshape((c_out, n) + out_shape).swapaxes(0, 1))
    if taps == 1 and any(s != 1 for s in strides):
        # A strided 1x1 convolution reads one input position in stride**nd: gathered once (a copy of
        # the output's size per channel), it is a direct product that may be cut by channels too.
        source = subsample(source, strides, out_shape, context=ctx)
        strides = (1,) * nd
    # Padding (already applied) does not stop a 1x1 convolution from reading its input as it lies.
    direct = taps == 1 and all(s == 1 for s in strides) and tuple(source.shape[2:]) == tuple(out_shape)
    if direct:
        flat_source = source.reshape(c_in, n * positions)
    else:
        fields = windows(source, kernel_shape, strides, dilations, out_shape)  # [C, N, *out, *k]
        # -> [C, *k, N, *out]: a block of output rows is then a slice of the N, out[0] axes.
        fields = fields.transpose((0,) + tuple(range(2 + nd, 2 + 2 * nd)) + (1,) + tuple(range(2, 2 + nd)))
    kernels = weight.reshape(groups, c_out_group, depth)

    rows, row_length = n * out_shape[0], positions // out_shape[0]
    # One block per thread, more when a block's im2col columns would pass threads._BLOCK_BYTES: wide
    # products keep BLAS efficient, and the output needs no cache (BLAS streams it).
    work_bytes = 0 if direct else out.itemsize * n * positions * c_in * taps

    def product(weights: np.ndarray, columns: np.ndarray, index: tuple[slice, slice]) -> None:
        """out[index] = weights @ columns + bias, then the epilogue (one group)."""
        block = out[index]
        if bias_column is not None:
            np.copyto(block, bias_column[index[0]])  # BLAS adds the product to the bias: no zeroing, no bias pass
            if accumulate(weights, columns, block):
                epilogue.apply(block, index, with_bias=False)
                return
        np.matmul(weights, columns, out=block)
        epilogue.apply(block, index)

    if direct and groups == 1 and _split_channels(c_out, n * positions):
        parallel_map(lambda span: product(kernels[0][slice(*span)], flat_source, (slice(*span), slice(None))),
                     split(c_out, thread_count(), 16))
        return epilogue.finish(out.reshape((c_out, n) + out_shape).swapaxes(0, 1))

    # A product with few output channels is computed in sub-blocks of about _NARROW_BLOCK_BYTES of
    # columns (see there); others in one product per block.
    narrow = not direct and c_out_group <= _NARROW_CHANNELS
    narrow_rows = max(1, _NARROW_BLOCK_BYTES // (x.itemsize * c_in * taps * row_length))

    def compute(block_rows: tuple[int, int]) -> None:
        first, last = block_rows
        step = narrow_rows if narrow else last - first
        for sub_first in range(first, last, step):
            compute_rows(sub_first, min(last, sub_first + step))

    def compute_rows(first: int, last: int) -> None:
        start, stop = first * row_length, last * row_length
        if direct:
            columns = flat_source[:, start:stop]
        else:
            columns = scratch((c_in,) + tuple(kernel_shape) + (last - first,) + out_shape[1:], x.dtype)
            height, filled, row = out_shape[0], 0, first
            rows_axis = (slice(None),) * (1 + nd)
            # Rows (image, out[0]) first..last-1: a run of whole images in one copy (numpy walks it
            # about twice as fast as image by image), a part of an image at either end alone.
            while row < last:
                image, begin = divmod(row, height)
                if begin == 0 and last - row >= height:
                    count = (last - row) // height
                    target = columns[rows_axis + (slice(filled, filled + count * height),)]
                    target = target.reshape(target.shape[: 1 + nd] + (count, height) + target.shape[2 + nd:])
                    target[...] = fields[rows_axis + (slice(image, image + count),)]
                    length = count * height
                else:
                    length = min(last - row, height - begin)
                    columns[rows_axis + (slice(filled, filled + length),)] = fields[
                        rows_axis + (image, slice(begin, begin + length))
                    ]
                filled += length
                row += length
            columns = columns.reshape(c_in * taps, stop - start)
        if groups == 1:
            product(kernels[0], columns, (slice(None), slice(start, stop)))
            return
        block = out[:, start:stop]
        np.matmul(kernels, columns.reshape(groups, depth, stop - start),
                  out=block.reshape(groups, c_out_group, stop - start))
        epilogue.apply(block, (slice(None), slice(start, stop)))

    parallel_map(compute, blocks(rows, work_bytes))
    return epilogue.finish(out.reshape((c_out, n) + out_shape).swapaxes(0, 1))


# im2col products with at most _NARROW_CHANNELS output channels (per group) run on sub-blocks of
# about _NARROW_BLOCK_BYTES of columns: BLAS multiplies a few rows by a narrow block of columns
# faster than by a wide one, and the block's columns and results are still in cache for the bias
# and the epilogue. ResNet-50's 7x7 stem (64 channels, 147 rows of columns) at batch 8 went from
# 28.9 to 23.1 ms median wall (51.7 to 42.7 ms CPU, two threads, 21 interleaved runs); with 256
# or more output channels the narrower products were slower.
_NARROW_CHANNELS = 128
_NARROW_BLOCK_BYTES = 1 << 21


# The padded-grid method computes outputs at every position of the padded input; above this share
# of extra positions (small maps) the wasted products cost more than the im2col copy it saves.
_GRID_WASTE = 1.2
# Grid bytes per block: every tap adds its product into the block, so it should stay in a core's
# L2 cache (1 MiB here). With 8 MiB blocks, the 64-channel 3x3 convolutions of ResNet-50 took 15%
# more CPU time on two threads than on one; with 1 MiB, none more (benchmarks/bench_coreml_interpreter.py).
_GRID_BLOCK_BYTES = 1 << 20


# A 1x1 convolution's column blocks have rows of n * positions / threads values, one strided
# piece per output channel; below _SHORT_ROW values per piece (16 KiB) the fill, BLAS and the
# epilogue keep restarting the hardware prefetcher. With at least _CHANNELS_PER_THREAD output
# channels per thread, blocks of whole channel rows (contiguous) are cut instead: in ResNet-50
# at batch 8 a 256 -> 1024 conv+add+relu on 14x14 went from 6.5 to 5.4 ms, a 512 -> 2048 on 7x7
# from 6.4 to 5.6 ms (median wall, two threads); with fewer channels per thread BLAS loses more.
_SHORT_ROW = 4096
_CHANNELS_PER_THREAD = 256


def _split_channels(c_out: int, columns: int) -> bool:
    threads = thread_count()
    return threads > 1 and columns < _SHORT_ROW * threads and c_out >= _CHANNELS_PER_THREAD * threads


def _grid_suits(nd, groups, strides, taps, padded, out_shape) -> bool:
    if nd != 2 or groups != 1 or taps == 1 or any(s != 1 for s in strides):
        return False
    return padded[0] * padded[1] <= _GRID_WASTE * out_shape[0] * out_shape[1] and available()


def _conv_on_padded_grid(source, weight, dilations, bias_column, epilogue, out, out_shape) -> None:
    """A stride-1 2-D convolution without im2col: one BLAS product per kernel tap, added up in place.

    On the flattened padded input ([C, N * Hp * Wp], channel-major), the input a tap (i, j) reads
    for the output at padded position p is at p + i * dh * Wp + j * dw: every tap's operand is the
    same matrix shifted by a constant, which BLAS reads in place. The products are added into a
    grid buffer (filled with the bias first) at every padded position, and the output positions
    are copied out of it (with a fused relu or add applied on the way).
    """
    c_in, n, height, width = source.shape
    c_out = weight.shape[0]
    out_height, out_width = out_shape
    flat = source.reshape(c_in, n * height * width)
    taps = _tap_major(weight)  # [kh, kw, C_out, C_in]
    offsets = [(i, j, i * dilations[0] * width + j * dilations[1]) for i in range(taps.shape[0])
               for j in range(taps.shape[1])]
    computed = n * height * width - offsets[-1][2]  # positions whose every tap stays inside the input
    out4 = out.reshape(c_out, n, out_height, out_width)
    start_value = bias_column if bias_column is not None else np.float32(0)
    relu_only = epilogue.block_ops == ("relu",)

    def compute(span: tuple[int, int]) -> None:
        first, last = span  # rows of the padded grid (image * height + y)
        begin, end = first * width, min(last * width, computed)
        grid = scratch((c_out, (last - first) * width), out.dtype)
        live = grid[:, : end - begin]
        np.copyto(live, start_value)
        for i, j, offset in offsets:
            shifted = flat[:, begin + offset:end + offset]
            if not accumulate(taps[i, j], shifted, live):  # BLAS cannot read it (float16, odd strides)
                live += np.matmul(taps[i, j], shifted)
        if relu_only:
            relu_into(live, live)  # in cache; the padded positions it also clips are not copied out
        rows = grid.reshape(c_out, last - first, width)
        for image in range(first // height, (last - 1) // height + 1):
            top = max(first, image * height) - image * height
            bottom = min(last, image * height + out_height) - image * height
            if bottom <= top:
                continue
            values = rows[:, image * height + top - first:image * height + bottom - first, :out_width]
            target = out4[:, image, top:bottom]
            np.copyto(target, values)
            if relu_only:
                continue
            columns = slice((image * out_height + top) * out_width, (image * out_height + bottom) * out_width)
            epilogue.apply(out[:, columns], (slice(None), columns), with_bias=False)

    # About _GRID_BLOCK_BYTES of grid per block, at least one block per thread.
    parallel_map(compute, blocks(n * height, out.itemsize * c_out * n * height * width, _GRID_BLOCK_BYTES))


_tap_major_cache: dict[int, tuple[Any, np.ndarray]] = {}


def _tap_major(weight: np.ndarray) -> np.ndarray:
    """weight [C_out, C_in, kh, kw] as contiguous [kh, kw, C_out, C_in] (a tap's matrix for BLAS), cached per array."""
    cached = _tap_major_cache.get(id(weight))
    if cached is not None and cached[0]() is weight:
        return cached[1]
    prepared = np.ascontiguousarray(weight.transpose(2, 3, 0, 1))
    try:
        reference = weakref.ref(weight)
    except TypeError:
        return prepared
    for key in [key for key, (ref, _) in _tap_major_cache.items() if ref() is None]:
        del _tap_major_cache[key]
    _tap_major_cache[id(weight)] = (reference, prepared)
    return prepared


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
