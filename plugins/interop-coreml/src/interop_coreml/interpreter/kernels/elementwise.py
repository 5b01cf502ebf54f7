"""Kernels of MIL elementwise binary, unary, comparison and logical ops (iOS15-iOS17 ``elementwise_*``)."""

from __future__ import annotations

import numpy as np

from .table import kernel
from .special import erf


def _binary(fn):
    def evaluate(ctx, x, y):
        x, y = np.asarray(x), np.asarray(y)
        for param, target in (("x", x), ("y", y)):
            # Reuse a dead operand's buffer when the result has exactly its shape and dtype.
            if (
                param in ctx.overwritable
                and target.shape == np.broadcast_shapes(x.shape, y.shape)
                and np.result_type(x, y) == target.dtype
            ):
                return fn(x, y, out=target)
        return fn(x, y)

    return evaluate


_BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "equal": np.equal,
    "not_equal": np.not_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
    "less": np.less,
    "less_equal": np.less_equal,
    "logical_and": np.logical_and,
    "logical_or": np.logical_or,
    "logical_xor": np.logical_xor,
}
for _name, _fn in _BINARY.items():
    kernel(_name)(_binary(_fn))


@kernel("real_div")
def real_div(ctx, x, y):
    # Integer operands divide as reals; the program's declared dtype decides the stored type.
    return np.true_divide(x, y)


@kernel("floor_div")
def floor_div(ctx, x, y):
    return np.floor_divide(x, y)


@kernel("mod")
def mod(ctx, x, y):
    # MIL mod follows the sign of the divisor, like numpy's mod.
    return np.mod(x, y)


@kernel("pow")
def power(ctx, x, y):
    if np.issubdtype(np.asarray(x).dtype, np.integer) and np.issubdtype(np.asarray(y).dtype, np.integer):
        return np.power(np.asarray(x, dtype=np.float64), y)
    return np.power(x, y)


def _unary(fn):
    def evaluate(ctx, x):
        return fn(np.asarray(x))

    return evaluate


_UNARY = {
    "abs": np.abs,
    "acos": np.arccos,
    "asin": np.arcsin,
    "atan": np.arctan,
    "atanh": np.arctanh,
    "ceil": np.ceil,
    "cos": np.cos,
    "cosh": np.cosh,
    "exp": np.exp,
    "exp2": np.exp2,
    "floor": np.floor,
    "logical_not": np.logical_not,
    "sign": np.sign,
    "sin": np.sin,
    "sinh": np.sinh,
    "sqrt": np.sqrt,
    "square": np.square,
    "tan": np.tan,
    "tanh": np.tanh,
    # MIL round: half away from zero is not promised; Core ML rounds half to even like numpy.
    "round": np.round,
    "erf": erf,
}
for _name, _fn in _UNARY.items():
    kernel(_name)(_unary(_fn))


@kernel("inverse")
def inverse(ctx, x, epsilon=1e-4):
    return 1.0 / (x + epsilon)


@kernel("log")
def log(ctx, x, epsilon=1e-45):
    return np.log(x + epsilon)


@kernel("rsqrt")
def rsqrt(ctx, x, epsilon=1e-12):
    return 1.0 / np.sqrt(x + epsilon)


@kernel("clip")
def clip(ctx, x, alpha, beta):
    return np.minimum(np.maximum(x, alpha), beta)


@kernel("threshold")
def threshold(ctx, x, alpha):
    return np.maximum(x, alpha)


_CAST_TARGETS = {
    "fp16": np.float16,
    "fp32": np.float32,
    "fp64": np.float64,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "int64": np.int64,
    "bool": np.bool_,
}


@kernel("cast")
def cast(ctx, x, dtype):
    target = _CAST_TARGETS.get(str(dtype))
    if target is None:
        raise ValueError(f"cast to unsupported dtype {dtype!r}")
    x = np.asarray(x)
    if np.issubdtype(target, np.integer) and np.issubdtype(x.dtype, np.floating):
        # Float to int casts truncate toward zero (C semantics), as numpy's astype does.
        return np.trunc(x).astype(target)
    return x.astype(target)
