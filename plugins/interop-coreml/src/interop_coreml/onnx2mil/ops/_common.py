"""Helpers shared by the op-family converter modules."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from coremltools.converters.mil import Builder as mb
from coremltools.converters.mil.mil import Var, types

from interop_coreml.onnx2mil.context import ConversionContext, Value, is_bool, is_float

# ONNX TensorProto element type -> MIL dtype string used by mb.cast
ONNX_TO_MIL_DTYPE = {
    onnx.TensorProto.FLOAT: "fp32",
    onnx.TensorProto.DOUBLE: "fp32",
    onnx.TensorProto.FLOAT16: "fp16",
    onnx.TensorProto.INT64: "int32",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.INT16: "int32",
    onnx.TensorProto.INT8: "int32",
    onnx.TensorProto.UINT8: "int32",
    onnx.TensorProto.UINT16: "int32",
    onnx.TensorProto.UINT32: "int32",
    onnx.TensorProto.BOOL: "bool",
}

_MIL_TO_NUMPY = {"fp32": np.float32, "fp16": np.float16, "int32": np.int32, "bool": np.bool_}


def attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """Attribute value by name (bytes decoded to str), or ``default``."""
    for attribute in node.attribute:
        if attribute.name == name:
            value = onnx.helper.get_attribute_value(attribute)
            if isinstance(value, bytes):
                return value.decode()
            return value
    return default


def int_list(values: Any) -> list[int]:
    return [int(v) for v in np.asarray(values).reshape(-1)]


def norm_axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def mil_dtype_name(value: Value) -> str:
    """'fp32' | 'fp16' | 'int32' | 'bool' for a Var or numpy constant."""
    value = as_array(value)
    if isinstance(value, np.ndarray):
        kind = value.dtype
        if kind == np.float16:
            return "fp16"
        if kind.kind == "f":
            return "fp32"
        if kind == np.bool_:
            return "bool"
        return "int32"
    dtype = value.dtype
    if dtype == types.fp16:
        return "fp16"
    if types.is_float(dtype):
        return "fp32"
    if types.is_bool(dtype):
        return "bool"
    return "int32"


def scalar_like(like: Value, value: Any) -> np.ndarray:
    """A rank-0 constant of ``like``'s MIL dtype: MIL wants an op's float operands (epsilons,
    alphas, divisors) of one type, so a float16 graph gets float16 constants."""
    return np.array(value, dtype=_MIL_TO_NUMPY[mil_dtype_name(like)])


def as_array(value: Value) -> Value:
    """A numpy scalar (what numpy makes of rank-0 constants) as a rank-0 array; others unchanged."""
    return np.asarray(value) if isinstance(value, np.generic) else value


def const_input(ctx: ConversionContext, node: onnx.NodeProto, index: int, default: Any = None) -> np.ndarray | None:
    """``ctx.const`` that also recognises rank-0 constants held as numpy scalars."""
    value = ctx.input(node, index)
    if isinstance(value, np.generic):
        return np.asarray(value)
    return ctx.const(node, index, default)


def cast_to(value: Value, dtype: str, name: str | None = None) -> Value:
    """Cast a Var (with a MIL op) or a numpy constant (in numpy) to ``dtype``."""
    value = as_array(value)
    if mil_dtype_name(value) == dtype:
        return value if name is None or isinstance(value, np.ndarray) else mb.identity(x=value, name=name)
    if isinstance(value, np.ndarray):
        return value.astype(_MIL_TO_NUMPY[dtype])
    kwargs = {"name": name} if name else {}
    if dtype == "bool":
        # x != 0 is ONNX's cast to bool (NaN is true). Not a MIL cast: coremltools'
        # cast_optimization fuses cast(fp32->int32)->cast(bool) into cast(fp32->bool),
        # which makes 0.3 true where ONNX truncates it to 0 first (fp16 underflow alike).
        zero = np.zeros((), dtype=_MIL_TO_NUMPY[mil_dtype_name(value)])
        return mb.not_equal(x=value, y=zero, **kwargs)
    return mb.cast(x=value, dtype=dtype, **kwargs)


_ORDER = ["bool", "int32", "fp16", "fp32"]
_KIND = {"bool": 0, "int32": 1, "fp16": 2, "fp32": 2}


def common_dtype(*values: Value) -> str:
    """The MIL dtype that ``values`` share after :func:`unify`: never one that loses a value.

    The widest run-time (Var) dtype, unless a constant is of a wider *kind* (float over
    integer over bool): then the constant's dtype. An ONNX graph gives both operands one
    type, so a float constant beside an int32 Var means the Var was narrowed or derived
    from a shape (an ONNX float computed as int32 here); casting the constant to int32
    would truncate 0.5 to 0 and turn a division into an integer one. A float constant
    beside an fp16 Var becomes fp16 (the graph's own precision).
    """
    values = [as_array(v) for v in values]
    variables = [mil_dtype_name(v) for v in values if not isinstance(v, np.ndarray)]
    constants = [mil_dtype_name(v) for v in values if isinstance(v, np.ndarray)]
    if not variables:
        return max(constants, key=_ORDER.index)
    dtype = max(variables, key=_ORDER.index)
    for constant in constants:
        if _KIND[constant] > _KIND[dtype]:
            dtype = constant
    return dtype


def unify(a: Value, b: Value) -> tuple[Value, Value]:
    """Give two operands the same dtype (:func:`common_dtype`); a float value is never
    cast to an integer (the integer side becomes float instead)."""
    a, b = as_array(a), as_array(b)
    if mil_dtype_name(a) == mil_dtype_name(b):
        return a, b
    dtype = common_dtype(a, b)
    return cast_to(a, dtype), cast_to(b, dtype)


def as_var(value: Value, name: str | None = None) -> Var:
    value = as_array(value)
    if isinstance(value, Var):
        return value
    kwargs = {"name": name} if name else {}
    return mb.const(val=value, **kwargs)


def static_shape(value: Value) -> tuple[int, ...] | None:
    """The shape if every dim is a known int, else None."""
    shape = np.shape(value) if isinstance(value, (np.ndarray, np.generic)) else value.shape
    if all(isinstance(d, (int, np.integer)) for d in shape):
        return tuple(int(d) for d in shape)
    return None


__all__ = [
    "ConversionContext", "Value", "attr", "int_list", "norm_axis", "mil_dtype_name", "cast_to",
    "unify", "common_dtype", "as_var", "as_array", "const_input", "static_shape", "is_bool", "is_float", "mb", "np", "Var",
]


def shape_vector(x: Var, dims: list) -> Value:
    """A reshape target where each entry is an int or ('dim', i) meaning x.shape[i].

    Static dims are resolved now; a dynamic one is read with ``mb.shape`` at run
    time (MIL's reshape has no 'copy this dim' marker in every opset).
    """
    resolved = []
    dynamic = False
    for entry in dims:
        if isinstance(entry, tuple):
            dim = x.shape[entry[1]]
            if isinstance(dim, (int, np.integer)):
                resolved.append(int(dim))
            else:
                resolved.append(entry)
                dynamic = True
        else:
            resolved.append(int(entry))
    if not dynamic:
        return np.array(resolved, dtype=np.int32)
    if sum(1 for r in resolved if isinstance(r, tuple)) == 1 and -1 not in resolved:
        return np.array([-1 if isinstance(r, tuple) else r for r in resolved], dtype=np.int32)
    runtime_shape = mb.shape(x=x)
    parts = []
    for r in resolved:
        if isinstance(r, tuple):
            parts.append(mb.gather(x=runtime_shape, indices=np.array([r[1]], dtype=np.int32), axis=0))
        else:
            parts.append(np.array([r], dtype=np.int32))
    return mb.concat(values=parts, axis=0)


def channel_shaped(param: Value, rank: int, axis: int = 1) -> Value:
    """Reshape a per-channel vector so it broadcasts against a rank-``rank`` tensor."""
    target = [1] * (rank - axis)
    target[0] = -1
    if isinstance(param, np.ndarray):
        return param.reshape(target)
    return mb.reshape(x=param, shape=np.array(target, dtype=np.int32))


def const_axes(ctx: ConversionContext, node: onnx.NodeProto, axes_input_since: int) -> list[int] | None:
    """Axes from the attribute (older opsets) or the constant second input (newer ones)."""
    from interop_coreml.onnx2mil.errors import NodeNotConvertible

    if ctx.opset >= axes_input_since:
        axes = const_input(ctx, node, 1)
        if axes is None and len(node.input) > 1 and node.input[1]:
            raise NodeNotConvertible("axes must be a constant")
    else:
        axes = attr(node, "axes")
    return None if axes is None else int_list(axes)
