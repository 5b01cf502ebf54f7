"""Kernels of MIL normalization ops: batch_norm, instance_norm, layer_norm, l2_norm, local_response_norm."""

from __future__ import annotations

import numpy as np

from .table import kernel, normalize_axes


def _channel_shaped(vector, x):
    return np.asarray(vector).reshape((1, -1) + (1,) * (np.ndim(x) - 2))


@kernel("batch_norm")
def batch_norm(ctx, x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    # In the op definition's order, (x - mean) first: the folded x·s + (beta - mean·s) cancels
    # when mean·s is large against the result (a channel whose variance is near 0 gets s = 1/sqrt(eps)),
    # and loses digits the definition's order keeps (DenseNet-121's stored statistics: 380x the error).
    scale = 1.0 / np.sqrt(np.asarray(variance) + epsilon)
    if gamma is not None:
        scale = scale * gamma
    out = (x - _channel_shaped(mean, x).astype(x.dtype)) * _channel_shaped(scale, x).astype(x.dtype)
    if beta is not None:
        out = out + _channel_shaped(beta, x).astype(x.dtype)
    return out


@kernel("instance_norm")
def instance_norm(ctx, x, gamma=None, beta=None, epsilon=1e-5):
    axes = tuple(range(2, np.ndim(x)))
    mean = np.mean(x, axis=axes, keepdims=True)
    variance = np.mean(np.square(x - mean), axis=axes, keepdims=True)
    out = (x - mean) / np.sqrt(variance + epsilon)
    if gamma is not None:
        out = out * _channel_shaped(gamma, x)
    if beta is not None:
        out = out + _channel_shaped(beta, x)
    return out


@kernel("layer_norm")
def layer_norm(ctx, x, axes=None, gamma=None, beta=None, epsilon=1e-5):
    x = np.asarray(x)
    axes = normalize_axes(axes, x.ndim) if axes is not None else tuple(range(x.ndim))
    mean = np.mean(x, axis=axes, keepdims=True)
    variance = np.mean(np.square(x - mean), axis=axes, keepdims=True)
    out = (x - mean) / np.sqrt(variance + epsilon)
    # gamma/beta have the shape of the normalized (trailing) axes and broadcast from the right.
    if gamma is not None:
        out = out * _trailing_shaped(gamma, x, axes)
    if beta is not None:
        out = out + _trailing_shaped(beta, x, axes)
    return out


def _trailing_shaped(param, x, axes):
    param = np.asarray(param)
    shape = [1] * x.ndim
    for axis, size in zip(axes, param.shape):
        shape[axis] = size
    return param.reshape(shape)


@kernel("l2_norm")
def l2_norm(ctx, x, epsilon=1e-6):
    x = np.asarray(x)
    # The last three dims are normalized together; leading dims are batch.
    batch_shape = x.shape[:-3]
    flat = x.reshape((int(np.prod(batch_shape)) if batch_shape else 1, -1))
    norm = np.sqrt(np.sum(flat * flat, axis=1, keepdims=True) + epsilon)
    return (flat / norm).reshape(x.shape)


@kernel("local_response_norm")
def local_response_norm(ctx, x, size, alpha=1e-4, beta=0.75, k=1.0):
    x = np.asarray(x)
    size = int(size)
    channels = x.shape[1]
    squares = np.square(x)
    before, after = (size - 1) // 2, size // 2
    padded = np.pad(squares, [(0, 0), (before, after)] + [(0, 0)] * (x.ndim - 2))
    window_sums = sum(padded[:, offset : offset + channels] for offset in range(size))
    return x / np.power(k + alpha / size * window_sums, beta)
