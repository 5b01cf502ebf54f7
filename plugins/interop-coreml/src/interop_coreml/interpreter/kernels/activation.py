"""Kernels of MIL activation ops (iOS15/iOS17 ``activation.py``) and softmax."""

from __future__ import annotations

import numpy as np

from .special import gelu_exact
from .table import kernel, normalize_axis


def _per_channel(param, x):
    """Broadcast a per-channel (axis 1) parameter vector against x; scalars pass through."""
    param = np.asarray(param)
    if param.ndim == 0 or param.size == 1:
        return param.reshape(())
    return param.reshape((1, -1) + (1,) * (np.ndim(x) - 2))


# A row of float32 zeros: numpy's maximum runs its vector loop against an array operand but a
# slower loop against the scalar 0 (about 2x on large arrays), with the same result bit for bit
# (NaN propagates, -0.0 and 0.0 give +0.0 either way).
_ZEROS = np.zeros(1 << 14, np.float32)
_ZEROS.flags.writeable = False


def relu_into(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``np.maximum(x, 0, out=out)``, faster for float32 arrays whose last axis is contiguous."""
    if (x.dtype == np.float32 and out.dtype == np.float32 and x.ndim >= 1 and 64 <= x.shape[-1] <= _ZEROS.size
            and x.strides[-1] == 4):
        return np.maximum(x, _ZEROS[: x.shape[-1]], out=out)
    return np.maximum(x, 0, out=out)


@kernel("relu")
def relu(ctx, x):
    x = np.asarray(x)
    out = x if "x" in ctx.overwritable else np.empty_like(x)
    flat, flat_out = x.ravel(order="K"), out.ravel(order="K")
    rows = flat.size // _ZEROS.size
    if rows and np.may_share_memory(flat, x) and np.may_share_memory(flat_out, out):  # views, not copies
        whole = rows * _ZEROS.size
        relu_into(flat[:whole].reshape(rows, _ZEROS.size), flat_out[:whole].reshape(rows, _ZEROS.size))
        np.maximum(flat[whole:], 0, out=flat_out[whole:])
        return out
    return relu_into(x, out)


@kernel("relu6")
def relu6(ctx, x):
    return np.minimum(np.maximum(x, 0), 6)


@kernel("leaky_relu")
def leaky_relu(ctx, x, alpha=0.01):
    return np.where(x >= 0, x, x * alpha)


@kernel("prelu")
def prelu(ctx, x, alpha):
    return np.where(x >= 0, x, x * _per_channel(alpha, x))


@kernel("elu")
def elu(ctx, x, alpha=1.0):
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


@kernel("clamped_relu")
def clamped_relu(ctx, x, alpha=0.01, beta=6.0):
    return np.minimum(np.maximum(x, 0), beta) + np.minimum(np.minimum(x, 0) * alpha, beta)


@kernel("thresholded_relu")
def thresholded_relu(ctx, x, alpha=1.0):
    return np.where(x >= alpha, x, 0).astype(np.asarray(x).dtype)


@kernel("linear_activation")
def linear_activation(ctx, x, alpha, beta=0.0):
    return alpha * x + beta


@kernel("scaled_tanh")
def scaled_tanh(ctx, x, alpha=1.0, beta=1.0):
    return alpha * np.tanh(beta * x)


def _sigmoid(x):
    # Split by sign so exp never overflows.
    x = np.asarray(x)
    positive = x >= 0
    z = np.exp(np.where(positive, -x, x))
    return np.where(positive, 1 / (1 + z), z / (1 + z))


@kernel("sigmoid")
def sigmoid(ctx, x):
    return _sigmoid(x)


@kernel("sigmoid_hard")
def sigmoid_hard(ctx, x, alpha=0.2, beta=0.5):
    return np.minimum(np.maximum(alpha * x + beta, 0), 1)


@kernel("silu")
def silu(ctx, x):
    return x * _sigmoid(x)


@kernel("softplus")
def softplus(ctx, x):
    return np.logaddexp(0, x)


@kernel("softplus_parametric")
def softplus_parametric(ctx, x, alpha, beta):
    return _per_channel(alpha, x) * np.logaddexp(0, _per_channel(beta, x) * x)


@kernel("softsign")
def softsign(ctx, x):
    return x / (1 + np.abs(x))


@kernel("gelu")
def gelu(ctx, x, mode="EXACT"):
    x = np.asarray(x)
    if mode == "TANH_APPROXIMATION":
        inner = np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)
        return 0.5 * x * (1 + np.tanh(inner))
    if mode == "SIGMOID_APPROXIMATION":
        return x * _sigmoid(1.702 * x)
    if mode != "EXACT":
        raise ValueError(f"gelu: unknown mode {mode!r}")
    return gelu_exact(x)


@kernel("softmax")
def softmax(ctx, x, axis=-1):
    axis = normalize_axis(axis, np.ndim(x))
    shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return shifted / np.sum(shifted, axis=axis, keepdims=True)
