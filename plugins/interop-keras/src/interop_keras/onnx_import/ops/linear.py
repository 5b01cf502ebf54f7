"""Gemm and MatMul -> keras.layers.Dense where a weight is the right-hand side, else matmul layers.

``MatMul`` followed by an ``Add`` of a weight vector (how tf2onnx writes a Keras
Dense) becomes one Dense with a bias.
"""

from __future__ import annotations

import numpy as np

from interop_keras.onnx_import.context import NodeContext, NotConvertible
from interop_keras.onnx_import.layout import identity
from interop_keras.onnx_import.ops._common import float_array, set_weight
from interop_keras.onnx_import.ops.elementwise import constant_operand
from interop_keras.onnx_import.layer_table import converter
from interop_keras.onnx_import.weights import WEIGHT


@converter("Gemm", versions=(1, 6, 7, 9, 11, 13))
def gemm(ctx: NodeContext) -> None:
    import keras

    a = ctx.value(0)
    if a.rank != 2:
        raise NotConvertible(f"A of rank {a.rank} (Gemm takes matrices)")
    # transA: Keras axis i holds ONNX axis perm[i], so the layout (1, 0) is A transposed.
    a_layout = (1, 0) if ctx.attr("transA", 0) else identity(2)
    if not ctx.is_constant(1):
        raise NotConvertible("B is computed at run time (Keras' Dense holds a fixed kernel)")
    b_const = ctx.constant(1, "B")
    b = float_array(b_const)
    alpha = float(ctx.attr("alpha", 1.0))
    beta = float(ctx.attr("beta", 1.0))
    trans_b = bool(ctx.attr("transB", 0))
    kernel = (b.T if trans_b else b) * alpha
    units = kernel.shape[1]
    c_const = ctx.constant(2, "C") if ctx.has_input(2) and ctx.is_constant(2) else None
    vector_bias = c_const is not None and c_const.value.size == units and c_const.value.ndim >= 1 \
        and c_const.value.shape[-1] == units
    weights = [ctx.node.input[1]] + ([ctx.node.input[2]] if c_const is not None else [])
    a = ctx.with_sizes(a, {0 if ctx.attr("transA", 0) else 1: kernel.shape[0]})
    layer = keras.layers.Dense(units, use_bias=vector_bias, name=ctx.name(weights=weights))
    out = layer(ctx.to_layout(a, a_layout))

    def kernel_back(arr: np.ndarray) -> np.ndarray:
        arr = arr / alpha if alpha != 0 else arr
        return arr.T if trans_b else arr

    set_weight(ctx, layer.kernel, b_const, kernel, kernel_back)
    if c_const is not None and vector_bias:
        shape = c_const.value.shape
        set_weight(ctx, layer.bias, c_const, float_array(c_const).reshape(-1) * beta,
                   lambda arr: (arr / beta if beta != 0 else arr).reshape(shape))
    elif c_const is not None and beta != 0:
        out = constant_operand(ctx, "Add", out, identity(2), c_const, scale=beta, suffix="bias")
    elif ctx.has_input(2) and beta != 0:  # C computed at run time: added after the Dense
        c = ctx.value(2)
        c_tensor = ctx.to_layout(c, identity(c.rank))
        if beta != 1.0:
            c_tensor = keras.layers.Rescaling(beta, name=ctx.name("beta"))(c_tensor)
        from interop_keras import layers as interop_layers

        out = interop_layers.Elementwise("Add", name=ctx.name("add_c"))([out, c_tensor])
    ctx.output(out, identity(2))


@converter("MatMul", versions=(1, 9, 13))
def matmul(ctx: NodeContext) -> None:
    import keras

    from interop_keras import layers as interop_layers

    if ctx.is_constant(0) and ctx.is_constant(1):
        raise NotConvertible("both operands are constants")
    if ctx.is_constant(1) and ctx.constant(1, "B").value.ndim == 2 and ctx.value(0).rank >= 2:
        a = ctx.value(0)
        b_const = ctx.constant(1, "B")
        kernel = float_array(b_const)
        a = ctx.with_sizes(a, {a.rank - 1: kernel.shape[0]})
        bias_node, bias = _following_bias(ctx, kernel.shape[1])
        weights = [ctx.node.input[1]] + ([bias_node.input[1 - _dynamic_side(ctx, bias_node)]] if bias_node else [])
        layer = keras.layers.Dense(kernel.shape[1], use_bias=bias is not None, name=ctx.name(weights=weights))
        perm = a.perm if a.perm[-1] == a.rank - 1 else identity(a.rank)
        out = layer(ctx.to_layout(a, perm))
        set_weight(ctx, layer.kernel, b_const, kernel, lambda arr: arr)
        if bias is not None and bias_node is not None:
            shape = bias.value.shape
            set_weight(ctx, layer.bias, bias, float_array(bias).reshape(-1), lambda arr: arr.reshape(shape))
            ctx.output(out, perm)
            ctx.importer.absorb(bias_node, ctx.node.output[0])
            return
        ctx.output(out, perm)
        return
    if ctx.is_constant(0) or ctx.is_constant(1):
        side = 0 if ctx.is_constant(0) else 1
        x = ctx.value(1 - side)
        constant = ctx.constant(side)
        out = constant_operand(ctx, "MatMul", ctx.to_layout(x, identity(x.rank)), identity(x.rank),
                               constant, constant_first=side == 0, broadcast=False)
        ranks = (constant.value.ndim, x.rank) if side == 0 else (x.rank, constant.value.ndim)
        ctx.output(out, identity(_matmul_rank(*ranks)))
        return
    a, b = ctx.value(0), ctx.value(1)
    out = interop_layers.MatMul(name=ctx.name())(
        [ctx.to_layout(a, identity(a.rank)), ctx.to_layout(b, identity(b.rank))]
    )
    ctx.output(out, identity(_matmul_rank(a.rank, b.rank)))


def _matmul_rank(a: int, b: int) -> int:
    """The rank of numpy's matmul result (a 1-D operand loses its axis)."""
    if a == 1 and b == 1:
        return 0
    if a == 1 or b == 1:
        return max(a, b) - 1
    return max(a, b)


def _dynamic_side(ctx: NodeContext, node) -> int:  # type: ignore[no-untyped-def]
    return 0 if node.input[0] == ctx.node.output[0] else 1


def _following_bias(ctx: NodeContext, units: int):  # type: ignore[no-untyped-def]
    """The Add right after this MatMul that adds a weight vector of ``units`` values, if any."""
    importer = ctx.importer
    out = ctx.node.output[0]
    consumers = importer.consumers.get(out, [])
    if len(consumers) != 1 or out in importer.graph_outputs:
        return None, None
    node = consumers[0]
    if node.op_type != "Add" or len(node.input) != 2 or node.input[0] == node.input[1]:
        return None, None
    other = node.input[1 - _dynamic_side(ctx, node)]
    constant = importer.constants.get(other)
    if constant is None or constant.role != WEIGHT or constant.value.size != units or constant.value.shape[-1] != units:
        return None, None
    if constant.value.dtype.kind != "f":
        return None, None
    return node, constant
