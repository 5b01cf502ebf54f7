"""Activations, Softmax, Clip, Dropout and Identity -> Keras activation layers (or interop's Unary)."""

from __future__ import annotations

import numpy as np

from interop_keras.onnx_import.context import NodeContext, NotConvertible
from interop_keras.onnx_import.layout import Value, identity
from interop_keras.onnx_import.ops._common import float_array, set_weight
from interop_keras.onnx_import.layer_table import converter

_NATIVE = {"Sigmoid": "sigmoid", "Tanh": "tanh", "Softplus": "softplus", "Softsign": "softsign",
           "HardSwish": "hard_silu", "Mish": "mish"}


@converter(("Sigmoid", "Tanh"), versions=(6, 13))
@converter(("Softplus", "Softsign"), versions=(1, 22))
@converter("HardSwish", versions=(14, 22))
@converter("Mish", versions=(18, 22))
def native_activation(ctx: NodeContext) -> None:
    import keras

    x = ctx.value(0)
    ctx.output(keras.layers.Activation(_NATIVE[ctx.op_type], name=ctx.name())(x.tensor), x.perm)


@converter("Relu", versions=(6, 13, 14))
def relu(ctx: NodeContext) -> None:
    import keras

    x = ctx.value(0)
    ctx.output(keras.layers.ReLU(name=ctx.name())(x.tensor), x.perm)


@converter("LeakyRelu", versions=(6, 16))
def leaky_relu(ctx: NodeContext) -> None:
    import keras

    x = ctx.value(0)
    layer = keras.layers.LeakyReLU(negative_slope=float(ctx.attr("alpha", 0.01)), name=ctx.name())
    ctx.output(layer(x.tensor), x.perm)


@converter("ThresholdedRelu", versions=(10, 22))
def thresholded_relu(ctx: NodeContext) -> None:
    import keras

    x = ctx.value(0)
    ctx.output(keras.layers.ReLU(threshold=float(ctx.attr("alpha", 1.0)), name=ctx.name())(x.tensor), x.perm)


@converter("Elu", versions=(6, 22))
def elu(ctx: NodeContext) -> None:
    import keras

    x = ctx.value(0)
    ctx.output(keras.layers.ELU(alpha=float(ctx.attr("alpha", 1.0)), name=ctx.name())(x.tensor), x.perm)


@converter("Selu", versions=(6, 22))
def selu(ctx: NodeContext) -> None:
    import keras

    alpha, gamma = float(ctx.attr("alpha", 1.67326319217681884765625)), float(ctx.attr("gamma", 1.05070102214813232421875))
    if abs(alpha - 1.6732632) > 1e-6 or abs(gamma - 1.0507010) > 1e-6:
        raise NotConvertible(f"alpha={alpha}, gamma={gamma} (Keras' selu has the standard constants only)")
    x = ctx.value(0)
    ctx.output(keras.layers.Activation("selu", name=ctx.name())(x.tensor), x.perm)


@converter("HardSigmoid", versions=(6, 22))
def hard_sigmoid(ctx: NodeContext) -> None:
    import keras

    from interop_keras import layers as interop_layers

    x = ctx.value(0)
    alpha, beta = float(ctx.attr("alpha", 0.2)), float(ctx.attr("beta", 0.5))
    if abs(alpha - 1 / 6) < 1e-7 and beta == 0.5:
        layer = keras.layers.Activation("hard_sigmoid", name=ctx.name())
    else:
        layer = interop_layers.Unary("HardSigmoid", alpha=alpha, beta=beta, name=ctx.name())
    ctx.output(layer(x.tensor), x.perm)


@converter("Gelu", versions=(20,))
def gelu(ctx: NodeContext) -> None:
    import keras

    from interop_keras import layers as interop_layers

    x = ctx.value(0)
    if ctx.attr("approximate", "none") == "tanh":
        layer = interop_layers.Unary("GeluTanh", name=ctx.name())
    else:
        layer = keras.layers.Activation("gelu", name=ctx.name())
    ctx.output(layer(x.tensor), x.perm)


@converter("Celu", versions=(12,))
def celu(ctx: NodeContext) -> None:
    from interop_keras import layers as interop_layers

    x = ctx.value(0)
    layer = interop_layers.Unary("Celu", alpha=float(ctx.attr("alpha", 1.0)), name=ctx.name())
    ctx.output(layer(x.tensor), x.perm)


@converter("Shrink", versions=(9,))
def shrink(ctx: NodeContext) -> None:
    from interop_keras import layers as interop_layers

    x = ctx.value(0)
    layer = interop_layers.Unary("Shrink", alpha=float(ctx.attr("lambd", 0.5)), beta=float(ctx.attr("bias", 0.0)),
                                 name=ctx.name())
    ctx.output(layer(x.tensor), x.perm)


@converter("PRelu", versions=(6, 7, 9, 16))
def prelu(ctx: NodeContext) -> None:
    import keras

    x = ctx.value(0)
    if not ctx.is_constant(1):
        raise NotConvertible("the slope is computed at run time")
    slope_const = ctx.constant(1, "slope")
    slope = float_array(slope_const)
    if slope.ndim > x.rank:
        raise NotConvertible("slope of higher rank than the input")
    aligned = slope.reshape((1,) * (x.rank - slope.ndim) + slope.shape)
    x = ctx.with_sizes(x, {axis: size for axis, size in enumerate(aligned.shape) if size != 1})
    if aligned.shape[0] != 1:
        raise NotConvertible("a slope that varies along the batch axis")
    if x.perm[0] != 0:  # Keras' alpha covers every axis but Keras axis 0
        x = Value(ctx.to_layout(x, identity(x.rank)), identity(x.rank))
    stored = np.transpose(aligned, x.perm)[0]
    shared = [i + 1 for i, size in enumerate(stored.shape) if size == 1]
    layer = keras.layers.PReLU(shared_axes=shared or None, name=ctx.name(weights=[ctx.node.input[1]]))
    out = layer(x.tensor)
    original = slope.shape

    def back(array: np.ndarray, perm: tuple[int, ...] = x.perm) -> np.ndarray:
        return np.transpose(array[None], np.argsort(perm)).reshape(original)

    set_weight(ctx, layer.alpha, slope_const, stored, back)
    ctx.output(out, x.perm)


@converter("Clip", versions=(6, 11, 12, 13))
def clip(ctx: NodeContext) -> None:
    import keras

    from interop_keras import layers as interop_layers

    x = ctx.value(0)
    if ctx.since < 11:
        low, high = ctx.attr("min"), ctx.attr("max")
    else:
        low = float(ctx.constant(1, "min").value) if ctx.has_input(1) else None
        high = float(ctx.constant(2, "max").value) if ctx.has_input(2) else None
    if low == 0.0:
        layer = keras.layers.ReLU(max_value=high, name=ctx.name())
    else:
        layer = interop_layers.Unary("Clip", alpha=low, beta=high, name=ctx.name())
    ctx.output(layer(x.tensor), x.perm)


def _softmax_axes(ctx: NodeContext, rank: int) -> list[int]:
    axis = int(ctx.attr("axis", -1 if ctx.since >= 13 else 1)) % rank
    # Before opset 13 the input is flattened to 2-D at ``axis``: one softmax over all later axes.
    return [axis] if ctx.since >= 13 else list(range(axis, rank))


@converter("Softmax", versions=(1, 11, 13))
def softmax(ctx: NodeContext) -> None:
    import keras

    x = ctx.value(0)
    axes = sorted(x.keras_axis(a) for a in _softmax_axes(ctx, x.rank))
    layer = keras.layers.Softmax(axis=axes[0] if len(axes) == 1 else axes, name=ctx.name())
    ctx.output(layer(x.tensor), x.perm)


@converter("LogSoftmax", versions=(1, 11, 13))
def log_softmax(ctx: NodeContext) -> None:
    from interop_keras import layers as interop_layers

    x = ctx.value(0)
    axes = sorted(x.keras_axis(a) for a in _softmax_axes(ctx, x.rank))
    ctx.output(interop_layers.LogSoftmax(axes, name=ctx.name())(x.tensor), x.perm)


@converter("Identity", versions=(1, 13, 14, 16, 19, 21))
def identity_op(ctx: NodeContext) -> None:
    x = ctx.value(0)
    ctx.output(x.tensor, x.perm)


@converter("Dropout", versions=(1, 6, 7, 10, 12, 13, 22))
def dropout(ctx: NodeContext) -> None:
    import keras

    if any(ctx.importer.is_used(name) for name in ctx.node.output[1:]):
        raise NotConvertible("its mask output is used")
    x = ctx.value(0)
    if ctx.since >= 12:
        rate = float(ctx.constant(1, "ratio").value) if ctx.has_input(1) else 0.5
    else:
        rate = float(ctx.attr("ratio", 0.5))
    ctx.output(keras.layers.Dropout(rate, name=ctx.name())(x.tensor), x.perm)
