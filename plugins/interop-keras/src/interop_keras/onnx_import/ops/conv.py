"""Conv and ConvTranspose -> Keras Conv1D/2D/3D, DepthwiseConv1D/2D, Conv*DTranspose (channels-last)."""

from __future__ import annotations

from typing import Any

import numpy as np

from interop_keras.onnx_import.context import NodeContext, NotConvertible
from interop_keras.onnx_import.layout import channels_last
from interop_keras.onnx_import.ops._common import (
    float_array,
    keras_padding,
    set_weight,
    spatial_attributes,
    spatial_sizes,
)
from interop_keras.onnx_import.layer_table import converter


def _zero_padding(ctx: NodeContext, tensor: Any, pads: list[tuple[int, int]]) -> Any:
    import keras

    cls = {1: keras.layers.ZeroPadding1D, 2: keras.layers.ZeroPadding2D, 3: keras.layers.ZeroPadding3D}[len(pads)]
    padding = pads[0] if len(pads) == 1 else tuple(pads)
    return cls(padding=padding, name=ctx.name("pad"))(tensor)


@converter("Conv", versions=(1, 11, 22))
def conv(ctx: NodeContext) -> None:
    import keras

    x = ctx.value(0)
    if not ctx.is_constant(1):
        raise NotConvertible("the kernel is computed at run time; Keras convolutions hold a fixed kernel")
    w_const = ctx.constant(1, "kernel")
    w = float_array(w_const)
    spatial_rank = w.ndim - 2
    if spatial_rank not in (1, 2, 3) or x.rank != w.ndim:
        raise NotConvertible(f"{spatial_rank}-D convolution (Keras has 1-D, 2-D and 3-D)")
    group = int(ctx.attr("group", 1))
    c_out, c_in_per_group = w.shape[:2]
    x = ctx.with_sizes(x, {1: c_in_per_group * group})
    c_in = x.shape[1]
    if c_in != c_in_per_group * group:
        raise NotConvertible(f"kernel expects {c_in_per_group * group} input channels, the input has {c_in}")
    sizes = spatial_sizes(x.shape)
    spatial = spatial_attributes(ctx, list(w.shape[2:]), sizes)
    if any(s > 1 for s in spatial.strides) and any(d > 1 for d in spatial.dilations):
        raise NotConvertible("strides and dilations both above 1 (Keras' convolutions take one or the other)")
    padding = keras_padding(spatial, sizes)
    tensor = ctx.to_layout(x, channels_last(x.rank))
    if padding is None:
        tensor = _zero_padding(ctx, tensor, spatial.pads)
        padding = "valid"
    bias = ctx.constant(2, "bias") if ctx.has_input(2) else None
    weights = [ctx.node.input[1]] + ([ctx.node.input[2]] if bias is not None else [])
    name = ctx.name(weights=weights)
    c_in_total = c_in_per_group * group
    # TensorFlow's depthwise kernel takes equal strides only; otherwise a grouped Conv does the same.
    depthwise = group > 1 and group == c_in_total and spatial_rank in (1, 2) and c_in_per_group == 1 \
        and len(set(spatial.strides)) == 1
    kernel_size = tuple(w.shape[2:])
    common = dict(kernel_size=kernel_size, strides=tuple(spatial.strides), padding=padding,
                  dilation_rate=tuple(spatial.dilations), use_bias=bias is not None, name=name)
    if depthwise:
        multiplier = c_out // c_in_total
        cls = keras.layers.DepthwiseConv1D if spatial_rank == 1 else keras.layers.DepthwiseConv2D
        layer = cls(depth_multiplier=multiplier, **common)
        out = layer(tensor)
        # ONNX (C*m, 1, k...) -> Keras (k..., C, m); output channel c*m + j is input channel c, multiplier j.
        kernel = np.moveaxis(w.reshape(c_in_total, multiplier, *kernel_size), (0, 1), (-2, -1))

        def kernel_back(a: np.ndarray, shape: tuple[int, ...] = w.shape) -> np.ndarray:
            return np.moveaxis(a, (-2, -1), (0, 1)).reshape(shape)
    else:
        cls = {1: keras.layers.Conv1D, 2: keras.layers.Conv2D, 3: keras.layers.Conv3D}[spatial_rank]
        layer = cls(filters=c_out, groups=group, **common)
        out = layer(tensor)
        # ONNX (O, I/g, k...) -> Keras (k..., I/g, O)
        kernel = np.transpose(w, (*range(2, w.ndim), 1, 0))

        def kernel_back(a: np.ndarray, rank: int = w.ndim) -> np.ndarray:
            return np.transpose(a, (rank - 1, rank - 2, *range(rank - 2)))
    set_weight(ctx, layer.kernel, w_const, kernel, kernel_back)
    if bias is not None:
        set_weight(ctx, layer.bias, bias, float_array(bias).reshape(-1), lambda a, s=bias.value.shape: a.reshape(s))
    ctx.output(out, channels_last(x.rank))


@converter("ConvTranspose", versions=(1, 11, 22))
def conv_transpose(ctx: NodeContext) -> None:
    import keras

    x = ctx.value(0)
    if not ctx.is_constant(1):
        raise NotConvertible("the kernel is computed at run time; Keras convolutions hold a fixed kernel")
    w_const = ctx.constant(1, "kernel")
    w = float_array(w_const)
    spatial_rank = w.ndim - 2
    if spatial_rank not in (1, 2, 3) or x.rank != w.ndim:
        raise NotConvertible(f"{spatial_rank}-D transposed convolution (Keras has 1-D, 2-D and 3-D)")
    group = int(ctx.attr("group", 1))
    if group != 1:
        raise NotConvertible(f"group={group} (Keras' transposed convolutions have no groups)")
    c_in, c_out = w.shape[:2]
    x = ctx.with_sizes(x, {1: c_in})
    kernel_size = list(w.shape[2:])
    n = spatial_rank
    strides = list(ctx.attr("strides", [1] * n))
    dilations = list(ctx.attr("dilations", [1] * n))
    if any(d > 1 for d in dilations):
        raise NotConvertible("dilations above 1 (TensorFlow's CPU transposed convolution has none)")
    output_padding = list(ctx.attr("output_padding", [0] * n))
    k_eff = [(k - 1) * d + 1 for k, d in zip(kernel_size, dilations)]
    sizes = spatial_sizes(x.shape)
    full = [None if s is None else st * (s - 1) + ke for s, st, ke in zip(sizes, strides, k_eff)]
    auto_pad = ctx.attr("auto_pad", "NOTSET") or "NOTSET"
    output_shape = ctx.attr("output_shape")
    raw = list(ctx.attr("pads", [0] * (2 * n)))
    pads = [(raw[i], raw[i + n]) for i in range(n)]
    if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if any(s is None for s in sizes):
            raise NotConvertible("output_shape or SAME padding on a tensor whose size is known only at run time")
        targets = list(output_shape)[-n:] if output_shape is not None else [s * st for s, st in zip(sizes, strides)]
        pads = []
        for i in range(n):
            total = full[i] + output_padding[i] - targets[i]  # type: ignore[operator]
            if total < 0 and auto_pad in ("SAME_UPPER", "SAME_LOWER"):
                raise NotConvertible("SAME padding with a kernel smaller than the stride (engines disagree: "
                                     "onnxruntime clamps the padding, the spec grows the output)")
            if total < 0:
                output_padding[i] -= total  # an output_shape past the natural size grows the end only
                total = 0
            small = total // 2  # SAME_UPPER: the larger half at the end; otherwise at the start
            pads.append((small, total - small) if auto_pad == "SAME_UPPER" else (total - small, small))
    elif auto_pad == "VALID":
        pads = [(0, 0)] * n
    if any(p >= s for p, s in zip(output_padding, strides)) and any(p for p in output_padding):
        raise NotConvertible("output_padding not smaller than the stride (Keras refuses it)")
    bias = ctx.constant(2, "bias") if ctx.has_input(2) else None
    weights = [ctx.node.input[1]] + ([ctx.node.input[2]] if bias is not None else [])
    cls = {1: keras.layers.Conv1DTranspose, 2: keras.layers.Conv2DTranspose, 3: keras.layers.Conv3DTranspose}[n]
    layer = cls(filters=c_out, kernel_size=tuple(kernel_size), strides=tuple(strides), padding="valid",
                output_padding=tuple(output_padding) if n > 1 else output_padding[0],
                dilation_rate=tuple(dilations), use_bias=bias is not None, name=ctx.name(weights=weights))
    out = layer(ctx.to_layout(x, channels_last(x.rank)))
    # ONNX (I, O, k...) -> Keras (k..., O, I)
    kernel = np.transpose(w, (*range(2, w.ndim), 1, 0))
    set_weight(ctx, layer.kernel, w_const, kernel,
               lambda a, rank=w.ndim: np.transpose(a, (rank - 1, rank - 2, *range(rank - 2))))
    if bias is not None:
        set_weight(ctx, layer.bias, bias, float_array(bias).reshape(-1), lambda a, s=bias.value.shape: a.reshape(s))
    if any(b or e for b, e in pads):
        if any(b < 0 or e < 0 for b, e in pads):
            raise NotConvertible("negative pads")
        crop = {1: keras.layers.Cropping1D, 2: keras.layers.Cropping2D, 3: keras.layers.Cropping3D}[n]
        out = crop(cropping=pads[0] if n == 1 else tuple(pads), name=ctx.name("crop"))(out)
    ctx.output(out, channels_last(x.rank))
