"""Element-wise arithmetic, comparison, logic and unary math ops."""

from __future__ import annotations

from functools import reduce

from interop_coreml.onnx2mil.errors import NodeNotConvertible
from interop_coreml.onnx2mil.ops._common import (
    ConversionContext, as_var, attr, cast_to, is_bool, mb, mil_dtype_name, np, unify,
)
from interop_coreml.onnx2mil.registry import register

_BINARY = {
    "Add": mb.add, "Sub": mb.sub, "Mul": mb.mul, "Pow": mb.pow,
    "Equal": mb.equal, "Less": mb.less, "Greater": mb.greater,
    "LessOrEqual": mb.less_equal, "GreaterOrEqual": mb.greater_equal,
    "And": mb.logical_and, "Or": mb.logical_or, "Xor": mb.logical_xor,
}


def _binary(ctx: ConversionContext, node, fn) -> None:
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    if node.op_type == "Pow":
        # ONNX allows an exponent of another dtype; MIL wants the base's dtype.
        b = cast_to(b, mil_dtype_name(a)) if not isinstance(b, np.ndarray) else b.astype(np.float32 if mil_dtype_name(a) == "fp32" else b.dtype)
    a, b = unify(a, b)
    if node.op_type == "Equal" and is_bool(a):
        a, b = cast_to(a, "int32"), cast_to(b, "int32")
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        a = as_var(a)
    ctx.output(node, 0, fn(x=a, y=b, name=ctx.out_name(node)))


for _op, _fn in _BINARY.items():
    register(_op)(lambda ctx, node, _fn=_fn: _binary(ctx, node, _fn))


@register("Div")
def convert_div(ctx: ConversionContext, node) -> None:
    a, b = unify(ctx.input(node, 0), ctx.input(node, 1))
    if mil_dtype_name(a) == "int32":
        # ONNX integer division truncates toward zero; compute in float and truncate.
        q = mb.real_div(x=cast_to(as_var(a), "fp32"), y=cast_to(b, "fp32"))
        q = mb.mul(x=mb.sign(x=q), y=mb.floor(x=mb.abs(x=q)))
        ctx.output(node, 0, mb.cast(x=q, dtype="int32", name=ctx.out_name(node)))
        return
    ctx.output(node, 0, mb.real_div(x=as_var(a), y=b, name=ctx.out_name(node)))


@register("Mod")
def convert_mod(ctx: ConversionContext, node) -> None:
    a, b = unify(ctx.input(node, 0), ctx.input(node, 1))
    a = as_var(a)
    if attr(node, "fmod", 0):
        # C fmod: the result takes the sign of the dividend.
        af, bf = cast_to(a, "fp32"), cast_to(b, "fp32")
        q = mb.real_div(x=af, y=bf)
        q = mb.mul(x=mb.sign(x=q), y=mb.floor(x=mb.abs(x=q)))
        result = mb.sub(x=af, y=mb.mul(x=q, y=bf))
        out = mb.cast(x=result, dtype=mil_dtype_name(a), name=ctx.out_name(node)) if mil_dtype_name(a) != "fp32" else mb.identity(x=result, name=ctx.out_name(node))
        ctx.output(node, 0, out)
        return
    ctx.output(node, 0, mb.mod(x=a, y=b, name=ctx.out_name(node)))


def _variadic(ctx: ConversionContext, node, fn, mean: bool = False) -> None:
    values = [ctx.input(node, i) for i in range(len(node.input)) if node.input[i]]
    if len(values) == 1:
        result = mb.identity(x=as_var(values[0]), name=ctx.out_name(node)) if not mean else None
        if result is not None:
            ctx.output(node, 0, result)
            return

    def combine(x, y):
        x, y = unify(x, y)
        return fn(x=as_var(x), y=y)

    total = reduce(combine, values)
    if mean:
        total = mb.real_div(x=as_var(total), y=np.float32(len(values)), name=ctx.out_name(node))
    else:
        total = mb.identity(x=total, name=ctx.out_name(node))
    ctx.output(node, 0, total)


register("Sum")(lambda ctx, node: _variadic(ctx, node, mb.add))
register("Max")(lambda ctx, node: _variadic(ctx, node, mb.maximum))
register("Min")(lambda ctx, node: _variadic(ctx, node, mb.minimum))
register("Mean")(lambda ctx, node: _variadic(ctx, node, mb.add, mean=True))


@register("Not")
def convert_not(ctx: ConversionContext, node) -> None:
    ctx.output(node, 0, mb.logical_not(x=as_var(ctx.input(node, 0)), name=ctx.out_name(node)))


@register("Where")
def convert_where(ctx: ConversionContext, node) -> None:
    cond = cast_to(ctx.input(node, 0), "bool")
    a, b = unify(ctx.input(node, 1), ctx.input(node, 2))
    ctx.output(node, 0, mb.select(cond=as_var(cond), a=a, b=b, name=ctx.out_name(node)))


_UNARY = {
    "Abs": mb.abs, "Acos": mb.acos, "Asin": mb.asin, "Atan": mb.atan, "Atanh": mb.atanh,
    "Ceil": mb.ceil, "Cos": mb.cos, "Cosh": mb.cosh, "Erf": mb.erf, "Exp": mb.exp,
    "Floor": mb.floor, "Log": mb.log, "Reciprocal": mb.inverse, "Round": mb.round,
    "Sign": mb.sign, "Sin": mb.sin, "Sinh": mb.sinh, "Sqrt": mb.sqrt, "Tan": mb.tan,
    "Tanh": mb.tanh,
}
# MIL computes these in floating point only.
_FLOAT_ONLY = {"Acos", "Asin", "Atan", "Atanh", "Ceil", "Cos", "Cosh", "Erf", "Exp", "Floor", "Log",
               "Reciprocal", "Round", "Sin", "Sinh", "Sqrt", "Tan", "Tanh"}


def _unary(ctx: ConversionContext, node, fn) -> None:
    x = as_var(ctx.input(node, 0))
    if node.op_type in _FLOAT_ONLY and mil_dtype_name(x) not in ("fp32", "fp16"):
        raise NodeNotConvertible(f"{node.op_type} on {mil_dtype_name(x)} tensors: Core ML computes it for float types only")
    # inverse and log add a default epsilon in MIL; ONNX adds none.
    kwargs = {"epsilon": np.float32(0.0)} if node.op_type in ("Reciprocal", "Log") else {}
    ctx.output(node, 0, fn(x=x, name=ctx.out_name(node), **kwargs))


for _op, _fn in _UNARY.items():
    register(_op)(lambda ctx, node, _fn=_fn: _unary(ctx, node, _fn))


@register("Neg")
def convert_neg(ctx: ConversionContext, node) -> None:
    x = as_var(ctx.input(node, 0))
    minus_one = np.array(-1, dtype=np.float32 if mil_dtype_name(x) == "fp32" else (np.float16 if mil_dtype_name(x) == "fp16" else np.int32))
    ctx.output(node, 0, mb.mul(x=x, y=minus_one, name=ctx.out_name(node)))


@register("Acosh")
def convert_acosh(ctx: ConversionContext, node) -> None:
    x = as_var(ctx.input(node, 0))
    root = mb.sqrt(x=mb.sub(x=mb.mul(x=x, y=x), y=np.float32(1)))
    ctx.output(node, 0, mb.log(x=mb.add(x=x, y=root), name=ctx.out_name(node)))


@register("Asinh")
def convert_asinh(ctx: ConversionContext, node) -> None:
    x = as_var(ctx.input(node, 0))
    root = mb.sqrt(x=mb.add(x=mb.mul(x=x, y=x), y=np.float32(1)))
    ctx.output(node, 0, mb.log(x=mb.add(x=x, y=root), name=ctx.out_name(node)))


@register("IsNaN")
def convert_isnan(ctx: ConversionContext, node) -> None:
    x = as_var(ctx.input(node, 0))
    ctx.output(node, 0, mb.not_equal(x=x, y=x, name=ctx.out_name(node)))
