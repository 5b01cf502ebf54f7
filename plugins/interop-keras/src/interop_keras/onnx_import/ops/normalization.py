"""BatchNormalization, InstanceNormalization, LayerNormalization, GroupNormalization, LRN.

Normalisation layers work on any axis, so they keep the input's layout: a
BatchNormalization after a channels-last convolution normalises Keras axis -1.
ONNX's BatchNormalization ``momentum`` is Keras' ``momentum`` (both weight the
running value: ``running = momentum * running + (1 - momentum) * batch``).
"""

from __future__ import annotations

import numpy as np

from interop_keras.onnx_import.context import NodeContext, NotConvertible
from interop_keras.onnx_import.layout import Value, channels_last
from interop_keras.onnx_import.ops._common import float_array, set_weight
from interop_keras.onnx_import.layer_table import converter


def _vector(ctx: NodeContext, index: int, what: str, channels: int | None) -> tuple[object, np.ndarray]:
    if not ctx.is_constant(index):
        raise NotConvertible(f"the {what} is computed at run time; Keras' layer holds it")
    constant = ctx.constant(index, what)
    value = float_array(constant).reshape(-1)
    if channels is not None and value.size != channels:
        raise NotConvertible(f"{what} has {value.size} values for {channels} channels")
    return constant, value


@converter("BatchNormalization", versions=(6, 7, 9, 14, 15))
def batch_normalization(ctx: NodeContext) -> None:
    import keras

    if ctx.since < 9 and ctx.attr("spatial", 1) == 0:
        raise NotConvertible("spatial=0 (statistics per activation, not per channel)")
    if ctx.attr("training_mode", 0):
        raise NotConvertible("training_mode=1 in the graph (an inference graph has 0)")
    if any(ctx.importer.is_used(name) for name in ctx.node.output[1:]):
        raise NotConvertible("its running-statistics outputs are used")
    x = ctx.value(0)
    if x.rank < 2:
        raise NotConvertible("a 1-D input")
    if ctx.is_constant(1):
        x = ctx.with_sizes(x, {1: int(ctx.constant(1, "scale").value.size)})
    channels = x.shape[1]
    scale_c, scale = _vector(ctx, 1, "scale", channels)
    bias_c, bias = _vector(ctx, 2, "bias", channels)
    mean_c, mean = _vector(ctx, 3, "mean", channels)
    var_c, var = _vector(ctx, 4, "variance", channels)
    layer = keras.layers.BatchNormalization(
        axis=x.keras_axis(1), momentum=float(ctx.attr("momentum", 0.9)), epsilon=float(ctx.attr("epsilon", 1e-5)),
        name=ctx.name(weights=[ctx.node.input[1]]),
    )
    out = layer(x.tensor)
    for variable, constant, value in ((layer.gamma, scale_c, scale), (layer.beta, bias_c, bias),
                                      (layer.moving_mean, mean_c, mean), (layer.moving_variance, var_c, var)):
        shape = constant.value.shape
        set_weight(ctx, variable, constant, value, lambda a, s=shape: a.reshape(s))
    ctx.output(out, x.perm)


def _group_norm(ctx: NodeContext, groups_of: str) -> None:
    import keras

    x = ctx.value(0)
    if ctx.is_constant(1):
        x = ctx.with_sizes(x, {1: int(ctx.constant(1, "scale").value.size)})
    channels = x.shape[1]
    scale_c, scale = _vector(ctx, 1, "scale", channels)
    bias_c, bias = _vector(ctx, 2, "bias", channels)
    groups = channels if groups_of == "channels" else int(ctx.attr("num_groups"))
    if x.perm[0] != 0:  # Keras' GroupNormalization keeps its statistics apart per Keras axis 0
        x = Value(ctx.to_layout(x, channels_last(x.rank)), channels_last(x.rank))
    layer = keras.layers.GroupNormalization(
        groups=groups, axis=x.keras_axis(1), epsilon=float(ctx.attr("epsilon", 1e-5)),
        name=ctx.name(weights=[ctx.node.input[1]]),
    )
    out = layer(x.tensor)
    for variable, constant, value in ((layer.gamma, scale_c, scale), (layer.beta, bias_c, bias)):
        shape = constant.value.shape
        set_weight(ctx, variable, constant, value, lambda a, s=shape: a.reshape(s))
    ctx.output(out, x.perm)


@converter("InstanceNormalization", versions=(6, 22))
def instance_normalization(ctx: NodeContext) -> None:
    _group_norm(ctx, "channels")


@converter("GroupNormalization", versions=(21,))
def group_normalization(ctx: NodeContext) -> None:
    if ctx.attr("stash_type", 1) != 1:
        raise NotConvertible("stash_type other than float32")
    _group_norm(ctx, "attribute")


@converter("LayerNormalization", versions=(17,))
def layer_normalization(ctx: NodeContext) -> None:
    import keras

    if any(ctx.importer.is_used(name) for name in ctx.node.output[1:]):
        raise NotConvertible("its mean or inverse-deviation outputs are used")
    x = ctx.value(0)
    axis = int(ctx.attr("axis", -1)) % x.rank
    onnx_axes = list(range(axis, x.rank))
    normalized = [x.shape[a] for a in onnx_axes]
    if any(n is None for n in normalized):
        raise NotConvertible("normalised axes whose size is known only at run time")
    keras_axes = sorted(x.keras_axis(a) for a in onnx_axes)
    order = [x.perm[k] - axis for k in keras_axes]  # ONNX normalised axis held by each Keras axis, in order
    if not ctx.is_constant(1):
        raise NotConvertible("the scale is computed at run time")
    scale_c = ctx.constant(1, "scale")
    bias_c = ctx.constant(2, "bias") if ctx.has_input(2) else None
    tensors = [(scale_c, float_array(scale_c))] + ([(bias_c, float_array(bias_c))] if bias_c is not None else [])
    for constant, value in tensors:
        if value.shape != tuple(normalized) and value.size != int(np.prod(normalized)):
            raise NotConvertible(f"scale/bias of shape {value.shape} for normalised shape {tuple(normalized)}")
    layer = keras.layers.LayerNormalization(
        axis=keras_axes if len(keras_axes) > 1 else keras_axes[0], epsilon=float(ctx.attr("epsilon", 1e-5)),
        center=bias_c is not None, name=ctx.name(weights=[ctx.node.input[1]]),
    )
    out = layer(x.tensor)
    variables = [layer.gamma] + ([layer.beta] if bias_c is not None else [])
    for variable, (constant, value) in zip(variables, tensors):
        shape = constant.value.shape
        stored = np.transpose(value.reshape(normalized), order)

        def back(a: np.ndarray, s: tuple[int, ...] = shape, o: list[int] = order,
                 n: list[int] = normalized) -> np.ndarray:
            return np.transpose(a.reshape([n[i] for i in o]), np.argsort(o)).reshape(s)

        set_weight(ctx, variable, constant, stored.reshape(variable.shape), back)
    ctx.output(out, x.perm)


@converter("LRN", versions=(1, 13))
def lrn(ctx: NodeContext) -> None:
    from interop_keras import layers as interop_layers

    x = ctx.value(0)
    layer = interop_layers.LocalResponseNormalization(
        size=int(ctx.attr("size")), alpha=float(ctx.attr("alpha", 1e-4)), beta=float(ctx.attr("beta", 0.75)),
        bias=float(ctx.attr("bias", 1.0)), axis=x.keras_axis(1), name=ctx.name(),
    )
    ctx.output(layer(x.tensor), x.perm)
