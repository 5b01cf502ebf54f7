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

import re
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
    # comparisons (a boolean result) and logic on booleans
    "Less": ops.less,
    "LessOrEqual": ops.less_equal,
    "Greater": ops.greater,
    "GreaterOrEqual": ops.greater_equal,
    "Equal": ops.equal,
    "And": ops.logical_and,
    "Or": ops.logical_or,
    "Xor": ops.logical_xor,
}

#: Dtypes a fixed constant is stored in: floats as float32, integers as themselves, booleans as int32
#: (cast to the other operand's dtype when used).
_CONSTANT_DTYPES = {name: name for name in ("float32", "int32", "int64")}


@_register
class Expand(keras.layers.Layer):
    """ONNX Expand: numpy broadcasting against a shape.

    Either the input broadcast against ``shape`` (fixed sizes; 1 where the input keeps its
    own size, such as the batch), or a fixed value (``scalar``, or a variable of
    ``constant_shape`` stored as ``constant_dtype``) broadcast against the input's shape
    and returned as ``to`` (``Expand(c, Shape(t))``: Keras' ``ones_like``).
    """

    def __init__(self, shape: Sequence[int] | None = None, scalar: Any = None,
                 constant_shape: Sequence[int] | None = None, constant_dtype: str = "float32", to: str = "float32",
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.constant_dtype = _choice("constant_dtype", constant_dtype, _CONSTANT_DTYPES)
        self.to = _choice("to", to, _DTYPES)
        self.shape = None if shape is None else _ints("shape", shape)
        self.scalar = _scalar(scalar, self.constant_dtype)
        self.constant_shape = None if constant_shape is None else _ints("constant_shape", constant_shape)
        if sum(v is not None for v in (self.shape, self.scalar, self.constant_shape)) != 1:
            raise ValueError("Expand takes one of shape, scalar and constant_shape")
        self.constant = None

    def build(self, input_shape: Any) -> None:
        if self.constant_shape is not None:
            self.constant = self.add_weight(name="constant", shape=tuple(self.constant_shape), initializer="zeros",
                                            trainable=False, dtype=self.constant_dtype)

    def call(self, x: Any) -> Any:
        if self.shape is not None:
            return ops.where(ops.ones(self.shape, dtype="bool"), x, x)
        fixed = ops.convert_to_tensor(self.scalar, dtype=self.constant_dtype) if self.constant is None \
            else self.constant
        fixed = ops.cast(fixed, self.to)
        return ops.where(ops.ones_like(x, dtype="bool"), fixed, fixed)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "shape": self.shape, "scalar": self.scalar,
                "constant_shape": self.constant_shape, "constant_dtype": self.constant_dtype, "to": self.to}


def _scalar(value: Any, dtype: str) -> int | float | None:
    """A one-element constant of the config: an integer for integer and boolean constants, else a float."""
    if value is None:
        return None
    if dtype == "float32":
        return _number("scalar", value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"scalar must be an integer for a {dtype} constant, got {value!r}")
    return int(value)


def _fixed_scalar(value: int | float, like: Any) -> Any:
    """``value`` as an operand of tensor ``like``: exact for integer and boolean tensors."""
    dtype = keras.backend.standardize_dtype(like.dtype)
    if "float" in dtype:
        return value
    if dtype == "bool":
        return ops.not_equal(ops.convert_to_tensor(int(value), dtype="int32"), 0)
    return ops.convert_to_tensor(int(value), dtype=dtype)


@_register
class ConstantOperand(keras.layers.Layer):
    """``x OP c`` (or ``c OP x``) with a constant ``c``: a trainable weight or a fixed value.

    ``c`` is a variable of ``constant_shape`` named after the ONNX initializer it
    came from (trainable when the importer classified it as a weight, such as a
    per-channel scale or a bias) or, for a one-element value, the number ``scalar``.
    ``constant_dtype`` is how an integer or boolean constant is stored (it is never
    trainable); it is cast to ``x``'s dtype, as ONNX gives both operands one type.
    """

    def __init__(self, op: str, constant_shape: Sequence[int] | None = None, scalar: float | None = None,
                 constant_first: bool = False, weight_name: str = "constant", trainable_constant: bool = True,
                 constant_dtype: str = "float32", **kwargs: Any):
        super().__init__(**kwargs)
        self._fn = _choice("op", op, _BINARY)
        self.op = op
        self.constant_dtype = _choice("constant_dtype", constant_dtype, _CONSTANT_DTYPES)
        self.scalar = _scalar(scalar, self.constant_dtype)
        if (constant_shape is None) == (self.scalar is None):
            raise ValueError("ConstantOperand takes either constant_shape or scalar")
        self.constant_shape = None if constant_shape is None else _ints("constant_shape", constant_shape)
        self.constant_first = bool(constant_first)
        if not isinstance(weight_name, str) or "/" in weight_name:
            raise ValueError(f"weight_name must be a name without '/', got {weight_name!r}")
        self.weight_name = weight_name
        self.trainable_constant = bool(trainable_constant) and self.constant_dtype == "float32"
        self.constant = None

    def build(self, input_shape: Any) -> None:
        if self.constant_shape is not None:
            self.constant = self.add_weight(
                name=self.weight_name, shape=tuple(self.constant_shape), initializer="zeros",
                trainable=self.trainable_constant, dtype=self.constant_dtype,
            )

    def call(self, x: Any) -> Any:
        c = _fixed_scalar(self.scalar, x) if self.constant is None else ops.cast(self.constant, x.dtype)
        return self._fn(c, x) if self.constant_first else self._fn(x, c)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "op": self.op, "constant_shape": self.constant_shape, "scalar": self.scalar,
                "constant_first": self.constant_first, "weight_name": self.weight_name,
                "trainable_constant": self.trainable_constant, "constant_dtype": self.constant_dtype}


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


_WHERE_OPERANDS = ("condition", "x", "y")


@_register
class Where(keras.layers.Layer):
    """ONNX Where: ``x`` where ``condition`` holds, else ``y``, with numpy broadcasting.

    Any operand may be fixed: ``scalars[i]`` a number, or ``constant_shapes[i]`` a
    non-trainable variable (named ``weight_names[i]``, stored as ``constant_dtypes[i]``);
    the computed operands are the layer's inputs, in order. A fixed condition is
    stored as int32 (nonzero is true); fixed ``x``/``y`` are cast to the computed
    branch's dtype, as ONNX gives both branches one type.
    """

    def __init__(self, scalars: Sequence[Any] = (None, None, None),
                 constant_shapes: Sequence[Sequence[int] | None] = (None, None, None),
                 constant_dtypes: Sequence[str] = ("int32", "float32", "float32"),
                 weight_names: Sequence[str | None] = (None, None, None), **kwargs: Any):
        super().__init__(**kwargs)
        if not all(isinstance(v, (list, tuple)) and len(v) == 3
                   for v in (scalars, constant_shapes, constant_dtypes, weight_names)):
            raise ValueError("Where takes three entries per operand list (condition, x, y)")
        self.constant_dtypes = [_choice("constant_dtypes", d, _CONSTANT_DTYPES) for d in constant_dtypes]
        self.scalars = [_scalar(v, d) for v, d in zip(scalars, self.constant_dtypes)]
        self.constant_shapes = [None if s is None else _ints("constant_shapes", s) for s in constant_shapes]
        for name in weight_names:
            if name is not None and (not isinstance(name, str) or "/" in name):
                raise ValueError(f"weight_names must be names without '/', got {name!r}")
        self.weight_names = list(weight_names)
        if all(s is not None or c is not None for s, c in zip(self.scalars, self.constant_shapes)):
            raise ValueError("Where needs at least one computed operand")
        if any(s is not None and c is not None for s, c in zip(self.scalars, self.constant_shapes)):
            raise ValueError("an operand of Where is either a scalar or a constant of a shape")
        self.constants: list[Any] = [None, None, None]

    def build(self, input_shape: Any) -> None:
        for i, shape in enumerate(self.constant_shapes):
            if shape is not None:
                self.constants[i] = self.add_weight(
                    name=self.weight_names[i] or f"{_WHERE_OPERANDS[i]}_constant", shape=tuple(shape),
                    initializer="zeros", trainable=False, dtype=self.constant_dtypes[i],
                )

    def call(self, inputs: Any) -> Any:
        computed = iter(inputs if isinstance(inputs, (list, tuple)) else [inputs])
        operands: list[Any] = []
        for i in range(3):
            if self.scalars[i] is None and self.constants[i] is None:
                operands.append(next(computed))
            else:
                operands.append(None)
        branch = operands[1] if operands[1] is not None else operands[2]
        for i in range(3):
            if operands[i] is not None:
                continue
            if i == 0:
                fixed = self.scalars[0] if self.constants[0] is None else self.constants[0]
                operands[0] = ops.not_equal(ops.convert_to_tensor(fixed, dtype="int32"), 0)
            elif branch is None:  # both branches fixed: they keep their stored dtype
                fixed = self.scalars[i] if self.constants[i] is None else self.constants[i]
                operands[i] = ops.convert_to_tensor(fixed, dtype=self.constant_dtypes[i])
            elif self.constants[i] is not None:
                operands[i] = ops.cast(self.constants[i], branch.dtype)
            else:
                operands[i] = _fixed_scalar(self.scalars[i], branch)
        condition = operands[0]
        if keras.backend.standardize_dtype(condition.dtype) != "bool":
            condition = ops.not_equal(condition, 0)
        return ops.where(condition, operands[1], operands[2])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "scalars": self.scalars, "constant_shapes": self.constant_shapes,
                "constant_dtypes": self.constant_dtypes, "weight_names": self.weight_names}


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
    "Not": lambda x, a, b: ops.logical_not(x),
    "IsNaN": lambda x, a, b: ops.isnan(x),
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
    """ONNX Pad with fixed pads on any axes: constant (any value), reflect, edge, wrap; negative pads crop."""

    def __init__(self, pads: Sequence[Sequence[int]], mode: str = "constant", value: float = 0.0, **kwargs: Any):
        super().__init__(**kwargs)
        _choice("mode", mode, {"constant": None, "reflect": None, "edge": None, "wrap": None})
        self.mode = mode
        self.pads = _pairs("pads", pads)
        self.value = _number("value", value)

    def call(self, x: Any) -> Any:
        if any(b < 0 or a < 0 for b, a in self.pads):
            x = x[tuple(slice(-b if b < 0 else 0, a if a < 0 else None) for b, a in self.pads)]
        widths = [[max(b, 0), max(a, 0)] for b, a in self.pads]
        if self.mode == "constant":
            return ops.pad(x, widths, constant_values=self.value)
        if self.mode == "reflect":
            return ops.pad(x, widths, mode=self.mode)
        # TensorFlow pads with constants and mirrors only: edge and wrap are slices put together.
        for axis, (before, after) in enumerate(widths):
            if not before and not after:
                continue
            index: list[slice] = [slice(None)] * len(x.shape)

            def part(start: int | None, end: int | None, _axis: int = axis, _index: list = index) -> Any:
                cut = list(_index)
                cut[_axis] = slice(start, end)
                return x[tuple(cut)]

            if self.mode == "edge":
                head = [ops.repeat(part(0, 1), before, axis=axis)] if before else []
                tail = [ops.repeat(part(-1, None), after, axis=axis)] if after else []
            else:  # wrap: the other end of the axis comes round
                head = [part(-before, None)] if before else []
                tail = [part(0, after)] if after else []
            x = ops.concatenate([*head, x, *tail], axis=axis)
        return x

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
    """Reshape to a full shape, batch axis included, with ONNX's 0 (copy) and -1 (infer) entries.

    ``sizes`` gives entries known only at run time: ``[index, factor, [[ref, axis], ...]]`` makes
    ``shape[index]`` the factor times the product of those axes' sizes of the reference tensors
    (the layer's inputs after the first): a sequence-first model's batch, read from its input.
    """

    def __init__(self, shape: Sequence[int], sizes: Sequence[Any] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.shape = _ints("shape", shape)
        if sum(1 for d in self.shape if d == -1) > 1 or any(d < -1 for d in self.shape):
            raise ValueError(f"shape may hold one -1 and no other negative entry, got {shape!r}")
        self.sizes = None if sizes is None else [_run_time_size(entry, len(self.shape)) for entry in sizes]

    def call(self, inputs: Any) -> Any:
        x, refs = (inputs[0], inputs[1:]) if self.sizes is not None else (inputs, [])
        source = ops.shape(x)
        target = [source[i] if d == 0 else d for i, d in enumerate(self.shape)]
        for index, factor, axes in self.sizes or []:
            size: Any = factor
            for ref, axis in axes:
                size = size * ops.shape(refs[ref])[axis]
            target[index] = size
        return ops.reshape(x, target)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "shape": self.shape, "sizes": self.sizes}


def _run_time_size(entry: Any, rank: int) -> list[Any]:
    if not isinstance(entry, (list, tuple)) or len(entry) != 3 or not isinstance(entry[2], (list, tuple)):
        raise ValueError(f"sizes entries must be [index, factor, [[ref, axis], ...]], got {entry!r}")
    index, factor = _ints("sizes", entry[:2])
    if not 0 <= index < rank:
        raise ValueError(f"sizes index {index} is outside the shape")
    return [index, factor, [_ints("sizes", pair, 2) for pair in entry[2]]]


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


@_register
class SizeOneAxes(keras.layers.Layer):
    """Drop the size-1 axes ``remove`` and append ``append`` size-1 axes (Squeeze/Unsqueeze in any layout)."""

    def __init__(self, remove: Sequence[int], append: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        self.remove = _ints("remove", remove)
        (self.append,) = _ints("append", [append])
        if self.append < 0:
            raise ValueError(f"append must not be negative, got {append!r}")

    def call(self, x: Any) -> Any:
        if self.remove:
            x = ops.squeeze(x, axis=tuple(self.remove))
        for _ in range(self.append):
            x = ops.expand_dims(x, -1)
        return x

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "remove": self.remove, "append": self.append}


# --------------------------------------------------------------------------- ordering, indexing, rearranging


class _FixedOperands(keras.layers.Layer):
    """A layer whose operands may be fixed arrays: ``fixed_shapes[i]`` (with ``fixed_dtypes[i]``) makes
    operand ``i`` a non-trainable variable; the other operands are the layer's inputs, in order."""

    operand_names: tuple[str, ...] = ()

    def __init__(self, fixed_shapes: Sequence[Sequence[int] | None] | None = None,
                 fixed_dtypes: Sequence[str] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        count = len(self.operand_names)
        shapes = list(fixed_shapes) if fixed_shapes is not None else [None] * count
        dtypes = list(fixed_dtypes) if fixed_dtypes is not None else ["float32"] * count
        if len(shapes) != count or len(dtypes) != count:
            raise ValueError(f"{type(self).__name__} takes {count} entries per operand list")
        self.fixed_shapes = [None if shape is None else _ints("fixed_shapes", shape) for shape in shapes]
        self.fixed_dtypes = [_choice("fixed_dtypes", d, _CONSTANT_DTYPES) for d in dtypes]
        if all(shape is not None for shape in self.fixed_shapes):
            raise ValueError(f"{type(self).__name__} needs at least one computed operand")
        self.fixed: list[Any] = [None] * count

    def build(self, input_shape: Any) -> None:
        for i, shape in enumerate(self.fixed_shapes):
            if shape is not None:
                self.fixed[i] = self.add_weight(name=f"{self.operand_names[i]}_constant", shape=tuple(shape),
                                                initializer="zeros", trainable=False, dtype=self.fixed_dtypes[i])

    def operands(self, inputs: Any) -> list[Any]:
        computed = iter(inputs if isinstance(inputs, (list, tuple)) else [inputs])
        return [next(computed) if variable is None else ops.convert_to_tensor(variable) for variable in self.fixed]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "fixed_shapes": self.fixed_shapes, "fixed_dtypes": self.fixed_dtypes}


def _positive(indices: Any, size: Any) -> Any:
    """ONNX indices may count from the end: -1 is the last element."""
    indices = ops.cast(indices, "int32")
    return ops.where(indices < 0, indices + ops.cast(size, "int32"), indices)


@_register
class TopK(keras.layers.Layer):
    """ONNX TopK: the ``k`` largest (or smallest) along ``axis``, sorted, equal values in index order;
    returns the values and their int64 indices."""

    def __init__(self, k: int, axis: int = -1, largest: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        (self.k,) = _ints("k", [k])
        (self.axis,) = _ints("axis", [axis])
        self.largest = bool(largest)

    def call(self, x: Any) -> Any:
        rank = len(x.shape)
        axis = self.axis % rank
        order = [a for a in range(rank) if a != axis] + [axis]
        moved = ops.transpose(x, order) if axis != rank - 1 else x
        # top_k keeps the lower index first among equal values; negating finds the smallest.
        values, indices = ops.top_k(moved if self.largest else -moved, self.k, sorted=True)
        if not self.largest:
            values = -values
        back = [order.index(a) for a in range(rank)]
        if axis != rank - 1:
            values, indices = ops.transpose(values, back), ops.transpose(indices, back)
        return values, ops.cast(indices, "int64")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "k": self.k, "axis": self.axis, "largest": self.largest}


@_register
class CumSum(keras.layers.Layer):
    """ONNX CumSum along ``axis``: ``exclusive`` leaves each element out of its own sum, ``reverse``
    sums from the end."""

    def __init__(self, axis: int, exclusive: bool = False, reverse: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        (self.axis,) = _ints("axis", [axis])
        self.exclusive = bool(exclusive)
        self.reverse = bool(reverse)

    def call(self, x: Any) -> Any:
        axis = self.axis % len(x.shape)
        if self.reverse:
            x = ops.flip(x, axis=axis)
        if self.exclusive:  # shift by one: the sums of the elements before each one, exactly
            widths = [[0, 0]] * len(x.shape)
            widths[axis] = [1, 0]
            index: list[slice] = [slice(None)] * len(x.shape)
            index[axis] = slice(0, -1)
            x = ops.pad(x, widths)[tuple(index)]
        out = ops.cumsum(x, axis=axis)
        return ops.flip(out, axis=axis) if self.reverse else out

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis, "exclusive": self.exclusive, "reverse": self.reverse}


@_register
class Trilu(keras.layers.Layer):
    """ONNX Trilu: keep the upper (or lower) triangle of the matrices on ``row_axis`` x ``col_axis``,
    from diagonal ``k`` on; the rest is zero."""

    def __init__(self, upper: bool = True, k: int = 0, row_axis: int = -2, col_axis: int = -1, **kwargs: Any):
        super().__init__(**kwargs)
        self.upper = bool(upper)
        (self.k, self.row_axis, self.col_axis) = _ints("k, row_axis, col_axis", [k, row_axis, col_axis])

    def call(self, x: Any) -> Any:
        rank = len(x.shape)
        shape = ops.shape(x)
        row_axis, col_axis = self.row_axis % rank, self.col_axis % rank
        rows = ops.arange(shape[row_axis], dtype="int32")
        cols = ops.arange(shape[col_axis], dtype="int32")
        rows = ops.reshape(rows, [-1 if a == row_axis else 1 for a in range(rank)])
        cols = ops.reshape(cols, [-1 if a == col_axis else 1 for a in range(rank)])
        keep = cols - rows >= self.k if self.upper else cols - rows <= self.k
        return ops.where(keep, x, ops.zeros_like(x))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "upper": self.upper, "k": self.k, "row_axis": self.row_axis,
                "col_axis": self.col_axis}


_DEPTH_MODES = {"DCR": None, "CRD": None}


@_register
class DepthToSpace(keras.layers.Layer):
    """ONNX DepthToSpace on a channels-last image: channel blocks become ``block`` x ``block`` pixels.

    ``DCR`` (depth, column, row: TensorFlow's order) or ``CRD`` (PyTorch's ``pixel_shuffle``).
    """

    def __init__(self, block: int, mode: str = "DCR", **kwargs: Any):
        super().__init__(**kwargs)
        (self.block,) = _ints("block", [block])
        _choice("mode", mode, _DEPTH_MODES)
        self.mode = mode

    def call(self, x: Any) -> Any:
        b = self.block
        shape = ops.shape(x)
        height, width, channels = shape[1], shape[2], x.shape[3] // (b * b)
        if self.mode == "DCR":
            x = ops.reshape(x, [-1, height, width, b, b, channels])
            x = ops.transpose(x, [0, 1, 3, 2, 4, 5])
        else:
            x = ops.reshape(x, [-1, height, width, channels, b, b])
            x = ops.transpose(x, [0, 1, 4, 2, 5, 3])
        return ops.reshape(x, [-1, height * b, width * b, channels])

    def compute_output_shape(self, input_shape: Any) -> Any:
        n, h, w, c = input_shape
        b = self.block
        return (n, None if h is None else h * b, None if w is None else w * b, c // (b * b))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "block": self.block, "mode": self.mode}


@_register
class SpaceToDepth(keras.layers.Layer):
    """ONNX SpaceToDepth on a channels-last image: ``block`` x ``block`` pixels become channels."""

    def __init__(self, block: int, **kwargs: Any):
        super().__init__(**kwargs)
        (self.block,) = _ints("block", [block])

    def call(self, x: Any) -> Any:
        b = self.block
        shape = ops.shape(x)
        height, width, channels = shape[1] // b, shape[2] // b, x.shape[3]
        x = ops.reshape(x, [-1, height, b, width, b, channels])
        x = ops.transpose(x, [0, 1, 3, 2, 4, 5])
        return ops.reshape(x, [-1, height, width, b * b * channels])

    def compute_output_shape(self, input_shape: Any) -> Any:
        n, h, w, c = input_shape
        b = self.block
        return (n, None if h is None else h // b, None if w is None else w // b, c * b * b)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "block": self.block}


@_register
class GatherElements(_FixedOperands):
    """ONNX GatherElements: ``out[i][j][k] = data[index[i][j][k]][j][k]`` along ``axis``."""

    operand_names = ("data", "indices")

    def __init__(self, axis: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        (self.axis,) = _ints("axis", [axis])

    def call(self, inputs: Any) -> Any:
        data, indices = self.operands(inputs)
        rank = len(data.shape)
        axis = self.axis % rank
        data_shape, index_shape = ops.shape(data), ops.shape(indices)
        indices = _positive(indices, data_shape[axis])
        # The output has the indices' shape: on the other axes they may be shorter than the data
        # (ONNX does not broadcast them), so the data is cut to them.
        data = ops.slice(data, [0] * rank, [data_shape[a] if a == axis else index_shape[a] for a in range(rank)])
        return ops.take_along_axis(data, indices, axis=axis)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis}


def _flat_indices(indices: Any, sizes: Sequence[Any]) -> Any:
    """Row-major positions of the index tuples on the last axis of ``indices`` in axes of ``sizes``."""
    flat = None
    for j, size in enumerate(sizes):
        entry = _positive(indices[..., j], size)
        flat = entry if flat is None else flat * ops.cast(size, "int32") + entry
    return flat


@_register
class GatherND(_FixedOperands):
    """ONNX GatherND: index tuples (the last axis of ``indices``) pick elements or slices of ``data``;
    the first ``batch_dims`` axes are shared by both."""

    operand_names = ("data", "indices")

    def __init__(self, batch_dims: int = 0, **kwargs: Any):
        super().__init__(**kwargs)
        (self.batch_dims,) = _ints("batch_dims", [batch_dims])

    def call(self, inputs: Any) -> Any:
        data, indices = self.operands(inputs)
        b, m = self.batch_dims, int(indices.shape[-1])
        data_shape, index_shape = ops.shape(data), ops.shape(indices)
        batch = [data_shape[i] for i in range(b)]
        indexed = [data_shape[b + j] for j in range(m)]
        rest = [data_shape[i] for i in range(b + m, len(data.shape))]
        flat_data = ops.reshape(data, [-1, _prod(indexed), *rest])  # batch axes merged, indexed axes merged
        flat = ops.reshape(_flat_indices(indices, indexed), [ops.shape(flat_data)[0], -1])
        picked = ops.take_along_axis(flat_data, ops.reshape(flat, [*ops.shape(flat), *([1] * len(rest))]), axis=1)
        return ops.reshape(picked, [*batch, *[index_shape[i] for i in range(b, len(indices.shape) - 1)], *rest])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "batch_dims": self.batch_dims}


def _prod(sizes: Sequence[Any]) -> Any:
    out: Any = 1
    for size in sizes:
        out = out * size
    return out


_SCATTER_REDUCTIONS = {"none": None, "add": "add", "mul": "mul", "max": "max", "min": "min"}


@_register
class ScatterND(_FixedOperands):
    """ONNX ScatterND: a copy of ``data`` with the elements or slices the index tuples name replaced
    by ``updates`` (or combined with them: ``reduction`` add, mul, max, min)."""

    operand_names = ("data", "indices", "updates")

    def __init__(self, reduction: str = "none", **kwargs: Any):
        super().__init__(**kwargs)
        _choice("reduction", reduction, _SCATTER_REDUCTIONS)
        self.reduction = reduction

    def call(self, inputs: Any) -> Any:
        data, indices, updates = self.operands(inputs)
        m = int(indices.shape[-1])
        data_shape = ops.shape(data)
        columns = [_positive(indices[..., j], data_shape[j]) for j in range(m)]
        tuples = ops.reshape(ops.stack(columns, axis=-1), [-1, m])
        rest = [data_shape[i] for i in range(m, len(data.shape))]
        flat_updates = ops.reshape(ops.cast(updates, data.dtype), [-1, *rest])
        return ops.scatter_update(data, tuples, flat_updates, reduction=_SCATTER_REDUCTIONS[self.reduction])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "reduction": self.reduction}


@_register
class ScatterElements(_FixedOperands):
    """ONNX ScatterElements: ``out[index[i][j]][j] = updates[i][j]`` along ``axis`` (or combined:
    ``reduction`` add, mul, max, min)."""

    operand_names = ("data", "indices", "updates")

    def __init__(self, axis: int = 0, reduction: str = "none", **kwargs: Any):
        super().__init__(**kwargs)
        (self.axis,) = _ints("axis", [axis])
        _choice("reduction", reduction, _SCATTER_REDUCTIONS)
        self.reduction = reduction

    def call(self, inputs: Any) -> Any:
        data, indices, updates = self.operands(inputs)
        rank = len(data.shape)
        axis = self.axis % rank
        index_shape = ops.shape(indices)
        indices = _positive(indices, ops.shape(data)[axis])
        # Every element of indices names one element of data: its own position, with the axis replaced.
        columns = []
        for a in range(rank):
            if a == axis:
                columns.append(indices)
            else:
                position = ops.reshape(ops.arange(index_shape[a], dtype="int32"),
                                       [-1 if i == a else 1 for i in range(rank)])
                columns.append(ops.broadcast_to(position, index_shape))
        tuples = ops.reshape(ops.stack(columns, axis=-1), [-1, rank])
        flat_updates = ops.reshape(ops.cast(updates, data.dtype), [-1])
        return ops.scatter_update(data, tuples, flat_updates, reduction=_SCATTER_REDUCTIONS[self.reduction])

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "axis": self.axis, "reduction": self.reduction}


_EQUATION = re.compile(r"^[A-Za-z.]*(,[A-Za-z.]*)*(->[A-Za-z.]*)?$")


@_register
class Einsum(_FixedOperands):
    """ONNX Einsum: ``keras.ops.einsum`` of the equation (letters, ``...``, commas and ``->`` only)."""

    def __init__(self, equation: str, **kwargs: Any):
        if not isinstance(equation, str) or not _EQUATION.match(equation.replace("...", ".")) \
                or "." in equation.replace("...", ""):
            raise ValueError(f"equation must be an einsum equation, got {equation!r}")
        self.equation = equation
        self.operand_names = tuple(f"operand{i}" for i in range(equation.split("->")[0].count(",") + 1))
        super().__init__(**kwargs)

    def call(self, inputs: Any) -> Any:
        return ops.einsum(self.equation, *self.operands(inputs))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "equation": self.equation}
