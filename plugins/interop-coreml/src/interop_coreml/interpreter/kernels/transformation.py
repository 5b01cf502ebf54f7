"""Kernels of MIL tensor-transformation ops (iOS15/iOS16/iOS17 ``tensor_transformation.py``)."""

from __future__ import annotations

import numpy as np

from .table import as_int_tuple, kernel, normalize_axes, normalize_axis


@kernel("reshape")
def reshape(ctx, x, shape):
    x = np.asarray(x)
    target = list(as_int_tuple(shape))
    # A 0 copies the input's dim at that position (iOS17 semantics; harmless earlier).
    target = [x.shape[i] if d == 0 and i < x.ndim else d for i, d in enumerate(target)]
    return x.reshape(target)


@kernel("reshape_like")
def reshape_like(ctx, x, ref_tensors, begins, ends, end_masks):
    shape: list[int] = []
    for ref, begin, end, end_mask in zip(ref_tensors, as_int_tuple(begins), as_int_tuple(ends), np.atleast_1d(end_masks)):
        dims = np.shape(ref)
        shape.extend(dims[begin:] if bool(end_mask) else dims[begin:end])
    return np.reshape(x, shape)


@kernel("transpose")
def transpose(ctx, x, perm):
    return np.transpose(x, as_int_tuple(perm))


@kernel("expand_dims")
def expand_dims(ctx, x, axes):
    x = np.asarray(x)
    out_rank = x.ndim + len(as_int_tuple(axes))
    return np.expand_dims(x, normalize_axes(axes, out_rank))


@kernel("squeeze")
def squeeze(ctx, x, axes=None):
    x = np.asarray(x)
    if axes is None:
        return np.squeeze(x)
    return np.squeeze(x, axis=normalize_axes(axes, x.ndim))


@kernel("reverse")
def reverse(ctx, x, axes=None):
    x = np.asarray(x)
    axes = normalize_axes(axes, x.ndim) if axes is not None else tuple(range(x.ndim))
    return np.flip(x, axis=axes)


@kernel("reverse_sequence")
def reverse_sequence(ctx, x, lengths, seq_axis=0, batch_axis=0):
    x = np.asarray(x)
    seq_axis = normalize_axis(seq_axis, x.ndim)
    batch_axis = normalize_axis(batch_axis, x.ndim)
    out = x.copy()
    for batch, length in enumerate(np.asarray(lengths).ravel()):
        length = int(length)
        source = [slice(None)] * x.ndim
        source[batch_axis] = batch
        source[seq_axis] = slice(0, length)
        out[tuple(source)] = np.flip(x[tuple(source)], axis=seq_axis - (1 if batch_axis < seq_axis else 0))
    return out


def _strided_index(rank, begin, end, stride, begin_mask, end_mask, squeeze_mask) -> tuple:
    """The numpy index MIL's slice_by_index parameters describe (Python slice semantics)."""
    begin, end = as_int_tuple(begin), as_int_tuple(end)
    stride = as_int_tuple(stride) if stride is not None else (1,) * rank
    begin_mask, end_mask, squeeze_mask = (
        np.atleast_1d(mask) if mask is not None else [False] * rank
        for mask in (begin_mask, end_mask, squeeze_mask)
    )
    index: list[object] = []
    for axis in range(rank):
        if bool(squeeze_mask[axis]):
            index.append(begin[axis])  # picks one element and drops the axis
            continue
        start = None if bool(begin_mask[axis]) else begin[axis]
        stop = None if bool(end_mask[axis]) else end[axis]
        index.append(slice(start, stop, stride[axis]))
    return tuple(index)


@kernel("slice_by_index")
def slice_by_index(ctx, x, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    x = np.asarray(x)
    return x[_strided_index(x.ndim, begin, end, stride, begin_mask, end_mask, squeeze_mask)]


@kernel("slice_by_size")
def slice_by_size(ctx, x, begin, size):
    x = np.asarray(x)
    index = []
    for axis, (start, length) in enumerate(zip(as_int_tuple(begin), as_int_tuple(size))):
        if start < 0:
            start += x.shape[axis]
        index.append(slice(start, None) if length == -1 else slice(start, start + length))
    return x[tuple(index)]


@kernel("slice_update")
def slice_update(ctx, x, update, begin, end, stride=None, begin_mask=None, end_mask=None, squeeze_mask=None):
    x = np.array(x, copy=True)
    index = _strided_index(x.ndim, begin, end, stride, begin_mask, end_mask, squeeze_mask)
    x[index] = np.reshape(update, x[index].shape)
    return x


def _rearrange(x, split_shape, perm, out_shape):
    """Reshape x to split_shape, permute the axes, reshape to out_shape (block moves between C and H, W)."""
    return np.reshape(x, split_shape).transpose(perm).reshape(out_shape)


@kernel("depth_to_space")
def depth_to_space(ctx, x, block_size):
    # Depth-column-row order, as TensorFlow's depth_to_space.
    n, c, h, w = np.shape(x)
    b = int(block_size)
    return _rearrange(x, (n, b, b, c // (b * b), h, w), (0, 3, 4, 1, 5, 2), (n, c // (b * b), h * b, w * b))


@kernel("space_to_depth")
def space_to_depth(ctx, x, block_size):
    n, c, h, w = np.shape(x)
    b = int(block_size)
    return _rearrange(x, (n, c, h // b, b, w // b, b), (0, 3, 5, 1, 2, 4), (n, c * b * b, h // b, w // b))


@kernel("pixel_shuffle")
def pixel_shuffle(ctx, x, upscale_factor):
    # Channel-row-column order, as torch.nn.PixelShuffle.
    n, c, h, w = np.shape(x)
    r = int(upscale_factor)
    return _rearrange(x, (n, c // (r * r), r, r, h, w), (0, 1, 4, 2, 5, 3), (n, c // (r * r), h * r, w * r))


@kernel("pixel_unshuffle")
def pixel_unshuffle(ctx, x, downscale_factor):
    n, c, h, w = np.shape(x)
    r = int(downscale_factor)
    return _rearrange(x, (n, c, h // r, r, w // r, r), (0, 1, 3, 5, 2, 4), (n, c * r * r, h // r, w // r))


@kernel("space_to_batch")
def space_to_batch(ctx, x, block_shape, paddings):
    x = np.asarray(x)
    block = as_int_tuple(block_shape)
    pads = np.asarray(paddings).reshape(len(block), 2)
    x = np.pad(x, [(0, 0), (0, 0)] + [tuple(int(v) for v in p) for p in pads])
    n, c = x.shape[:2]
    spatial = x.shape[2:]
    shape = [n, c]
    for size, b in zip(spatial, block):
        shape += [size // b, b]
    x = x.reshape(shape)
    nd = len(block)
    block_axes = [3 + 2 * i for i in range(nd)]
    grid_axes = [2 + 2 * i for i in range(nd)]
    x = x.transpose(block_axes + [0, 1] + grid_axes)
    return x.reshape([n * int(np.prod(block)), c] + [s // b for s, b in zip(spatial, block)])


@kernel("batch_to_space")
def batch_to_space(ctx, x, block_shape, crops):
    x = np.asarray(x)
    block = as_int_tuple(block_shape)
    nd = len(block)
    crops = np.asarray(crops).reshape(nd, 2)
    n, c = x.shape[:2]
    spatial = x.shape[2:]
    batch = n // int(np.prod(block))
    x = x.reshape(list(block) + [batch, c] + list(spatial))
    order = [nd, nd + 1]
    for i in range(nd):
        order += [nd + 2 + i, i]
    x = x.transpose(order).reshape([batch, c] + [s * b for s, b in zip(spatial, block)])
    index = [slice(None), slice(None)] + [
        slice(int(begin), x.shape[2 + i] - int(end)) for i, (begin, end) in enumerate(crops)
    ]
    return x[tuple(index)]


@kernel("sliding_windows")
def sliding_windows(ctx, x, axis, size, stride=1):
    x = np.asarray(x)
    axis = normalize_axis(axis, x.ndim)
    size, stride = int(size), int(stride)
    count = (x.shape[axis] - size) // stride + 1
    windows = [np.take(x, range(i * stride, i * stride + size), axis=axis) for i in range(count)]
    return np.stack(windows, axis=axis)
