"""Activations as torch layers (shared when identical, as people write ``self.relu``), Softmax, Dropout."""

from __future__ import annotations

import math

import onnx

from interop_torch.onnx_import.context import ImportContext, NodeNotConvertible, literal, scalar
from interop_torch.onnx_import.module_table import converter


def _layer(ctx: ImportContext, node: onnx.NodeProto, ctor: str, kind: str) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    layer = ctx.shared_layer(ctor, kind)
    ctx.emit(node.output[0], f"self.{layer}({ctx.t(x)})")


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7)


@converter("Relu", 1, 6, 13, 14)
def relu(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _layer(ctx, node, "nn.ReLU()", "relu")


@converter("LeakyRelu", 1, 6, 16)
def leaky_relu(ctx: ImportContext, node: onnx.NodeProto) -> None:
    alpha = float(ctx.attr(node, "alpha", 0.01))
    _layer(ctx, node, f"nn.LeakyReLU({literal(alpha)})", "leaky_relu")


@converter("Elu", 1, 6, 22)
def elu(ctx: ImportContext, node: onnx.NodeProto) -> None:
    alpha = float(ctx.attr(node, "alpha", 1.0))
    _layer(ctx, node, "nn.ELU()" if alpha == 1.0 else f"nn.ELU({literal(alpha)})", "elu")


@converter("Celu", 12, 28)
def celu(ctx: ImportContext, node: onnx.NodeProto) -> None:
    alpha = float(ctx.attr(node, "alpha", 1.0))
    _layer(ctx, node, "nn.CELU()" if alpha == 1.0 else f"nn.CELU({literal(alpha)})", "celu")


@converter("Selu", 1, 6, 22)
def selu(ctx: ImportContext, node: onnx.NodeProto) -> None:
    alpha = float(ctx.attr(node, "alpha", 1.67326319217681884765625))
    gamma = float(ctx.attr(node, "gamma", 1.05070102214813232421875))
    if _close(alpha, 1.6732632423543772) and _close(gamma, 1.0507009873554805):
        _layer(ctx, node, "nn.SELU()", "selu")
        return
    x = ctx.t(ctx.input(node, 0))  # type: ignore[arg-type]
    ctx.emit(node.output[0], f"{literal(gamma)} * torch.where({x} > 0, {x}, {literal(alpha)} * torch.expm1({x}))")


@converter("Sigmoid", 1, 6, 13)
def sigmoid(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _layer(ctx, node, "nn.Sigmoid()", "sigmoid")


@converter("Tanh", 1, 6, 13)
def tanh(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _layer(ctx, node, "nn.Tanh()", "tanh")


@converter("HardSigmoid", 1, 6, 22)
def hard_sigmoid(ctx: ImportContext, node: onnx.NodeProto) -> None:
    alpha, beta = float(ctx.attr(node, "alpha", 0.2)), float(ctx.attr(node, "beta", 0.5))
    if _close(alpha, 1 / 6) and _close(beta, 0.5):
        _layer(ctx, node, "nn.Hardsigmoid()", "hardsigmoid")
        return
    x = ctx.t(ctx.input(node, 0))  # type: ignore[arg-type]
    ctx.emit(node.output[0], f"torch.clamp({x} * {literal(alpha)} + {literal(beta)}, 0, 1)")


@converter("HardSwish", 14, 22)
def hard_swish(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _layer(ctx, node, "nn.Hardswish()", "hardswish")


@converter("Softplus", 1, 22)
def softplus(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.t(ctx.input(node, 0))  # type: ignore[arg-type]
    # nn.Softplus switches to the identity above 20, which ONNX does not; log(1 + e^x) stays exact.
    ctx.emit(node.output[0], f"torch.logaddexp({x}, torch.zeros_like({x}))")


@converter("Softsign", 1, 22)
def softsign(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _layer(ctx, node, "nn.Softsign()", "softsign")


@converter("Mish", 18, 22)
def mish(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _layer(ctx, node, "nn.Mish()", "mish")


@converter("Gelu", 20)
def gelu(ctx: ImportContext, node: onnx.NodeProto) -> None:
    approximate = ctx.attr(node, "approximate", "none")
    _layer(ctx, node, "nn.GELU()" if approximate == "none" else f"nn.GELU(approximate={approximate!r})", "gelu")


@converter("Swish", 24)
def swish(ctx: ImportContext, node: onnx.NodeProto) -> None:
    alpha = float(ctx.attr(node, "alpha", 1.0))
    if alpha == 1.0:
        _layer(ctx, node, "nn.SiLU()", "silu")
        return
    x = ctx.t(ctx.input(node, 0))  # type: ignore[arg-type]
    ctx.emit(node.output[0], f"{x} * torch.sigmoid({literal(alpha)} * {x})")


@converter("ThresholdedRelu", 10, 22)
def thresholded_relu(ctx: ImportContext, node: onnx.NodeProto) -> None:
    alpha = float(ctx.attr(node, "alpha", 1.0))
    _layer(ctx, node, f"nn.Threshold({literal(alpha)}, 0.0)", "threshold")


@converter("Shrink", 9)
def shrink(ctx: ImportContext, node: onnx.NodeProto) -> None:
    bias, lambd = float(ctx.attr(node, "bias", 0.0)), float(ctx.attr(node, "lambd", 0.5))
    x_value = ctx.input(node, 0)
    assert x_value is not None
    if bias == lambd and x_value.dtype is not None and x_value.dtype.kind == "f":
        _layer(ctx, node, f"nn.Softshrink({literal(lambd)})", "softshrink")
        return
    x = ctx.t(x_value)
    ctx.emit(node.output[0], f"torch.where({x} < -{literal(lambd)}, {x} + {literal(bias)}, torch.where({x} > "
                             f"{literal(lambd)}, {x} - {literal(bias)}, torch.zeros_like({x})))")


@converter("PRelu", 1, 6, 7, 9, 16)
def prelu(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x, slope = ctx.input(node, 0), ctx.input(node, 1)
    assert x is not None and slope is not None
    rank = ctx.rank(x)
    if ctx.owns(slope) and slope.array.dtype.kind == "f" and rank is not None and rank >= 2:
        array = slope.array
        squeezed = array.reshape(-1)
        padded = (1,) * (rank - array.ndim) + tuple(array.shape)
        channel_shaped = array.ndim <= rank and all(d == 1 for i, d in enumerate(padded) if i != 1)
        if array.size == 1 or channel_shaped:
            layer = ctx.add_layer(f"nn.PReLU({array.size})", {"weight": (squeezed, slope, True)})
            if array.size != 1:
                ctx.state[f"{layer}.weight"].transform.append("reshaped to (channels,)")
            ctx.emit(node.output[0], f"self.{layer}({ctx.t(x)})")
            return
    x_expr = ctx.t(x)
    ctx.emit(node.output[0], f"torch.where({x_expr} >= 0, {x_expr}, {x_expr} * {ctx.operand(slope, x)})")


@converter("Clip", 1, 6, 11, 12, 13)
def clip(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    if ctx.since < 11:
        low, high = ctx.attr(node, "min"), ctx.attr(node, "max")
        low_expr = None if low is None else literal(float(low))
        high_expr = None if high is None else literal(float(high))
    else:
        low_v, high_v = ctx.input(node, 1), ctx.input(node, 2)
        low_c, high_c = ctx.const(low_v), ctx.const(high_v)
        low = None if low_c is None else scalar(low_c)
        high = None if high_c is None else scalar(high_c)
        low_expr = None if low_v is None else (literal(low) if low_c is not None else ctx.t(low_v))
        high_expr = None if high_v is None else (literal(high) if high_c is not None else ctx.t(high_v))
    if low == 0 and high == 6 and x.dtype is not None and x.dtype.kind == "f":
        _layer(ctx, node, "nn.ReLU6()", "relu6")
        return
    if low == 0 and high is None and low_expr is not None and x.dtype is not None and x.dtype.kind == "f":
        _layer(ctx, node, "nn.ReLU()", "relu")
        return
    if low_expr is None and high_expr is None:
        ctx.alias(node.output[0], x)
        return
    ctx.emit(node.output[0], f"torch.clamp({ctx.t(x)}, {low_expr}, {high_expr})")


def _softmax(ctx: ImportContext, node: onnx.NodeProto, layer_kind: str, function: str) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    rank = ctx.rank(x)
    if ctx.since >= 13:
        axis = int(ctx.attr(node, "axis", -1))
        layer = ctx.shared_layer(f"nn.{layer_kind}(dim={axis})", layer_kind.lower())
        ctx.emit(node.output[0], f"self.{layer}({ctx.t(x)})")
        return
    axis = int(ctx.attr(node, "axis", 1))
    if rank is not None and axis < 0:
        axis += rank
    if rank is not None and axis == rank - 1:
        layer = ctx.shared_layer(f"nn.{layer_kind}(dim=-1)", layer_kind.lower())
        ctx.emit(node.output[0], f"self.{layer}({ctx.t(x)})")
        return
    # Before opset 13 the input is flattened to 2-D at `axis` and normalised over the second dim.
    x_expr = ctx.t(x)
    ctx.emit(node.output[0], f"torch.{function}({x_expr}.flatten({axis}), dim=-1).reshape({x_expr}.shape)")


@converter("Softmax", 1, 11, 13)
def softmax(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _softmax(ctx, node, "Softmax", "softmax")


@converter("LogSoftmax", 1, 11, 13)
def log_softmax(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _softmax(ctx, node, "LogSoftmax", "log_softmax")


@converter("Hardmax", 1, 11, 13)
def hardmax(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    x_expr = ctx.t(x)
    if ctx.since >= 13:
        axis = int(ctx.attr(node, "axis", -1))
        ctx.emit(node.output[0], f"F.one_hot({x_expr}.argmax({axis}), {x_expr}.shape[{axis}]).movedim(-1, {axis})"
                                 f".to({x_expr}.dtype)")
        return
    axis = int(ctx.attr(node, "axis", 1))
    flat = f"{x_expr}.flatten({axis})"
    ctx.emit(node.output[0], f"F.one_hot({flat}.argmax(-1), {flat}.shape[-1]).to({x_expr}.dtype).reshape({x_expr}.shape)")


@converter("Dropout", 1, 6, 7, 10, 12, 13, 22)
def dropout(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    if len(node.output) > 1 and ctx.used(node.output[1]):
        raise NodeNotConvertible("its mask output is used by the graph")
    if ctx.since >= 12:
        ratio_value = ctx.input(node, 1)
        ratio_array = ctx.const(ratio_value)
        if ratio_value is not None and ratio_array is None:
            raise NodeNotConvertible("its ratio is computed at run time")
        ratio = 0.5 if ratio_array is None else float(scalar(ratio_array))
    else:
        ratio = float(ctx.attr(node, "ratio", 0.5))
    ctx.dropouts += 1
    layer = ctx.shared_layer(f"nn.Dropout({literal(ratio)})", "dropout")
    ctx.emit(node.output[0], f"self.{layer}({ctx.t(x)})")
