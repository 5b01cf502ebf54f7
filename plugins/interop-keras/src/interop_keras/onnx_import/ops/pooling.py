"""MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool -> Keras pooling layers (channels-last).

Keras' pooling layers know 'valid' and TensorFlow's 'same' padding; anything
else ONNX can say (asymmetric or larger pads, ``ceil_mode``, averages that count
the padding) goes to interop's :class:`~interop_keras.layers.Pooling`.
"""

from __future__ import annotations

from interop_keras.onnx_import.context import NodeContext, NotConvertible
from interop_keras.onnx_import.layout import channels_last
from interop_keras.onnx_import.ops._common import keras_padding, spatial_attributes, spatial_sizes
from interop_keras.onnx_import.layer_table import converter


def _ceil_extra(sizes: list[int | None], spatial, ceil_mode: bool) -> list[int]:  # type: ignore[no-untyped-def]
    """Padding ``ceil_mode`` adds at the end so the last, partial window exists."""
    if not ceil_mode:
        return [0] * len(sizes)
    if any(s is None for s in sizes):
        raise NotConvertible("ceil_mode on a tensor whose spatial size is known only at run time")
    extra = []
    for size, (before, after), k_eff, stride in zip(sizes, spatial.pads, spatial.effective_kernel, spatial.strides):
        padded = size + before + after  # type: ignore[operator]
        count = -(-(padded - k_eff) // stride) + 1
        if (count - 1) * stride >= size + before:  # type: ignore[operator]
            count -= 1  # the last window must start inside the input or its left padding
        extra.append(max((count - 1) * stride + k_eff - padded, 0))
    return extra


def _pool(ctx: NodeContext, mode: str) -> None:
    import keras

    from interop_keras import layers as interop_layers

    if any(ctx.importer.is_used(name) for name in ctx.node.output[1:]):
        raise NotConvertible("its Indices output is used")
    x = ctx.value(0)
    kernel = list(ctx.attr("kernel_shape"))
    n = len(kernel)
    if n not in (1, 2, 3) or x.rank != n + 2:
        raise NotConvertible(f"{n}-D pooling (Keras has 1-D, 2-D and 3-D)")
    sizes = spatial_sizes(x.shape)
    spatial = spatial_attributes(ctx, kernel, sizes)
    if any(d != 1 for d in spatial.dilations):
        raise NotConvertible("dilated pooling (Keras' pooling has no dilation)")
    count_include_pad = bool(ctx.attr("count_include_pad", 0)) if mode == "average" else False
    extra = _ceil_extra(sizes, spatial, bool(ctx.attr("ceil_mode", 0)))
    padding = keras_padding(spatial, sizes) if not any(extra) else None
    if padding == "same" and count_include_pad:
        padding = None  # TensorFlow's 'same' average excludes the padding
    tensor = ctx.to_layout(x, channels_last(x.rank))
    if padding is not None:
        cls = {("max", 1): keras.layers.MaxPooling1D, ("max", 2): keras.layers.MaxPooling2D,
               ("max", 3): keras.layers.MaxPooling3D, ("average", 1): keras.layers.AveragePooling1D,
               ("average", 2): keras.layers.AveragePooling2D, ("average", 3): keras.layers.AveragePooling3D}[(mode, n)]
        layer = cls(pool_size=tuple(kernel), strides=tuple(spatial.strides), padding=padding, name=ctx.name())
    else:
        layer = interop_layers.Pooling("MaxPool" if mode == "max" else "AveragePool", kernel, spatial.strides,
                                       [list(p) for p in spatial.pads], extra, count_include_pad, name=ctx.name())
    ctx.output(layer(tensor), channels_last(x.rank))


@converter("MaxPool", versions=(1, 8, 10, 11, 12, 22))
def max_pool(ctx: NodeContext) -> None:
    _pool(ctx, "max")


@converter("AveragePool", versions=(1, 7, 10, 11, 19, 22))
def average_pool(ctx: NodeContext) -> None:
    _pool(ctx, "average")


@converter(("GlobalAveragePool", "GlobalMaxPool"), versions=(1, 22))
def global_pool(ctx: NodeContext) -> None:
    import keras

    x = ctx.value(0)
    n = x.rank - 2
    if n not in (1, 2, 3):
        raise NotConvertible(f"{n}-D global pooling (Keras has 1-D, 2-D and 3-D)")
    average = ctx.op_type == "GlobalAveragePool"
    cls = {(True, 1): keras.layers.GlobalAveragePooling1D, (True, 2): keras.layers.GlobalAveragePooling2D,
           (True, 3): keras.layers.GlobalAveragePooling3D, (False, 1): keras.layers.GlobalMaxPooling1D,
           (False, 2): keras.layers.GlobalMaxPooling2D, (False, 3): keras.layers.GlobalMaxPooling3D}[(average, n)]
    layer = cls(keepdims=True, name=ctx.name())
    ctx.output(layer(ctx.to_layout(x, channels_last(x.rank))), channels_last(x.rank))
