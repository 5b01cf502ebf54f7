"""Element-wise arithmetic, comparison, logic and unary math ops."""

from __future__ import annotations

from functools import reduce

from interop_coreml.onnx2mil.errors import NodeNotConvertible
from interop_coreml.onnx2mil.ops._common import (
    ConversionContext, as_var, attr, cast_to, is_bool, mb, mil_dtype_name, np, scalar_like, unify,
)
from interop_coreml.onnx2mil.op_converters import register

_BINARY = {
    "Add": mb.add, "Sub": mb.sub, "Mul": mb.mul, "Pow": mb.pow,
    "Equal": mb.equal, "Less": mb.less, "Greater": mb.greater,
    "LessOrEqual": mb.less_equal, "GreaterOrEqual": mb.greater_equal,
    "And": mb.logical_and, "Or": mb.logical_or, "Xor": mb.logical_xor,
}


def _binary(ctx: ConversionContext, node, fn) -> None:
    a, b = ctx.input(node, 0), ctx.input(node, 1)
    if node.op_type == "Pow":
        # ONNX allows an exponent of another dtype and gives the base's dtype; MIL wants
        # one dtype. An integer base with a float exponent is computed in float32 and
        # truncated (what runtimes do): casting 2.5 to int32 first would compute x**2.
        base, exponent = mil_dtype_name(a), mil_dtype_name(b)
        if base == "int32" and exponent in ("fp32", "fp16"):
            power = mb.pow(x=as_var(cast_to(a, "fp32")), y=cast_to(b, "fp32"))
            truncated = mb.mul(x=mb.sign(x=power), y=mb.floor(x=mb.abs(x=power)))
            ctx.output(node, 0, mb.cast(x=truncated, dtype="int32", name=ctx.out_name(node)))
            return
        b = cast_to(b, base)
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
        # C fmod takes the sign of the dividend; on non-negative operands it equals
        # the floored mod, which MIL computes exactly. x - trunc(x / y) * y would
        # lose every digit of the remainder once x / y is large.
        remainder = mb.mod(x=mb.abs(x=a), y=mb.abs(x=as_var(b)))
        negative = mb.less(x=a, y=scalar_like(a, 0))
        negated = mb.sub(x=scalar_like(a, 0), y=remainder)
        ctx.output(node, 0, mb.select(cond=negative, a=negated, b=remainder, name=ctx.out_name(node)))
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
        total = mb.real_div(x=as_var(total), y=scalar_like(total, len(values)), name=ctx.out_name(node))
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
    branch_dtype = mil_dtype_name(a)
    if branch_dtype == "bool":
        a, b = cast_to(a, "int32"), cast_to(b, "int32")
    # MIL infers select's shape from a and b only; ONNX broadcasts the condition too.
    # Broadcast a branch against the condition so the inferred shape (which later
    # reshapes, concats and reductions rely on) is the real one.
    if _broadcast_grows(_shape(cond), _broadcast(_shape(a), _shape(b))):
        a = _broadcast_against(a, cond)
    name = ctx.out_name(node)
    if branch_dtype == "bool":
        out = mb.cast(x=mb.select(cond=as_var(cond), a=as_var(a), b=b), dtype="bool", name=name)
    else:
        out = mb.select(cond=as_var(cond), a=as_var(a), b=b, name=name)
    ctx.output(node, 0, out)


def _shape(value) -> tuple:
    return tuple(value.shape)


def _broadcast(x: tuple, y: tuple) -> tuple:
    from coremltools.converters.mil.mil.ops.defs._utils import broadcast_shapes

    return tuple(broadcast_shapes(x, y))


def _broadcast_grows(extra: tuple, base: tuple) -> bool:
    """True when broadcasting ``base`` with ``extra`` gives another (or a longer) shape."""
    if len(extra) > len(base):
        return True
    for dim_extra, dim_base in zip(reversed(extra), reversed(base)):
        if dim_extra != dim_base and not (isinstance(dim_extra, (int, np.integer)) and dim_extra == 1):
            return True
    return False


def _broadcast_against(value, other):
    """``value`` broadcast to broadcast(value, other) without changing one element (NaN, -0 kept)."""
    dtype = mil_dtype_name(value)
    numpy_type = {"fp32": np.float32, "fp16": np.float16, "int32": np.int32}[dtype]
    if isinstance(other, np.ndarray):
        ones = np.ones(other.shape, dtype=numpy_type)
        return value * ones if isinstance(value, np.ndarray) else mb.mul(x=value, y=ones)
    # ones shaped like the condition, built from it at run time (it may have dynamic dims)
    ones = mb.add(x=mb.mul(x=mb.cast(x=other, dtype=dtype), y=numpy_type(0)), y=numpy_type(1))
    return mb.mul(x=as_var(value), y=ones)


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
    kwargs = {"epsilon": scalar_like(x, 0)} if node.op_type in ("Reciprocal", "Log") else {}
    ctx.output(node, 0, fn(x=x, name=ctx.out_name(node), **kwargs))


for _op, _fn in _UNARY.items():
    register(_op)(lambda ctx, node, _fn=_fn: _unary(ctx, node, _fn))


@register("Neg")
def convert_neg(ctx: ConversionContext, node) -> None:
    x = as_var(ctx.input(node, 0))
    minus_one = np.array(-1, dtype=np.float32 if mil_dtype_name(x) == "fp32" else (np.float16 if mil_dtype_name(x) == "fp16" else np.int32))
    ctx.output(node, 0, mb.mul(x=x, y=minus_one, name=ctx.out_name(node)))


def _in_float32(ctx: ConversionContext, node, op_type: str, compute) -> None:
    """Output 0 = ``compute(x, c, **name)`` (``c(v)``: a float32 constant), for float inputs only.

    A float16 x is computed in float32 and rounded once, as onnxruntime computes float16 ops it
    has no float16 kernel for: in float16 every step of these compositions rounds, and the
    result was up to 6 ulps from the correctly rounded value (fuzz seed 77 trial 15605, Asinh
    of -0.23 feeding an Equal).
    """
    x = as_var(ctx.input(node, 0))
    dtype = mil_dtype_name(x)
    if dtype not in ("fp32", "fp16"):
        raise NodeNotConvertible(f"{op_type} on {dtype} tensors: Core ML computes it for float types only")
    c = lambda v: np.array(v, dtype=np.float32)  # noqa: E731
    if dtype == "fp32":
        ctx.output(node, 0, compute(x, c, name=ctx.out_name(node)))
    else:
        ctx.output(node, 0, mb.cast(x=compute(mb.cast(x=x, dtype="fp32"), c), dtype="fp16", name=ctx.out_name(node)))


def _acosh(x, c, **name):
    # acosh(1 + t) = log1p(t + sqrt(t (t + 2))); t = x - 1 is exact near 1, where
    # x² - 1 and log(x + ...) would lose the digits that matter.
    t = mb.sub(x=x, y=c(1))
    direct = _log1p(mb.add(x=t, y=mb.sqrt(x=mb.mul(x=t, y=mb.add(x=t, y=c(2))))), c)
    # Past 1e18, t (t + 2) overflows and acosh(x) = log(2x) to float precision.
    huge = mb.add(x=mb.log(x=x, epsilon=c(0)), y=c(np.log(2.0)))
    return mb.select(cond=mb.greater(x=x, y=c(_HUGE)), a=huge, b=direct, **name)


def _log1p(u, c):
    """log(1 + u) to float precision for small u (Kahan: log(w) * u / (w - 1), w = 1 + u)."""
    w = mb.add(x=u, y=c(1))
    shifted = mb.sub(x=w, y=c(1))
    exact = mb.equal(x=shifted, y=c(0))
    ratio = mb.real_div(x=u, y=mb.select(cond=exact, a=mb.add(x=shifted, y=c(1)), b=shifted))
    return mb.select(cond=exact, a=u, b=mb.mul(x=mb.log(x=w, epsilon=c(0)), y=ratio))


# Past this magnitude x² overflows float32 and asinh, acosh are log(2|x|).
_HUGE = 1e18


def _asinh(x, c, **name):
    magnitude = mb.abs(x=x)
    # asinh is odd: compute it for |x| and restore the sign, so x + sqrt(x² + 1)
    # never cancels for negative x.
    square = mb.mul(x=magnitude, y=magnitude)
    direct = mb.log(x=mb.add(x=magnitude, y=mb.sqrt(x=mb.add(x=square, y=c(1)))), epsilon=c(0))
    # Near 0, log(1 + t) keeps only the digits of t that 1 + t holds: use the
    # series x - x³/6 + 3x⁵/40 - 15x⁷/336, exact to float precision below 0.1.
    series = mb.mul(x=square, y=c(-15.0 / 336.0))
    series = mb.mul(x=mb.add(x=series, y=c(3.0 / 40.0)), y=square)
    series = mb.mul(x=mb.add(x=series, y=c(-1.0 / 6.0)), y=square)
    series = mb.mul(x=mb.add(x=series, y=c(1.0)), y=magnitude)
    huge = mb.add(x=mb.log(x=magnitude, epsilon=c(0)), y=c(np.log(2.0)))
    result = mb.select(cond=mb.less(x=magnitude, y=c(0.1)), a=series, b=direct)
    result = mb.select(cond=mb.greater(x=magnitude, y=c(_HUGE)), a=huge, b=result)
    return mb.select(cond=mb.less(x=x, y=c(0)), a=mb.sub(x=c(0), y=result), b=result, **name)


register("Acosh")(lambda ctx, node: _in_float32(ctx, node, "Acosh", _acosh))
register("Asinh")(lambda ctx, node: _in_float32(ctx, node, "Asinh", _asinh))


@register("IsNaN")
def convert_isnan(ctx: ConversionContext, node) -> None:
    x = as_var(ctx.input(node, 0))
    ctx.output(node, 0, mb.not_equal(x=x, y=x, name=ctx.out_name(node)))
