"""Element-wise math, comparisons, logic, Where, Cast, Identity.

Shape arithmetic (a value computed from ``Shape``, such as the batch size times a constant)
stays in Python: ``[d * 2 for d in shape]`` rather than a tensor, so that torch.export sees
symbolic sizes. Every other operand is a tensor; a rank-0 constant is written as a literal.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from interop_torch.onnx_import.context import ImportContext, NodeNotConvertible, Value, literal, np_dtype, torch_dtype
from interop_torch.onnx_import.module_table import converter

_PYTHON_BINARY = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "//", "Mod": "%", "Equal": "==", "Less": "<",
                  "Greater": ">", "LessOrEqual": "<=", "GreaterOrEqual": ">=", "Max": "max", "Min": "min"}
_NUMPY_BINARY = {"+": np.add, "-": np.subtract, "*": np.multiply, "//": np.floor_divide, "%": np.mod,
                 "==": np.equal, "<": np.less, ">": np.greater, "<=": np.less_equal, ">=": np.greater_equal,
                 "max": np.maximum, "min": np.minimum}


def python_level(ctx: ImportContext, value: Value | None) -> tuple[str, list[Any] | None, bool] | None:
    """(expression, known elements, is_scalar) when ``value`` lives in Python (a shape or an integer constant)."""
    if value is None:
        return None
    if value.kind == "shape":
        if not value.scalar and value.elems is None:
            return None  # a list of unknown length
        return value.expr, (None if value.elems is None else list(value.elems)), value.scalar
    if value.kind == "const" and value.array.dtype.kind in "iub" and value.array.ndim <= 1 and value.role == "constant":
        items = value.array.tolist()
        return literal(items), (None if value.array.ndim == 0 else items), value.array.ndim == 0
    return None


def _python_binary(ctx: ImportContext, node: onnx.NodeProto, op: str, a: Value, b: Value) -> bool:
    """Write ``node`` as Python arithmetic on shapes; False when an operand is a real tensor."""
    pa, pb = python_level(ctx, a), python_level(ctx, b)
    if pa is None or pb is None or (a.kind != "shape" and b.kind != "shape"):
        return False
    (ea, ka, sa), (eb, kb, sb) = pa, pb

    def apply(x: str, y: str) -> str:
        return f"{op}({x}, {y})" if op in ("max", "min") else f"{x} {op} {y}"

    dtype = np.dtype(bool) if op in ("==", "<", ">", "<=", ">=") else np.dtype(np.int64)
    if sa and sb:
        ctx.emit(node.output[0], apply(ea, eb), kind="shape", dtype=dtype, scalar=True)
        return True
    length = len(ka) if not sa else len(kb)  # type: ignore[arg-type]
    if not sa and not sb and len(ka) != len(kb):  # type: ignore[arg-type]
        if 1 not in (len(ka), len(kb)):  # type: ignore[arg-type]
            raise NodeNotConvertible("shape arithmetic on lists of different lengths")
        length = max(len(ka), len(kb))  # type: ignore[arg-type]
    known_a = [None] * length if sa else (ka * length if len(ka) == 1 else ka)  # type: ignore[operator]
    known_b = [None] * length if sb else (kb * length if len(kb) == 1 else kb)  # type: ignore[operator]
    elems = []
    for x, y in zip(known_a, known_b):
        elems.append(None if x is None or y is None else _NUMPY_BINARY[op](np.int64(x), np.int64(y)).item())
    left = "a" if not sa else ea
    right = "b" if not sb else eb
    if not sa and not sb and len(ka) == len(kb):  # type: ignore[arg-type]
        expr = f"[{apply('a', 'b')} for a, b in zip({ea}, {eb})]"
    elif not sa and (sb or len(kb) == 1):  # type: ignore[arg-type]
        right = eb if sb else f"{eb}[0]"
        expr = f"[{apply('a', right)} for a in {ea}]"
    else:
        left = ea if sa else f"{ea}[0]"
        expr = f"[{apply(left, 'b')} for b in {eb}]"
    ctx.emit(node.output[0], expr, kind="shape", elems=elems, dtype=dtype)
    return True


def _legacy_broadcast(ctx: ImportContext, node: onnx.NodeProto, a: Value, b: Value, b_expr: str) -> str:
    """Opset < 7 binary ops: with broadcast=1 and an axis, B aligns with A starting at that axis."""
    if ctx.since >= 7 or not int(ctx.attr(node, "broadcast", 0)) or ctx.attr(node, "axis") is None:
        return b_expr
    rank_a, shape_b = ctx.rank(a), ctx.static_shape(b)
    if rank_a is None or shape_b is None:
        raise NodeNotConvertible("legacy broadcast with an axis needs both ranks")
    axis = int(ctx.attr(node, "axis"))
    if axis < 0:
        axis += rank_a
    trailing = rank_a - axis - len(shape_b)
    if trailing <= 0:
        return b_expr
    return f"{b_expr}.reshape({literal(tuple(shape_b) + (1,) * trailing)})"


def _is_int(value: Value) -> bool:
    return value.dtype is not None and value.dtype.kind in "iu"


def _binary(ctx: ImportContext, node: onnx.NodeProto, symbol: str) -> None:
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    assert a is not None and b is not None
    if node.op_type in _PYTHON_BINARY and _python_binary(ctx, node, _PYTHON_BINARY[node.op_type], a, b):
        return
    left, right = ctx.operand(a, b), _legacy_broadcast(ctx, node, a, b, ctx.operand(b, a))
    if node.op_type == "Div" and (_is_int(a) or _is_int(b)):
        ctx.emit(node.output[0], f"torch.div({ctx.t(a)}, {right}, rounding_mode=\"trunc\")")
        return
    if left[0] == "-":
        left = f"({left})"
    if right[0] == "-":
        right = f"({right})"
    ctx.emit(node.output[0], f"{left} {symbol} {right}")


@converter("Add", 1, 6, 7, 13, 14)
def add(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _binary(ctx, node, "+")


@converter("Sub", 1, 6, 7, 13, 14)
def sub(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _binary(ctx, node, "-")


@converter("Mul", 1, 6, 7, 13, 14)
def mul(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _binary(ctx, node, "*")


@converter("Div", 1, 6, 7, 13, 14)
def div(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _binary(ctx, node, "/")


@converter("Pow", 1, 7, 12, 13, 15)
def pow_(ctx: ImportContext, node: onnx.NodeProto) -> None:
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    assert a is not None and b is not None
    expr = f"torch.pow({ctx.t(a)}, {ctx.operand(b, a)})"
    if _is_int(a) and b.dtype is not None and b.dtype.kind == "f":
        expr += f".to({torch_dtype(a.dtype)})"
    ctx.emit(node.output[0], expr)


@converter("Mod", 10, 13, 28)
def mod(ctx: ImportContext, node: onnx.NodeProto) -> None:
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    assert a is not None and b is not None
    fmod = int(ctx.attr(node, "fmod", 0))
    if not fmod and _python_binary(ctx, node, "%", a, b):
        return
    function = "torch.fmod" if fmod else "torch.remainder"
    ctx.emit(node.output[0], f"{function}({ctx.t(a)}, {ctx.operand(b, a)})")


def _variadic(ctx: ImportContext, node: onnx.NodeProto) -> list[Value]:
    values = [v for v in ctx.inputs(node) if v is not None]
    if not values:
        raise NodeNotConvertible("no inputs")
    return values


@converter("Sum", 1, 6, 8, 13)
def sum_(ctx: ImportContext, node: onnx.NodeProto) -> None:
    values = _variadic(ctx, node)
    if len(values) == 1:
        ctx.alias(node.output[0], values[0])
        return
    ctx.emit(node.output[0], " + ".join(ctx.t(v) for v in values))


@converter("Mean", 1, 6, 8, 13)
def mean(ctx: ImportContext, node: onnx.NodeProto) -> None:
    values = _variadic(ctx, node)
    if len(values) == 1:
        ctx.alias(node.output[0], values[0])
        return
    ctx.emit(node.output[0], f"({' + '.join(ctx.t(v) for v in values)}) / {len(values)}")


def _extremum(ctx: ImportContext, node: onnx.NodeProto, function: str) -> None:
    values = _variadic(ctx, node)
    if len(values) == 1:
        ctx.alias(node.output[0], values[0])
        return
    if len(values) == 2 and _python_binary(ctx, node, _PYTHON_BINARY[node.op_type], values[0], values[1]):
        return
    expr = ctx.t(values[0])
    for value in values[1:]:
        expr = f"torch.{function}({expr}, {ctx.t(value)})"
    ctx.emit(node.output[0], expr)


@converter("Max", 1, 6, 8, 12, 13)
def max_(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _extremum(ctx, node, "maximum")


@converter("Min", 1, 6, 8, 12, 13)
def min_(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _extremum(ctx, node, "minimum")


def _compare(ctx: ImportContext, node: onnx.NodeProto, symbol: str) -> None:
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    assert a is not None and b is not None
    if _python_binary(ctx, node, _PYTHON_BINARY[node.op_type], a, b):
        return
    ctx.emit(node.output[0], f"{ctx.t(a)} {symbol} {_legacy_broadcast(ctx, node, a, b, ctx.operand(b, a))}")


@converter("Equal", 1, 7, 11, 13, 19)
def equal(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _compare(ctx, node, "==")


@converter("Less", 1, 7, 9, 13)
def less(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _compare(ctx, node, "<")


@converter("Greater", 1, 7, 9, 13)
def greater(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _compare(ctx, node, ">")


@converter("LessOrEqual", 12, 16)
def less_or_equal(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _compare(ctx, node, "<=")


@converter("GreaterOrEqual", 12, 16)
def greater_or_equal(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _compare(ctx, node, ">=")


def _logical(ctx: ImportContext, node: onnx.NodeProto, symbol: str) -> None:
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    assert a is not None and b is not None
    ctx.emit(node.output[0], f"{ctx.t(a)} {symbol} {_legacy_broadcast(ctx, node, a, b, ctx.t(b))}")


@converter("And", 1, 7)
def and_(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _logical(ctx, node, "&")


@converter("Or", 1, 7)
def or_(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _logical(ctx, node, "|")


@converter("Xor", 1, 7)
def xor(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _logical(ctx, node, "^")


@converter("BitwiseAnd", 18)
def bitwise_and(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _logical(ctx, node, "&")


@converter("BitwiseOr", 18)
def bitwise_or(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _logical(ctx, node, "|")


@converter("BitwiseXor", 18)
def bitwise_xor(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _logical(ctx, node, "^")


@converter("BitShift", 11, 28)
def bit_shift(ctx: ImportContext, node: onnx.NodeProto) -> None:
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    assert a is not None and b is not None
    function = "bitwise_left_shift" if ctx.attr(node, "direction") == "LEFT" else "bitwise_right_shift"
    ctx.emit(node.output[0], f"torch.{function}({ctx.t(a)}, {ctx.t(b)})")


_UNARY = {
    "Abs": "torch.abs({x})", "Neg": "-{x}", "Exp": "torch.exp({x})", "Log": "torch.log({x})",
    "Sqrt": "torch.sqrt({x})", "Reciprocal": "torch.reciprocal({x})", "Floor": "torch.floor({x})",
    "Ceil": "torch.ceil({x})", "Round": "torch.round({x})", "Sign": "torch.sign({x})", "Sin": "torch.sin({x})",
    "Cos": "torch.cos({x})", "Tan": "torch.tan({x})", "Asin": "torch.asin({x})", "Acos": "torch.acos({x})",
    "Atan": "torch.atan({x})", "Sinh": "torch.sinh({x})", "Cosh": "torch.cosh({x})", "Asinh": "torch.asinh({x})",
    "Acosh": "torch.acosh({x})", "Atanh": "torch.atanh({x})", "Erf": "torch.erf({x})",
    "IsNaN": "torch.isnan({x})", "Not": "torch.logical_not({x})", "BitwiseNot": "torch.bitwise_not({x})",
    "Det": "torch.linalg.det({x})",
}
_UNARY_VERSIONS = {
    "Abs": (1, 6, 13), "Neg": (1, 6, 13), "Exp": (1, 6, 13), "Log": (1, 6, 13), "Sqrt": (1, 6, 13),
    "Reciprocal": (1, 6, 13), "Floor": (1, 6, 13), "Ceil": (1, 6, 13), "Round": (11, 22), "Sign": (9, 13),
    "Sin": (7, 22), "Cos": (7, 22), "Tan": (7, 22), "Asin": (7, 22), "Acos": (7, 22), "Atan": (7, 22),
    "Sinh": (9, 22), "Cosh": (9, 22), "Asinh": (9, 22), "Acosh": (9, 22), "Atanh": (9, 22), "Erf": (9, 13),
    "IsNaN": (9, 13, 20), "Not": (1,), "BitwiseNot": (18,), "Det": (11, 22),
}


def _unary(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    if node.op_type == "Neg" and x.kind == "shape" and x.scalar:
        ctx.emit(node.output[0], f"-{x.expr}", kind="shape", scalar=True)
        return
    ctx.emit(node.output[0], _UNARY[node.op_type].format(x=ctx.t(x)))


for _op, _versions in _UNARY_VERSIONS.items():
    converter(_op, *_versions)(_unary)


@converter("IsInf", 10, 20)
def is_inf(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.t(ctx.input(node, 0))  # type: ignore[arg-type]
    negative, positive = int(ctx.attr(node, "detect_negative", 1)), int(ctx.attr(node, "detect_positive", 1))
    function = {(1, 1): "torch.isinf", (1, 0): "torch.isneginf", (0, 1): "torch.isposinf"}.get((negative, positive))
    ctx.emit(node.output[0], f"{function}({x})" if function else f"torch.zeros_like({x}, dtype=torch.bool)")


@converter("Where", 9, 16)
def where(ctx: ImportContext, node: onnx.NodeProto) -> None:
    condition, a, b = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    assert condition is not None and a is not None and b is not None
    pc, pa, pb = python_level(ctx, condition), python_level(ctx, a), python_level(ctx, b)
    if pc and pa and pb and "shape" in (condition.kind, a.kind, b.kind) and not (pc[2] or pa[2] or pb[2]):
        if len({len(pc[1]), len(pa[1]), len(pb[1])}) == 1:  # type: ignore[arg-type]
            elems = [x if c else y if c is not None else None for c, x, y in zip(pc[1], pa[1], pb[1])]  # type: ignore[arg-type]
            ctx.emit(node.output[0], f"[x if c else y for c, x, y in zip({pc[0]}, {pa[0]}, {pb[0]})]",
                     kind="shape", elems=elems)
            return
    # torch.where takes a Python number for one branch, not for both.
    left = ctx.t(a) if a.kind == "const" and b.kind == "const" else ctx.operand(a, condition)
    right = ctx.operand(b, condition)
    ctx.emit(node.output[0], f"torch.where({ctx.t(condition)}, {left}, {right})")


def _cast(ctx: ImportContext, node: onnx.NodeProto, x: Value, target: np.dtype | None) -> None:
    if target is None:
        raise NodeNotConvertible("the target element type has no torch equivalent")
    if x.dtype is not None and np.dtype(x.dtype) == target and x.kind != "shape":
        ctx.alias(node.output[0], x)
        return
    if x.kind == "shape" and target.kind in "iu":
        ctx.alias(node.output[0], x)
        return
    ctx.emit(node.output[0], f"{ctx.t(x)}.to({torch_dtype(target)})", dtype=target)


@converter("Cast", 1, 6, 9, 13, 19, 21, 23, 24, 25, 28)
def cast(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    to = ctx.attr(node, "to")
    if isinstance(to, str):  # opset 1 names the type
        to = getattr(onnx.TensorProto, to.upper(), 0)
    _cast(ctx, node, x, np_dtype(int(to)))


@converter("CastLike", 15, 19, 21, 23, 24, 25)
def cast_like(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x, like = ctx.input(node, 0), ctx.input(node, 1)
    assert x is not None and like is not None
    _cast(ctx, node, x, like.dtype)


@converter("Identity", 1, 13, 14, 16, 19, 21, 23, 24, 25)
def identity(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    ctx.alias(node.output[0], x)
