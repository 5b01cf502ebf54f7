"""Normalisation layers: BatchNorm (running statistics update in train mode), Instance/Layer/Group norm, LRN, Lp."""

from __future__ import annotations

import numpy as np
import onnx

from interop_torch.onnx_import.context import ImportContext, NodeNotConvertible, Value, literal
from interop_torch.onnx_import.ops._common import dtype_kw, norm_axis
from interop_torch.onnx_import.module_table import converter

_BN_LAYER = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}
_IN_LAYER = {3: "InstanceNorm1d", 4: "InstanceNorm2d", 5: "InstanceNorm3d"}


def _owned_statistic(ctx: ImportContext, value: Value | None) -> bool:
    return ctx.owns(value, role="statistic")


@converter("BatchNormalization", 1, 6, 7, 9, 14, 15)
def batch_norm(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x, scale, bias, mean, var = (ctx.input(node, i) for i in range(5))
    assert x is not None and scale is not None and bias is not None and mean is not None and var is not None
    if ctx.since < 9 and int(ctx.attr(node, "spatial", 1)) == 0:
        raise NodeNotConvertible("spatial=0 (statistics per activation, not per channel) has no torch layer")
    if any(ctx.used(name) for name in node.output[1:]):
        raise NodeNotConvertible("its running-statistics outputs are used by the graph (a training graph)")
    eps = float(ctx.attr(node, "epsilon", 1e-5))
    onnx_momentum = float(ctx.attr(node, "momentum", 0.9))
    momentum = round(1.0 - onnx_momentum, 7)  # ONNX keeps momentum of the old value; torch weighs the new one
    if ctx.since >= 14 and int(ctx.attr(node, "training_mode", 0)):
        ctx.note(f"BatchNormalization {node.name or node.output[0]!r} was exported in training mode; "
                 "the layer uses batch statistics in train mode and running statistics in eval mode")
    rank = ctx.rank(x)
    layer_kind = _BN_LAYER.get(rank) if rank is not None else None
    if layer_kind and ctx.owns(scale) and ctx.owns(bias) and _owned_statistic(ctx, mean) and _owned_statistic(ctx, var):
        channels = scale.array.shape[0]
        ctor = (f"nn.{layer_kind}({channels}, eps={literal(eps)}, momentum={literal(momentum)}"
                f"{dtype_kw(scale.array)})")
        state = {"weight": (scale.array, scale, True), "bias": (bias.array, bias, True),
                 "running_mean": (mean.array, mean, False), "running_var": (var.array, var, False),
                 "num_batches_tracked": (np.array(0, dtype=np.int64), None, False)}
        layer = ctx.add_layer(ctor, state, scale, bias, mean, var)
        ctx.emit(node.output[0], f"self.{layer}({ctx.t(x)})")
        return
    statistics_are_buffers = mean.kind == "const" and var.kind == "const"
    training = "self.training" if statistics_are_buffers else "False"
    ctx.emit(node.output[0], f"F.batch_norm({ctx.t(x)}, {ctx.t(mean)}, {ctx.t(var)}, {ctx.t(scale)}, "
                             f"{ctx.t(bias)}, {training}, {literal(momentum)}, {literal(eps)})")


@converter("InstanceNormalization", 1, 6, 22)
def instance_norm(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x, scale, bias = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    assert x is not None and scale is not None and bias is not None
    eps = float(ctx.attr(node, "epsilon", 1e-5))
    rank = ctx.rank(x)
    layer_kind = _IN_LAYER.get(rank) if rank is not None else None
    # torch's instance norm refuses a single spatial element (ONNX gives the bias there): the layer is used
    # when the spatial size is known to be larger, a helper computing the same otherwise.
    shape = ctx.static_shape(x)
    spatial = shape[2:] if shape is not None else (None,)
    several = all(isinstance(d, int) for d in spatial) and int(np.prod(spatial)) > 1
    if layer_kind and several and ctx.owns(scale) and ctx.owns(bias):
        ctor = f"nn.{layer_kind}({scale.array.shape[0]}, eps={literal(eps)}, affine=True{dtype_kw(scale.array)})"
        layer = ctx.add_layer(ctor, {"weight": (scale.array, scale, True), "bias": (bias.array, bias, True)})
        ctx.emit(node.output[0], f"self.{layer}({ctx.t(x)})")
        return
    helper = ctx.helper("_instance_norm", '''
def _instance_norm(x, weight, bias, eps):
    """ONNX InstanceNormalization over the spatial dims of each sample and channel (a size of 1 included)."""
    dims = tuple(range(2, x.dim()))
    centred = x - x.mean(dim=dims, keepdim=True)
    shape = (1, -1) + (1,) * len(dims)
    y = centred / torch.sqrt((centred * centred).mean(dim=dims, keepdim=True) + eps)
    return y * weight.reshape(shape) + bias.reshape(shape)
''')
    ctx.emit(node.output[0], f"{helper}({ctx.t(x)}, {ctx.t(scale)}, {ctx.t(bias)}, {literal(eps)})")


@converter("LayerNormalization", 17)
def layer_norm(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x, scale, bias = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    assert x is not None and scale is not None
    eps = float(ctx.attr(node, "epsilon", 1e-5))
    rank = ctx.require_rank(x)
    axis = norm_axis(int(ctx.attr(node, "axis", -1)), rank)
    if any(ctx.used(name) for name in node.output[1:]):
        helper = ctx.helper("_layer_norm_with_statistics", '''
def _layer_norm_with_statistics(x, axis, weight, bias, eps):
    """ONNX LayerNormalization with its Mean and InvStdDev outputs (over the dims from axis on)."""
    dims = tuple(range(axis, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    inv_std = torch.rsqrt((x - mean).pow(2).mean(dim=dims, keepdim=True) + eps)
    y = (x - mean) * inv_std * weight
    return (y if bias is None else y + bias), mean, inv_std
''')
        bias_expr = "None" if bias is None else ctx.t(bias)
        outputs = list(node.output) + [""] * (3 - len(node.output))
        ctx.emit(outputs, f"{helper}({ctx.t(x)}, {axis}, {ctx.t(scale)}, {bias_expr}, {literal(eps)})")
        return
    shape = ctx.static_shape(x)
    normalized = list(shape[axis:]) if shape is not None else None
    if (normalized and all(isinstance(d, int) for d in normalized) and ctx.owns(scale)
            and list(scale.array.shape) == normalized and (bias is None or (ctx.owns(bias)
                                                                              and bias.array.shape == scale.array.shape))):
        dims = normalized[0] if len(normalized) == 1 else tuple(normalized)
        ctor = (f"nn.LayerNorm({literal(dims)}, eps={literal(eps)}{', bias=False' if bias is None else ''}"
                f"{dtype_kw(scale.array)})")
        state = {"weight": (scale.array, scale, True)}
        if bias is not None:
            state["bias"] = (bias.array, bias, True)
        layer = ctx.add_layer(ctor, state)
        ctx.emit(node.output[0], f"self.{layer}({ctx.t(x)})")
        return
    x_expr = ctx.t(x)
    expr = f"F.layer_norm({x_expr}, {x_expr}.shape[{axis}:], eps={literal(eps)}) * {ctx.t(scale)}"
    if bias is not None:
        expr += f" + {ctx.t(bias)}"
    ctx.emit(node.output[0], expr)


@converter("GroupNormalization", 18, 21)
def group_norm(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x, scale, bias = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    assert x is not None and scale is not None and bias is not None
    eps = float(ctx.attr(node, "epsilon", 1e-5))
    groups = int(ctx.attr(node, "num_groups"))
    if ctx.since >= 21 and ctx.owns(scale) and ctx.owns(bias) and scale.array.ndim == 1:
        ctor = f"nn.GroupNorm({groups}, {scale.array.shape[0]}, eps={literal(eps)}{dtype_kw(scale.array)})"
        layer = ctx.add_layer(ctor, {"weight": (scale.array, scale, True), "bias": (bias.array, bias, True)})
        ctx.emit(node.output[0], f"self.{layer}({ctx.t(x)})")
        return
    x_expr = ctx.t(x)
    if ctx.since >= 21:
        ctx.emit(node.output[0], f"F.group_norm({x_expr}, {groups}, {ctx.t(scale)}, {ctx.t(bias)}, eps={literal(eps)})")
        return
    # Opset 18 scales and shifts per group, not per channel.
    helper = ctx.helper("_group_norm_per_group", '''
def _group_norm_per_group(x, groups, scale, bias, eps):
    """GroupNormalization-18: a scale and a bias per group (opset 21 has them per channel)."""
    y = F.group_norm(x, groups, eps=eps).reshape(x.shape[0], groups, -1)
    return (y * scale.reshape(groups, 1) + bias.reshape(groups, 1)).reshape(x.shape)
''')
    ctx.emit(node.output[0], f"{helper}({x_expr}, {groups}, {ctx.t(scale)}, {ctx.t(bias)}, {literal(eps)})")


@converter("LRN", 1, 13)
def lrn(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    size = int(ctx.attr(node, "size"))
    alpha, beta = float(ctx.attr(node, "alpha", 1e-4)), float(ctx.attr(node, "beta", 0.75))
    bias = float(ctx.attr(node, "bias", 1.0))
    if size % 2 == 1:
        layer = ctx.shared_layer(f"nn.LocalResponseNorm({size}, alpha={literal(alpha)}, beta={literal(beta)}, "
                                 f"k={literal(bias)})", "lrn")
        ctx.emit(node.output[0], f"self.{layer}({ctx.t(x)})")
        return
    # An even window: ONNX puts the extra channel after the centre, torch before it.
    helper = ctx.helper("_lrn", '''
def _lrn(x, size, alpha, beta, bias):
    """ONNX LRN: the window spans (size - 1) // 2 channels before and size // 2 after each channel."""
    squares = F.pad((x * x).unsqueeze(1), (0, 0) * (x.dim() - 2) + ((size - 1) // 2, size // 2)).squeeze(1)
    window = squares.unfold(1, size, 1).sum(-1)
    return x / (bias + alpha / size * window) ** beta
''')
    ctx.emit(node.output[0], f"{helper}({ctx.t(x)}, {size}, {literal(alpha)}, {literal(beta)}, {literal(bias)})")


@converter("LpNormalization", 1, 22)
def lp_normalization(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    axis, p = int(ctx.attr(node, "axis", -1)), int(ctx.attr(node, "p", 2))
    if p not in (1, 2):
        raise NodeNotConvertible(f"p={p} (ONNX allows 1 or 2)")
    helper = ctx.helper("_lp_normalize", '''
def _lp_normalize(x, p, axis):
    """ONNX LpNormalization: x / ||x||_p along axis, and 0 where the norm is 0."""
    norm = torch.linalg.vector_norm(x, p, dim=axis, keepdim=True)
    return x / torch.where(norm == 0, torch.ones_like(norm), norm)
''')
    ctx.emit(node.output[0], f"{helper}({ctx.t(x)}, {p}, {axis})")


@converter("MeanVarianceNormalization", 9, 13)
def mean_variance_normalization(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    axes = tuple(ctx.attr(node, "axes") or [0, 2, 3])
    helper = ctx.helper("_mean_variance_normalization", '''
def _mean_variance_normalization(x, dims):
    """ONNX MeanVarianceNormalization, as its function body computes it: (x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9)."""
    mean = x.mean(dim=dims, keepdim=True)
    std = torch.sqrt((x * x).mean(dim=dims, keepdim=True) - mean * mean)
    return (x - mean) / (std + 1e-9)
''')
    ctx.emit(node.output[0], f"{helper}({ctx.t(x)}, {literal(axes)})")


@converter("RMSNormalization", 23)
def rms_normalization(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x, scale = ctx.input(node, 0), ctx.input(node, 1)
    assert x is not None and scale is not None
    eps = float(ctx.attr(node, "epsilon", 1e-5))
    rank = ctx.require_rank(x)
    axis = norm_axis(int(ctx.attr(node, "axis", -1)), rank)
    shape = ctx.static_shape(x)
    normalized = list(shape[axis:]) if shape is not None else None
    if normalized and ctx.owns(scale) and list(scale.array.shape) == normalized and ctx.attr(node, "stash_type", 1) == 1:
        dims = normalized[0] if len(normalized) == 1 else tuple(normalized)
        layer = ctx.add_layer(f"nn.RMSNorm({literal(dims)}, eps={literal(eps)}{dtype_kw(scale.array)})",
                              {"weight": (scale.array, scale, True)})
        ctx.emit(node.output[0], f"self.{layer}({ctx.t(x)})")
        return
    x_expr = ctx.t(x)
    ctx.emit(node.output[0], f"F.rms_norm({x_expr}, {x_expr}.shape[{axis}:], eps={literal(eps)}) * {ctx.t(scale)}")
