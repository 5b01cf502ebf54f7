"""Comparisons (Less, Greater, Equal ...), logic (And, Or, Xor, Not), IsNaN and Where.

Their results are boolean tensors: exporters write masks with them (tf2onnx turns
Keras Embedding's negative-index handling into Cast/Less/Not/Cast/Mul/Add, attention
masks into Where). Two-operand ops take :mod:`.elementwise`'s path (a layout shared by
the operands, a constant operand stored in the other operand's layout and dtype,
numpy broadcasting); Where is one :class:`~interop_keras.layers.Where` layer whose
fixed operands (a causal mask, a -inf fill) live in the layer. Constants here are never
weights: ``weights`` classifies only arithmetic, matmul and normalisation operands so.
"""

from __future__ import annotations

from typing import Any

from interop_keras.onnx_import.context import NodeContext, sanitize
from interop_keras.onnx_import.layer_table import converter
from interop_keras.onnx_import.layout import identity
from interop_keras.onnx_import.ops._common import set_weight
from interop_keras.onnx_import.ops.elementwise import _same_layout, binary, fixed_array, in_layout


@converter(("Less", "Greater"), versions=(7, 9, 13))
@converter(("LessOrEqual", "GreaterOrEqual"), versions=(12, 16))
@converter("Equal", versions=(7, 11, 13, 19))
@converter(("And", "Or", "Xor"), versions=(7,))
def comparison(ctx: NodeContext) -> None:
    binary(ctx)


@converter("Not", versions=(1,))
@converter("IsNaN", versions=(9, 13, 20))
def unary_predicate(ctx: NodeContext) -> None:
    from interop_keras import layers as interop_layers

    x = ctx.value(0)
    ctx.output(interop_layers.Unary(ctx.op_type, name=ctx.name())(x.tensor), x.perm)


@converter("Where", versions=(9, 16))
def where(ctx: NodeContext) -> None:
    from interop_keras import layers as interop_layers

    fixed = [ctx.is_constant(i) for i in range(3)]
    values = [ctx.value(i) for i in range(3) if not fixed[i]]
    constants = {i: ctx.constant(i) for i in range(3) if fixed[i]}
    rank = max([v.rank for v in values] + [c.value.ndim for c in constants.values()])
    if all(v.rank == rank for v in values):
        tensors, perm = _same_layout(ctx, values)
    else:  # operands of different ranks: numpy broadcasting in the ONNX layout
        tensors, perm = [ctx.to_layout(v, identity(v.rank)) for v in values], identity(rank)
    scalars: list[Any] = [None, None, None]
    shapes: list[Any] = [None, None, None]
    dtypes = ["int32", "float32", "float32"]
    names: list[Any] = [None, None, None]
    stored_values: dict[int, Any] = {}
    for i, constant in constants.items():
        value, dtypes[i] = fixed_array(constant)
        stored, back = in_layout(value, perm)
        if stored.size == 1:
            number = stored.reshape(-1)[0]
            scalars[i] = float(number) if dtypes[i] == "float32" else int(number)
        else:
            shapes[i] = list(stored.shape)
            names[i] = sanitize(constant.source or f"{ctx.node.output[0]}.{i}")
            stored_values[i] = (stored, back)
    layer = interop_layers.Where(scalars, shapes, dtypes, names, name=ctx.name())
    out = layer(tensors if len(tensors) > 1 else tensors[0])
    for i, (stored, back) in stored_values.items():
        set_weight(ctx, layer.constants[i], constants[i], stored, back)
    ctx.output(out, perm)
