"""TopK, CumSum, Trilu, GatherElements, GatherND, ScatterElements, ScatterND and Einsum.

TopK, CumSum and Trilu work along axes, so they keep the tensor's layout and are told
where those axes are in the Keras tensor. The index ops and Einsum name axes by their
ONNX positions (index tuples, equation letters), so their operands are brought back to
the ONNX layout. Any operand may be fixed (torch.onnx folds an ``index_put``'s indices,
a mask's updates): it is stored in the layer as a non-trainable variable; ``weights``
classifies none of these operands as a weight.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interop_keras.onnx_import.context import NodeContext, NotConvertible
from interop_keras.onnx_import.layer_table import converter
from interop_keras.onnx_import.layout import identity
from interop_keras.onnx_import.ops._common import set_weight
from interop_keras.onnx_import.ops.elementwise import fixed_array


def _k(ctx: NodeContext, index: int, what: str) -> int:
    values = ctx.ints(index, what)
    if not values or len(values) != 1:
        raise NotConvertible(f"{what} must be one number")
    return values[0]


@converter("TopK", versions=(1, 10, 11, 24))
def top_k(ctx: NodeContext) -> None:
    from interop_keras import layers as interop_layers

    x = ctx.value(0)
    k = int(ctx.attr("k")) if ctx.since < 10 else _k(ctx, 1, "k")
    axis = int(ctx.attr("axis", -1)) % x.rank
    size = x.shape[axis]
    if size is not None and not 0 < k <= size:
        raise NotConvertible(f"k={k} on an axis of {size} elements")
    if k <= 0:
        raise NotConvertible(f"k={k}")
    # sorted=0 leaves the order to the runtime; sorted is one of the orders it may have.
    layer = interop_layers.TopK(k, x.keras_axis(axis), largest=bool(ctx.attr("largest", 1)), name=ctx.name())
    values, indices = layer(x.tensor)
    ctx.output(values, x.perm, 0)
    if len(ctx.node.output) > 1 and ctx.node.output[1]:
        ctx.output(indices, x.perm, 1)


@converter("CumSum", versions=(11, 14))
def cumsum(ctx: NodeContext) -> None:
    from interop_keras import layers as interop_layers

    x = ctx.value(0)
    axis = _k(ctx, 1, "axis") % x.rank
    layer = interop_layers.CumSum(x.keras_axis(axis), exclusive=bool(ctx.attr("exclusive", 0)),
                                  reverse=bool(ctx.attr("reverse", 0)), name=ctx.name())
    ctx.output(layer(x.tensor), x.perm)


@converter("Trilu", versions=(14,))
def trilu(ctx: NodeContext) -> None:
    from interop_keras import layers as interop_layers

    x = ctx.value(0)
    if x.rank < 2:
        raise NotConvertible("a tensor of rank below 2")
    k = _k(ctx, 1, "k") if ctx.has_input(1) else 0
    layer = interop_layers.Trilu(upper=bool(ctx.attr("upper", 1)), k=k, row_axis=x.keras_axis(x.rank - 2),
                                 col_axis=x.keras_axis(x.rank - 1), name=ctx.name())
    ctx.output(layer(x.tensor), x.perm)


def _call_with_operands(ctx: NodeContext, layer_class: Any, positions: list[int], **config: Any) -> Any:
    """``layer_class(**config)`` applied to the node's inputs at ``positions`` in the ONNX layout, fixed
    operands stored in the layer; returns the layer's output."""
    tensors, shapes, dtypes, fixed = [], [], [], {}
    for slot, index in enumerate(positions):
        if ctx.is_constant(index):
            value, dtype = fixed_array(ctx.constant(index))
            shapes.append(list(value.shape))
            dtypes.append(dtype)
            fixed[slot] = (ctx.constant(index), value)
        else:
            value = ctx.value(index)
            tensors.append(ctx.to_layout(value, identity(value.rank)))
            shapes.append(None)
            dtypes.append("float32")
    if not tensors:
        raise NotConvertible("every operand is a constant the importer could not evaluate")
    layer = layer_class(fixed_shapes=shapes, fixed_dtypes=dtypes, name=ctx.name(), **config)
    out = layer(tensors if len(tensors) > 1 else tensors[0])
    for slot, (constant, value) in fixed.items():
        set_weight(ctx, layer.fixed[slot], constant, value, lambda a: a)
    return out


def _rank(ctx: NodeContext, index: int) -> int:
    if ctx.is_constant(index):
        return int(np.ndim(ctx.constant(index).value))
    return ctx.value(index).rank


def _index_width(ctx: NodeContext) -> int:
    """The length of GatherND's and ScatterND's index tuples (the last axis of ``indices``), fixed."""
    shape = np.shape(ctx.constant(1).value) if ctx.is_constant(1) else ctx.value(1).shape
    if not shape or shape[-1] is None:
        raise NotConvertible("index tuples whose length is known only at run time")
    return int(shape[-1])


@converter("GatherElements", versions=(11, 13))
def gather_elements(ctx: NodeContext) -> None:
    from interop_keras import layers as interop_layers

    axis = int(ctx.attr("axis", 0)) % _rank(ctx, 0)
    out = _call_with_operands(ctx, interop_layers.GatherElements, [0, 1], axis=axis)
    ctx.output(out, identity(len(out.shape)))


@converter("GatherND", versions=(11, 12, 13))
def gather_nd(ctx: NodeContext) -> None:
    from interop_keras import layers as interop_layers

    batch_dims = int(ctx.attr("batch_dims", 0))
    if batch_dims + _index_width(ctx) > _rank(ctx, 0):
        raise NotConvertible("index tuples longer than the data's rank")
    out = _call_with_operands(ctx, interop_layers.GatherND, [0, 1], batch_dims=batch_dims)
    ctx.output(out, identity(len(out.shape)))


@converter("ScatterND", versions=(11, 13, 16, 18))
def scatter_nd(ctx: NodeContext) -> None:
    from interop_keras import layers as interop_layers

    if _index_width(ctx) > _rank(ctx, 0):
        raise NotConvertible("index tuples longer than the data's rank")
    out = _call_with_operands(ctx, interop_layers.ScatterND, [0, 1, 2], reduction=ctx.attr("reduction", "none"))
    ctx.output(out, identity(len(out.shape)))


@converter("ScatterElements", versions=(11, 13, 16, 18))
def scatter_elements(ctx: NodeContext) -> None:
    from interop_keras import layers as interop_layers

    axis = int(ctx.attr("axis", 0)) % _rank(ctx, 0)
    out = _call_with_operands(ctx, interop_layers.ScatterElements, [0, 1, 2], axis=axis,
                              reduction=ctx.attr("reduction", "none"))
    ctx.output(out, identity(len(out.shape)))


@converter("Einsum", versions=(12, 28))
def einsum(ctx: NodeContext) -> None:
    from interop_keras import layers as interop_layers

    equation = str(ctx.attr("equation")).replace(" ", "")
    count = len(ctx.node.input)
    if equation.split("->")[0].count(",") + 1 != count:
        raise NotConvertible(f"equation {equation!r} does not name {count} operand(s)")
    if "->" not in equation:
        # Implicit output (numpy's rule, which ONNX follows): the broadcast axes, then the letters that
        # occur once, in alphabetical order. TensorFlow leaves the broadcast axes out, so say it.
        letters = [c for c in equation if c.isalpha()]
        once = sorted(c for c in set(letters) if letters.count(c) == 1)
        equation += "->" + ("..." if "..." in equation else "") + "".join(once)
    out = _call_with_operands(ctx, interop_layers.Einsum, list(range(count)), equation=equation)
    ctx.output(out, identity(len(out.shape)))
