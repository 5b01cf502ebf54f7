"""Add/Sub/Mul/Div/Pow/Max/Min/Sum/Mean/Mod and unary math -> Keras merge layers or interop layers.

A constant operand becomes a :class:`~interop_keras.layers.ConstantOperand`
whose variable is trainable when :mod:`..weights` calls the constant a weight
(a per-channel scale or shift, a bias) and fixed otherwise. The constant is
broadcast to the other operand's rank and stored in that operand's layout, so
a channels-last tensor never has to go back to NCHW for an Add.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from interop_keras.onnx_import.context import Constant, NodeContext, NotConvertible, sanitize
from interop_keras.onnx_import.layout import Perm, Value, identity
from interop_keras.onnx_import.ops._common import float_array, set_weight
from interop_keras.onnx_import.layer_table import converter
from interop_keras.onnx_import.weights import CONSTANT, WEIGHT

#: The op (interop_keras.layers' names) each ONNX op type applies between two operands.
_OPS = {"Add": "Add", "Sub": "Sub", "Mul": "Mul", "Div": "Div", "Pow": "Pow", "Max": "Max", "Min": "Min",
        "Sum": "Add", "Mean": "Add", "Mod": "Mod",
        # comparisons and logic (registered in .logic) take the same path: layouts, constants, broadcasting
        **{op: op for op in ("Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Equal", "And", "Or", "Xor")}}


def fixed_array(constant: Constant) -> tuple[np.ndarray, str]:
    """A constant operand's value and the dtype interop_keras.layers stores it as.

    Floats become float32 (the importer's compute type); integers keep 64 bits when they
    had them; booleans are stored as int32 and cast back to the other operand's dtype.
    """
    value = np.asarray(constant.value)
    if value.dtype.kind == "f":
        return float_array(constant), "float32"
    if value.dtype.kind == "b" or value.dtype.kind in "iu" and value.dtype.itemsize < 8:
        return value.astype(np.int32), "int32"
    if value.dtype.kind in "iu":
        return value.astype(np.int64), "int64"
    raise NotConvertible(f"a constant operand of type {value.dtype}")


def in_layout(value: np.ndarray, perm: Perm) -> tuple[np.ndarray, Any]:
    """``value`` broadcast to rank ``len(perm)``, stored in layout ``perm`` without its leading 1s,
    and the function that maps such an array back to ``value``'s shape."""
    rank = len(perm)
    if value.ndim > rank:
        raise NotConvertible(f"a constant of rank {value.ndim} broadcast against a tensor of rank {rank}")
    aligned = value.reshape((1,) * (rank - value.ndim) + value.shape)
    stored = np.transpose(aligned, perm)
    drop = 0
    while drop < stored.ndim and stored.shape[drop] == 1:
        drop += 1
    original = value.shape

    def back(array: np.ndarray) -> np.ndarray:
        full = array.reshape((1,) * drop + array.shape)
        return np.transpose(full, np.argsort(perm)).reshape(original)

    return stored.reshape(stored.shape[drop:]), back


def constant_operand(ctx: NodeContext, op: str, tensor: Any, perm: Perm, constant: Constant, *,
                     constant_first: bool = False, scale: float = 1.0, suffix: str = "",
                     broadcast: bool = True) -> Any:
    """``tensor OP constant`` as a ConstantOperand layer; ``perm`` is ``tensor``'s layout."""
    from interop_keras import layers as interop_layers

    value, dtype = fixed_array(constant)
    if dtype == "float32":
        value = value * np.float32(scale)
    elif scale != 1.0:
        raise NotConvertible(f"a scaled {value.dtype} constant")

    def unscale(array: np.ndarray) -> np.ndarray:
        return array / scale if scale not in (0.0, 1.0) else array

    if broadcast:
        stored, to_value = in_layout(value, perm)

        def back(array: np.ndarray) -> np.ndarray:
            return unscale(to_value(array))
    else:
        stored, back = value, unscale
    role = constant.role
    name = ctx.name(suffix, weights=[constant.source] if role == WEIGHT and constant.source else ())
    # Rescaling declares its output shape to be its input's: only for constants that do not grow it.
    keeps_shape = stored.ndim <= len(tensor.shape) and all(
        c == 1 or c == t for c, t in zip(reversed(stored.shape), reversed(tuple(tensor.shape))))
    rescaling = _as_rescaling(op, stored, constant_first) \
        if role == CONSTANT and broadcast and keeps_shape and dtype == "float32" else None
    if rescaling is not None:
        import keras

        factor, offset = rescaling
        return keras.layers.Rescaling(scale=factor, offset=offset, name=name)(tensor)
    if role == CONSTANT and stored.size == 1 and broadcast:
        number = stored.reshape(-1)[0]
        layer = interop_layers.ConstantOperand(op, scalar=float(number) if dtype == "float32" else int(number),
                                               constant_first=constant_first, constant_dtype=dtype, name=name)
        return layer(tensor)
    weight_name = sanitize(constant.source or f"{name}.constant")
    layer = interop_layers.ConstantOperand(
        op, constant_shape=list(stored.shape), constant_first=constant_first, weight_name=weight_name,
        trainable_constant=role == WEIGHT, constant_dtype=dtype, name=name,
    )
    out = layer(tensor)
    set_weight(ctx, layer.constant, constant, stored, back)
    return out


#: Fixed constants up to this many elements are kept in a Rescaling layer's config.
_RESCALING_MAX = 4096


def _as_rescaling(op: str, value: np.ndarray, constant_first: bool) -> tuple[object, object] | None:
    """(scale, offset) when ``x OP value`` is ``x * scale + offset`` (Keras' own Rescaling layer)."""
    if value.size > _RESCALING_MAX or not np.all(np.isfinite(value)):
        return None

    def plain(array: np.ndarray) -> object:
        return float(array.reshape(-1)[0]) if array.ndim == 0 or array.size == 1 and array.ndim <= 1 \
            else array.astype(np.float32)

    if op == "Add":
        return 1.0, plain(value)
    if op == "Mul":
        return plain(value), 0.0
    if op == "Sub":
        return (-1.0, plain(value)) if constant_first else (1.0, plain(-value))
    if op == "Div" and not constant_first and np.all(value != 0):
        return plain((1.0 / value).astype(np.float32)), 0.0
    return None


def _same_layout(ctx: NodeContext, values: list[Value]) -> tuple[list[Any], Perm]:
    """The tensors in one layout: the first operand's when ranks agree, else the ONNX layout."""
    ranks = {v.rank for v in values}
    perm = values[0].perm if len(ranks) == 1 else identity(max(ranks))
    if len(ranks) != 1:
        return [ctx.to_layout(v, identity(v.rank)) for v in values], perm
    return [ctx.to_layout(v, perm) for v in values], perm


def _broadcastable(tensors: list[Any]) -> bool:
    """Whether Keras' merge layers take these tensors: equal ranks (so the batch axes line up),
    numpy-broadcastable sizes, and the same batch size (Keras never broadcasts the batch axis)."""
    shapes = [tuple(t.shape) for t in tensors]
    if len({len(shape) for shape in shapes}) != 1:
        return False
    if not all(len({d for d in sizes if d != 1}) <= 1 for sizes in zip(*shapes)):
        return False
    return not shapes[0] or len({shape[0] for shape in shapes}) == 1


def _merge(ctx: NodeContext, op_type: str, tensors: list[Any]) -> Any:
    import keras

    from interop_keras import layers as interop_layers

    native = {"Add": keras.layers.Add, "Sum": keras.layers.Add, "Mul": keras.layers.Multiply,
              "Max": keras.layers.Maximum, "Min": keras.layers.Minimum, "Mean": keras.layers.Average,
              "Sub": keras.layers.Subtract}
    # Keras' Add (keras.ops.add) may broadcast along the wrong axis (see interop_keras.layers._add):
    # it is used on equal shapes only.
    same_shapes = len({tuple(t.shape) for t in tensors}) == 1
    if op_type in native and _broadcastable(tensors) and (op_type != "Sub" or len(tensors) == 2) \
            and (op_type not in ("Add", "Sum", "Mean") or same_shapes):
        return native[op_type](name=ctx.name())(tensors)
    result = tensors[0]
    for i, other in enumerate(tensors[1:]):
        result = interop_layers.Elementwise(_OPS[op_type], name=ctx.name(str(i) if len(tensors) > 2 else ""))(
            [result, other])
    return result


@converter(("Add", "Sub", "Mul", "Div"), versions=(6, 7, 13, 14))
@converter("Pow", versions=(7, 12, 13, 15))
@converter(("Max", "Min"), versions=(6, 8, 12, 13))
@converter(("Sum", "Mean"), versions=(6, 8, 13))
@converter("Mod", versions=(10, 13))
def binary(ctx: NodeContext) -> None:
    op = _OPS[ctx.op_type]
    if ctx.op_type == "Mod" and ctx.attr("fmod", 0):
        raise NotConvertible("fmod=1 (C's remainder; Keras' mod is Python's)")
    names = [name for name in ctx.node.input if name]
    constants = [i for i in range(len(names)) if ctx.is_constant(i)]
    values = [ctx.value(i) for i in range(len(names)) if i not in constants]
    if not values:
        # Folding gave up (sizes known only at run time combined in a way it cannot follow).
        raise NotConvertible("arithmetic on sizes known only at run time that the importer cannot evaluate")
    if len(names) == 1:
        ctx.output(values[0].tensor, values[0].perm)
        return
    if ctx.since < 7 and ctx.attr("broadcast", 0) and not constants:
        raise NotConvertible("opset-6 broadcast between two computed tensors")
    # Mean is Keras' Average when it can be, else a sum divided by the operand count at the end.
    mean_by_sum = False
    if len(values) > 1:
        tensors, perm = _same_layout(ctx, values)
        # Keras' Average takes equal shapes only (it adds with keras.ops.add, see _merge).
        mean_by_sum = ctx.op_type == "Mean" and (bool(constants) or len({tuple(t.shape) for t in tensors}) > 1)
        out = _merge(ctx, "Sum" if mean_by_sum else ctx.op_type, tensors)
    else:
        out, perm = values[0].tensor, values[0].perm
        mean_by_sum = ctx.op_type == "Mean"
    for index in constants:  # n-ary ops with constants are commutative; binary ones keep the order
        constant = ctx.constant(index)
        if ctx.since < 7 and ctx.attr("broadcast", 0):
            constant = _legacy_broadcast(ctx, constant, len(perm), index)
        broadcast = constant.value.ndim <= len(perm)
        if not broadcast:  # the constant has more axes: compute in the ONNX layout, numpy broadcasting
            out = ctx.to_layout(Value(out, perm), identity(len(perm)))
            perm = identity(constant.value.ndim)
        out = constant_operand(ctx, "Add" if ctx.op_type == "Mean" else op, out, perm, constant,
                               constant_first=index == 0 and len(names) == 2, suffix=f"c{index}",
                               broadcast=broadcast)
    if mean_by_sum:
        import keras

        out = keras.layers.Rescaling(1.0 / len(names), name=ctx.name("mean"))(out)
    ctx.output(out, perm)


def _legacy_broadcast(ctx: NodeContext, constant: Constant, rank: int, position: int) -> Constant:
    """Opset < 7 ``broadcast=1``: B lines up with A from ``axis`` on (numpy aligns from the end)."""
    if position != 1:
        raise NotConvertible("opset-6 broadcast of a constant first operand")
    value = constant.value
    axis = int(ctx.attr("axis", rank - value.ndim)) % rank
    trailing = rank - axis - value.ndim
    if trailing < 0:
        raise NotConvertible("opset-6 broadcast axis out of range")
    shape = value.shape + (1,) * trailing
    return Constant(value.reshape(shape), constant.source, constant.role, constant.steps + (("reshape", value.shape),))


@converter(("Abs", "Neg", "Reciprocal", "Sqrt", "Log", "Floor", "Ceil"), versions=(6, 13))
@converter("Round", versions=(11, 22))
@converter(("Sign", "Erf"), versions=(9, 13))
@converter(("Sin", "Cos", "Tan", "Asin", "Acos", "Atan"), versions=(7, 22))
@converter(("Sinh", "Cosh", "Asinh", "Acosh", "Atanh"), versions=(9, 22))
def unary(ctx: NodeContext) -> None:
    from interop_keras import layers as interop_layers

    x = ctx.value(0)
    ctx.output(interop_layers.Unary(ctx.op_type, name=ctx.name())(x.tensor), x.perm)


@converter("Exp", versions=(6, 13))
def exp(ctx: NodeContext) -> None:
    import keras

    x = ctx.value(0)
    ctx.output(keras.layers.Activation("exponential", name=ctx.name())(x.tensor), x.perm)
