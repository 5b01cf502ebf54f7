"""Keras layers interop registers for ONNX operations that have no native Keras layer.

The ONNX -> Keras importer builds models from native layers wherever Keras has
one (Dense, Conv*, BatchNormalization, pooling, Add, Reshape ...). An operation
without one becomes one of the small classes below, registered with
``keras.saving.register_keras_serializable(package="interop_keras")``: never a
Lambda layer, so the saved model holds no code and loads with
``keras.saving.load_model(path, safe_mode=True)`` once this module is imported::

    import interop_keras.layers  # registers the classes
    model = keras.saving.load_model("model.keras", safe_mode=True)

Every configuration value is plain data (numbers, strings, lists), and every
string that selects behaviour (an ``op`` name) is looked up in a fixed table
here: a crafted config cannot name a function to call. The names are ONNX op
types (``Mul``, ``ReduceMean``, ``MaxPool``): Keras' legacy ``.h5`` loader turns a
config string that names a function of ``keras.layers`` (``multiply``,
``average``) into that function, and capitalised names never do. interop's own safety
check (:mod:`interop_keras.safety`) accepts exactly the classes listed in
:data:`interop_keras.safety.INTEROP_LAYERS`, from this module, under this
package's registered names; a test keeps that list and this module in step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from interop_keras.loading import quiet_tensorflow

quiet_tensorflow()

import keras  # noqa: E402 - after quiet_tensorflow, which must run before TensorFlow loads
from keras import ops  # noqa: E402

PACKAGE = "interop_keras"

_registered: dict[str, type] = {}


def _register(cls: type) -> type:
    _registered[cls.__name__] = cls
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)


def custom_objects() -> dict[str, type]:
    """The registered classes by registered name (``custom_objects=`` for load_model)."""
    return {f"{PACKAGE}>{name}": cls for name, cls in _registered.items()}


def registered_names() -> frozenset[str]:
    return frozenset(_registered)


def _choice(kind: str, value: Any, table: dict[str, Any]) -> Any:
    if not isinstance(value, str) or value not in table:
        raise ValueError(f"{kind} must be one of {', '.join(sorted(table))}, got {value!r}")
    return table[value]


def _ints(name: str, values: Any, length: int | None = None) -> list[int]:
    if not isinstance(values, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be a list of integers, got {values!r}")
    if length is not None and len(values) != length:
        raise ValueError(f"{name} must have {length} entries, got {values!r}")
    return [int(v) for v in values]


def _number(name: str, value: Any, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- elementwise

def _add(a: Any, b: Any) -> Any:
    # keras.ops.add on TensorFlow turns an add whose second operand squeezes to one axis into
    # tf.nn.bias_add on the first operand's last (or second) axis, whatever axis that operand
    # really broadcasts along ((5, 5) + (5, 1) adds along the wrong axis). a - (-b) rounds the
    # same as a + b and broadcasts like numpy.
    return ops.subtract(a, ops.negative(b))


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "Add": _add,
    "Sub": ops.subtract,
    "Mul": ops.multiply,
    "Div": ops.divide,
    "Pow": ops.power,
    "Max": ops.maximum,
    "Min": ops.minimum,
    "Mod": ops.mod,
    "MatMul": ops.matmul,
}


@_register
class ConstantOperand(keras.layers.Layer):
    """``x OP c`` (or ``c OP x``) with a constant ``c``: a trainable weight or a fixed value.

    ``c`` is a variable of ``constant_shape`` named after the ONNX initializer it
    came from (trainable when the importer classified it as a weight, such as a
    per-channel scale or a bias) or, for a one-element value, the number ``scalar``.
    """

    def __init__(self, op: str, constant_shape: Sequence[int] | None = None, scalar: float | None = None,
                 constant_first: bool = False, weight_name: str = "constant", trainable_constant: bool = True,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self._fn = _choice("op", op, _BINARY)
        self.op = op
        self.scalar = _number("scalar", scalar, optional=True)
        if (constant_shape is None) == (self.scalar is None):
            raise ValueError("ConstantOperand takes either constant_shape or scalar")
        self.constant_shape = None if constant_shape is None else _ints("constant_shape", constant_shape)
        self.constant_first = bool(constant_first)
        if not isinstance(weight_name, str) or "/" in weight_name:
            raise ValueError(f"weight_name must be a name without '/', got {weight_name!r}")
        self.weight_name = weight_name
        self.trainable_constant = bool(trainable_constant)
        self.constant = None

    def build(self, input_shape: Any) -> None:
        if self.constant_shape is not None:
            self.constant = self.add_weight(
                name=self.weight_name, shape=tuple(self.constant_shape), initializer="zeros",
                trainable=self.trainable_constant,
            )

    def call(self, x: Any) -> Any:
        c = self.scalar if self.constant is None else ops.cast(self.constant, x.dtype)
        return self._fn(c, x) if self.constant_first else self._fn(x, c)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "op": self.op, "constant_shape": self.constant_shape, "scalar": self.scalar,
                "constant_first": self.constant_first, "weight_name": self.weight_name,
                "trainable_constant": self.trainable_constant}


@_register
class Elementwise(keras.layers.Layer):
    """``a OP b`` for two tensors with numpy broadcasting, where Keras has no merge layer."""

    def __init__(self, op: str, **kwargs: Any):
        super().__init__(**kwargs)
        self._fn = _choice("op", op, _BINARY)
        self.op = op

    def call(self, inputs: Any) -> Any:
        a, b = inputs
        return self._fn(a, b)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "op": self.op}


def _hard_sigmoid(x: Any, alpha: float, beta: float) -> Any:
    return ops.clip(alpha * x + beta, 0.0, 1.0)


def _celu(x: Any, alpha: float, beta: float) -> Any:
    return ops.maximum(x, 0.0) + ops.minimum(0.0, alpha * (ops.exp(x / alpha) - 1.0))


def _clip(x: Any, alpha: float | None, beta: float | None) -> Any:
    if alpha is not None:
        x = ops.maximum(x, alpha)
    if beta is not None:
        x = ops.minimum(x, beta)
    return x


def _shrink(x: Any, alpha: float, beta: float) -> Any:  # alpha = lambd, beta = bias
    return ops.where(x < -alpha, x + beta, ops.where(x > alpha, x - beta, ops.zeros_like(x)))


_UNARY: dict[str, Callable[..., Any]] = {
    "Abs": lambda x, a, b: ops.abs(x),
    "Neg": lambda x, a, b: ops.negative(x),
    "Reciprocal": lambda x, a, b: ops.reciprocal(x),
    "Sqrt": lambda x, a, b: ops.sqrt(x),
    "Exp": lambda x, a, b: ops.exp(x),
    "Log": lambda x, a, b: ops.log(x),
    "Floor": lambda x, a, b: ops.floor(x),
    "Ceil": lambda x, a, b: ops.ceil(x),
    "Round": lambda x, a, b: ops.round(x),
    "Sign": lambda x, a, b: ops.sign(x),
    "Sin": lambda x, a, b: ops.sin(x),
    "Cos": lambda x, a, b: ops.cos(x),
    "Tan": lambda x, a, b: ops.tan(x),
    "Asin": lambda x, a, b: ops.arcsin(x),
    "Acos": lambda x, a, b: ops.arccos(x),
    "Atan": lambda x, a, b: ops.arctan(x),
    "Sinh": lambda x, a, b: ops.sinh(x),
    "Cosh": lambda x, a, b: ops.cosh(x),
    "Asinh": lambda x, a, b: ops.arcsinh(x),
    "Acosh": lambda x, a, b: ops.arccosh(x),
    "Atanh": lambda x, a, b: ops.arctanh(x),
    "Erf": lambda x, a, b: ops.erf(x),
    "GeluTanh": lambda x, a, b: keras.activations.gelu(x, approximate=True),
    "HardSigmoid": _hard_sigmoid,
    "Celu": _celu,
    "Clip": _clip,
    "Shrink": _shrink,
    "Softplus": lambda x, a, b: ops.softplus(x),
    "Square": lambda x, a, b: ops.square(x),
}
#: Unary ops whose ``alpha``/``beta`` must be numbers (Clip takes None for "no bound").
_UNARY_PARAMETERS = {"HardSigmoid": (True, True), "Celu": (True, False), "Shrink": (True, True)}


@_register
class Unary(keras.layers.Layer):
    """An elementwise function without a native Keras layer (``op`` from a fixed table)."""

    def __init__(self, op: str, alpha: float | None = None, beta: float | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self._fn = _choice("op", op, _UNARY)
        self.op = op
        need_alpha, need_beta = _UNARY_PARAMETERS.get(op, (False, False))
        self.alpha = _number("alpha", alpha, optional=not need_alpha)
        self.beta = _number("beta", beta, optional=not need_beta)

    def call(self, x: Any) -> Any:
        return self._fn(x, self.alpha, self.beta)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "op": self.op, "alpha": self.alpha, "beta": self.beta}


@_register
class MatMul(keras.layers.Layer):
    """Matrix product of two tensors with numpy's batching rules (ONNX MatMul)."""

    def call(self, inputs: Any) -> Any:
        a, b = inputs
        return ops.matmul(a, b)


@_register
class LogSoftmax(keras.layers.Layer):
    """log(softmax(x)) over ``axis`` (a list: the axes are normalised together)."""

    def __init__(self, axis: Sequence[int], **kwargs: Any):
        super().__init__(**kwargs)
        self.axis = _ints("axis", axis)

    def call(self, x: Any) -> Any:
        return x - ops.logsumexp(x, axis=tuple(self.axis), keepdims=True)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


# --------------------------------------------------------------------------- normalisation


@_register
class LocalResponseNormalization(keras.layers.Layer):
    """ONNX LRN: x / (bias + alpha/size * sum of squares over ``size`` neighbours on ``axis``) ** beta."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, bias: float = 1.0, axis: int = -1,
                 **kwargs: Any):
        super().__init__(**kwargs)
        (self.size,) = _ints("size", [size])
        if self.size < 1:
            raise ValueError(f"size must be positive, got {size!r}")
        self.alpha = _number("alpha", alpha)
        self.beta = _number("beta", beta)
        self.bias = _number("bias", bias)
        (self.axis,) = _ints("axis", [axis])

    def call(self, x: Any) -> Any:
        rank = len(x.shape)
        axis = self.axis % rank
        squared = ops.square(x)
        before = (self.size - 1) // 2
        after = self.size - 1 - before
        pads = [[0, 0]] * rank
        pads[axis] = [before, after]
        padded = ops.pad(squared, pads)
        channels = ops.shape(x)[axis]
        total = 0.0
        for offset in range(self.size):
            index = [slice(None)] * rank
            index[axis] = slice(offset, offset + channels)
            total = total + padded[tuple(index)]
        scale = self.bias + (self.alpha / self.size) * total
        return x / ops.power(scale, self.beta)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "size": self.size, "alpha": self.alpha, "beta": self.beta,
                "bias": self.bias, "axis": self.axis}


# --------------------------------------------------------------------------- pooling and padding


def _pairs(name: str, values: Any) -> list[list[int]]:
    if not isinstance(values, (list, tuple)):
        raise ValueError(f"{name} must be a list of [before, after] pairs, got {values!r}")
    return [_ints(name, pair, 2) for pair in values]


@_register
class Pooling(keras.layers.Layer):
    """Max or average pooling over the spatial axes of a channels-last tensor, with explicit pads.

    Covers what Keras' pooling layers cannot say: padding that is neither 'valid'
    nor TensorFlow's 'same', ONNX's ``ceil_mode`` (extra windows at the end) and
    ``count_include_pad``. ``pads`` gives [before, after] per spatial axis;
    ``extra`` the windows ``ceil_mode`` adds past the padded input, which never
    count as elements. Max pooling pads with -inf, so pads never win.
    """

    def __init__(self, mode: str, pool_size: Sequence[int], strides: Sequence[int], pads: Sequence[Sequence[int]],
                 extra: Sequence[int] | None = None, count_include_pad: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        _choice("mode", mode, {"MaxPool": None, "AveragePool": None})
        self.mode = mode
        self.pool_size = _ints("pool_size", pool_size)
        spatial = len(self.pool_size)
        if spatial not in (1, 2, 3):
            raise ValueError(f"pool_size must have 1 to 3 entries, got {pool_size!r}")
        self.strides = _ints("strides", strides, spatial)
        self.pads = _pairs("pads", pads)
        if len(self.pads) != spatial:
            raise ValueError(f"pads must have {spatial} pairs, got {pads!r}")
        self.extra = _ints("extra", extra if extra is not None else [0] * spatial, spatial)
        self.count_include_pad = bool(count_include_pad)

    def call(self, x: Any) -> Any:
        widths = [[0, 0]] + [[b, a + e] for (b, a), e in zip(self.pads, self.extra)] + [[0, 0]]
        if self.mode == "MaxPool":
            padded = ops.pad(x, widths, constant_values=float("-inf"))
            return ops.max_pool(padded, self.pool_size, self.strides, padding="valid", data_format="channels_last")
        sums = ops.average_pool(ops.pad(x, widths), self.pool_size, self.strides, padding="valid",
                                data_format="channels_last")
        ones = ops.ones_like(x[..., :1])
        if self.count_include_pad:
            inner = [[0, 0]] + [list(p) for p in self.pads] + [[0, 0]]
            ones = ops.pad(ones, inner, constant_values=1.0)
            outer = [[0, 0]] + [[0, e] for e in self.extra] + [[0, 0]]
        else:
            outer = widths
        counts = ops.average_pool(ops.pad(ones, outer), self.pool_size, self.strides, padding="valid",
                                  data_format="channels_last")
        return sums / counts

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode, "pool_size": self.pool_size, "strides": self.strides,
                "pads": self.pads, "extra": self.extra, "count_include_pad": self.count_include_pad}


@_register
class Pad(keras.layers.Layer):
    """ONNX Pad with fixed pads on any axes: constant (any value), reflect; negative pads crop."""

    def __init__(self, pads: Sequence[Sequence[int]], mode: str = "constant", value: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        _choice("mode", mode, {"constant": None, "reflect": None})
        self.mode = mode
        self.pads = _pairs("pads", pads)
        self.value = _number("value", value)

    def call(self, x: Any) -> Any:
        if any(b < 0 or a < 0 for b, a in self.pads):
            x = x[tuple(slice(-b if b < 0 else 0, a if a < 0 else None) for b, a in self.pads)]
        widths = [[max(b, 0), max(a, 0)] for b, a in self.pads]
        if self.mode == "constant":
            return ops.pad(x, widths, constant_values=self.value)
        return ops.pad(x, widths, mode=self.mode)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pads": self.pads, "mode": self.mode, "value": self.value}


# --------------------------------------------------------------------------- shapes and indexing


@_register
class Transpose(keras.layers.Layer):
    """Transpose including the batch axis (keras.layers.Permute keeps the batch axis first)."""

    def __init__(self, perm: Sequence[int], **kwargs: Any):
        super().__init__(**kwargs)
        self.perm = _ints("perm", perm)
        if sorted(self.perm) != list(range(len(self.perm))):
            raise ValueError(f"perm must be a permutation of 0..{len(self.perm) - 1}, got {perm!r}")

    def call(self, x: Any) -> Any:
        return ops.transpose(x, self.perm)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "perm": self.perm}


@_register
class Reshape(keras.layers.Layer):
    """Reshape to a full shape, batch axis included, with ONNX's 0 (copy) and -1 (infer) entries."""

    def __init__(self, shape: Sequence[int], **kwargs: Any):
        super().__init__(**kwargs)
        self.shape = _ints("shape", shape)
        if sum(1 for d in self.shape if d == -1) > 1 or any(d < -1 for d in self.shape):
            raise ValueError(f"shape may hold one -1 and no other negative entry, got {shape!r}")

    def call(self, x: Any) -> Any:
        source = ops.shape(x)
        target = [source[i] if d == 0 else d for i, d in enumerate(self.shape)]
        return ops.reshape(x, target)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "shape": self.shape}


@_register
class Slice(keras.layers.Layer):
    """x[starts:ends:steps] on the given axes (ONNX Slice and Split with constant bounds)."""

    def __init__(self, starts: Sequence[int], ends: Sequence[int], axes: Sequence[int], steps: Sequence[int],
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.axes = _ints("axes", axes)
        count = len(self.axes)
        self.starts = _ints("starts", starts, count)
        self.ends = _ints("ends", ends, count)
        self.steps = _ints("steps", steps, count)
        if 0 in self.steps:
            raise ValueError("steps may not be 0")

    def call(self, x: Any) -> Any:
        index: list[slice] = [slice(None)] * len(x.shape)
        for axis, start, end, step in zip(self.axes, self.starts, self.ends, self.steps):
            index[axis] = slice(start, end, step)
        return x[tuple(index)]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "starts": self.starts, "ends": self.ends, "axes": self.axes,
                "steps": self.steps}


_REDUCE: dict[str, Callable[[Any, tuple[int, ...], bool], Any]] = {
    "ReduceMean": lambda x, axes, keep: ops.mean(x, axis=axes, keepdims=keep),
    "ReduceSum": lambda x, axes, keep: ops.sum(x, axis=axes, keepdims=keep),
    "ReduceMax": lambda x, axes, keep: ops.max(x, axis=axes, keepdims=keep),
    "ReduceMin": lambda x, axes, keep: ops.min(x, axis=axes, keepdims=keep),
    "ReduceProd": lambda x, axes, keep: ops.prod(x, axis=axes, keepdims=keep),
    "ReduceL1": lambda x, axes, keep: ops.sum(ops.abs(x), axis=axes, keepdims=keep),
    "ReduceL2": lambda x, axes, keep: ops.sqrt(ops.sum(ops.square(x), axis=axes, keepdims=keep)),
    "ReduceSumSquare": lambda x, axes, keep: ops.sum(ops.square(x), axis=axes, keepdims=keep),
    "ReduceLogSum": lambda x, axes, keep: ops.log(ops.sum(x, axis=axes, keepdims=keep)),
    "ReduceLogSumExp": lambda x, axes, keep: ops.logsumexp(x, axis=axes, keepdims=keep),
}


@_register
class Reduce(keras.layers.Layer):
    """A reduction over ``axes`` (ReduceMean, ReduceSum, ReduceMax ... of ONNX)."""

    def __init__(self, op: str, axes: Sequence[int], keepdims: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self._fn = _choice("op", op, _REDUCE)
        self.op = op
        self.axes = _ints("axes", axes)
        self.keepdims = bool(keepdims)

    def call(self, x: Any) -> Any:
        return self._fn(x, tuple(self.axes), self.keepdims)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "op": self.op, "axes": self.axes, "keepdims": self.keepdims}


@_register
class Gather(keras.layers.Layer):
    """Take fixed ``indices`` (a nested list of ints) along ``axis`` (ONNX Gather with constant indices)."""

    def __init__(self, indices: Any, axis: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.indices = _nested_ints(indices)
        (self.axis,) = _ints("axis", [axis])

    def call(self, x: Any) -> Any:
        return ops.take(x, ops.convert_to_tensor(self.indices, dtype="int32"), axis=self.axis)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "indices": self.indices, "axis": self.axis}


def _nested_ints(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_nested_ints(v) for v in value]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"indices must be (nested lists of) integers, got {value!r}")
    return int(value)


_DTYPES = {name: name for name in ("float32", "float64", "float16", "int32", "int64", "int8", "uint8", "bool")}


@_register
class Cast(keras.layers.Layer):
    """Convert to ``to`` (a dtype name from a fixed list)."""

    def __init__(self, to: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.to = _choice("to", to, _DTYPES)

    def call(self, x: Any) -> Any:
        return ops.cast(x, self.to)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "to": self.to}
