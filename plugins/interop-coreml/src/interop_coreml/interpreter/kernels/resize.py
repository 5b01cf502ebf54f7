"""Kernels of MIL image-resizing ops: upsample_*/resize_* (iOS15-iOS17) and iOS17 ``resize``.

Sampling grids follow the formulas in the op docs (resize_bilinear's sampling
modes); interpolation is separable, one spatial axis at a time.
"""

from __future__ import annotations

import numpy as np

from .table import as_int_tuple, kernel


def _grid(size_in: int, size_out: int, mode: str) -> np.ndarray:
    """Input coordinates sampled for each output index, for one axis."""
    i = np.arange(size_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if size_out == 1:
            points = np.full(1, (size_in - 1) / 2 if mode == "ALIGN_CORNERS" else 0.0)
        else:
            points = i * (size_in - 1) / (size_out - 1)
    elif mode == "DEFAULT":
        points = i * size_in / size_out
    elif mode == "OFFSET_CORNERS":
        delta = max(1, size_in - 1) / size_out
        points = 0.5 * delta + i * delta
    elif mode == "UNALIGN_CORNERS":
        spacing = size_in / size_out
        points = i * spacing + 0.5 * spacing - 0.5
    else:
        raise ValueError(f"unknown sampling mode {mode!r}")
    return np.clip(points, 0, size_in - 1)


def _linear_along(x: np.ndarray, axis: int, points: np.ndarray) -> np.ndarray:
    low = np.floor(points).astype(np.int64)
    high = np.minimum(low + 1, x.shape[axis] - 1)
    weight_shape = [1] * x.ndim
    weight_shape[axis] = -1
    weight = (points - low).astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32)
    weight = weight.reshape(weight_shape)
    return np.take(x, low, axis=axis) * (1 - weight) + np.take(x, high, axis=axis) * weight


def _bilinear(x, out_h, out_w, mode):
    x = np.asarray(x)
    x = _linear_along(x, x.ndim - 2, _grid(x.shape[-2], out_h, mode))
    return _linear_along(x, x.ndim - 1, _grid(x.shape[-1], out_w, mode))


def _nearest(x, out_sizes, mode="DEFAULT"):
    x = np.asarray(x)
    first = x.ndim - len(out_sizes)
    for offset, size_out in enumerate(out_sizes):
        axis = first + offset
        points = _grid(x.shape[axis], size_out, mode)
        # DEFAULT samples asymmetrically (floor); the other modes pick the closest pixel.
        picks = np.floor(points) if mode == "DEFAULT" else np.floor(points + 0.5)
        x = np.take(x, np.minimum(picks.astype(np.int64), x.shape[axis] - 1), axis=axis)
    return x


@kernel("upsample_nearest_neighbor")
def upsample_nearest_neighbor(ctx, x, scale_factor_height=1, scale_factor_width=1):
    x = np.asarray(x)
    out_h = int(np.floor(x.shape[-2] * float(scale_factor_height)))
    out_w = int(np.floor(x.shape[-1] * float(scale_factor_width)))
    return _nearest(x, (out_h, out_w))


@kernel("resize_nearest_neighbor")
def resize_nearest_neighbor(ctx, x, target_size_height=1, target_size_width=1):
    return _nearest(x, (int(target_size_height), int(target_size_width)))


@kernel("upsample_bilinear")
def upsample_bilinear(ctx, x, scale_factor_height=1, scale_factor_width=1, align_corners=True, half_pixel_centers=None):
    x = np.asarray(x)
    out_h = int(np.floor(x.shape[-2] * float(scale_factor_height)))
    out_w = int(np.floor(x.shape[-1] * float(scale_factor_width)))
    align_corners = bool(align_corners)
    half_pixel = (not align_corners) if half_pixel_centers is None else bool(half_pixel_centers)
    if align_corners:
        mode = "STRICT_ALIGN_CORNERS"
    else:
        mode = "UNALIGN_CORNERS" if half_pixel else "DEFAULT"
    return _bilinear(x, out_h, out_w, mode)


@kernel("resize_bilinear")
def resize_bilinear(ctx, x, target_size_height=1, target_size_width=1, sampling_mode="DEFAULT"):
    return _bilinear(x, int(target_size_height), int(target_size_width), str(sampling_mode))


@kernel("resize")
def resize(ctx, x, shape, resized_dims, interpolation_mode="LINEAR", sampling_mode="DEFAULT"):
    x = np.asarray(x)
    shape = as_int_tuple(shape)
    resized = int(resized_dims)
    # The last `resized` entries of `shape` give the new sizes of x's last `resized` dims (0 keeps a dim).
    wanted = shape[len(shape) - resized :]
    current = x.shape[x.ndim - resized :]
    sizes = tuple(c if w == 0 else w for w, c in zip(wanted, current))
    if interpolation_mode == "NEAREST_NEIGHBOR":
        return _nearest(x, sizes, str(sampling_mode))
    for offset, size_out in enumerate(sizes):
        axis = x.ndim - resized + offset
        x = _linear_along(x, axis, _grid(x.shape[axis], size_out, str(sampling_mode)))
    return x


@kernel("crop")
def crop(ctx, x, crop_height, crop_width):
    x = np.asarray(x)
    top, bottom = as_int_tuple(crop_height)
    left, right = as_int_tuple(crop_width)
    return x[..., top : x.shape[-2] - bottom, left : x.shape[-1] - right]
