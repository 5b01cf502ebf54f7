"""What a converter works with: the node's context, constants with their ONNX identity, and names.

:class:`NodeContext` is what every converter of :mod:`.ops` receives; :class:`Constant` a
constant tensor that remembers the initializer it is a view of; :class:`WeightBinding` a
Keras variable with the way back to its ONNX tensor. This module imports nothing of
:mod:`.builder` or :mod:`.ops` at run time, so the converters depend on it and the builder
on them, without a cycle.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from interop_keras.onnx_import import fold, layout
from interop_keras.onnx_import.layout import Perm, Value
from interop_keras.onnx_import.weights import CONSTANT

if TYPE_CHECKING:
    from interop_keras.onnx_import.builder import Importer


class NotConvertible(Exception):
    """A converter cannot express this node in Keras; ``reason`` says why (collected, exit 3)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Constant:
    """A constant tensor: an initializer, a Constant node, or a folded result.

    ``source`` names the initializer this is a view of (through Reshape/Transpose
    ...), with the view ``steps`` taken from it, so a weight keeps its identity
    and can be mapped back to the ONNX tensor. ``shape_of`` names the computed tensor
    whose whole shape this is (a Shape node's output, through Cast and Identity), so an
    Expand to it can broadcast against that tensor at run time.
    """

    value: np.ndarray
    source: str | None = None
    role: str = CONSTANT
    steps: tuple[tuple[str, Any], ...] = ()
    shape_of: str | None = None

    def to_source(self, array: np.ndarray) -> np.ndarray:
        """Undo the view steps: ``array`` shaped like ``value`` back to the source's shape."""
        for kind, argument in reversed(self.steps):
            array = array.reshape(argument) if kind == "reshape" else np.transpose(array, layout.inverse(argument))
        return array


@dataclass
class WeightBinding:
    """A Keras variable made from an ONNX initializer, and how to turn it back into that tensor."""

    onnx_name: str
    variable: Any
    role: str
    to_onnx: Callable[[np.ndarray], np.ndarray]

    def onnx_value(self) -> np.ndarray:
        return self.to_onnx(np.asarray(self.variable.numpy()))


# --------------------------------------------------------------------------- names

_PARAMETER_SUFFIX = re.compile(
    r"([._/](weight|weights|bias|biases|kernel|gamma|beta|scale|running_mean|running_var|moving_mean|"
    r"moving_variance|mean|var|w|b|s)(_\d+)?)$",
    re.IGNORECASE,
)
_TF_SUFFIX = re.compile(r"(/(ReadVariableOp|Cast|Read|read|Identity)(_\d+)?)+$")


_NAME_CHARACTER = re.compile(r"[^A-Za-z0-9_.\-]")


def sanitize(name: str) -> str:
    """A Keras layer or variable name for an ONNX name.

    Keras refuses '/' in names, and TensorFlow uses layer names as name scopes, which
    take letters, digits and ``_.-`` only (starting with a letter or digit): '/'
    becomes '.', anything else outside that set '_'.
    """
    cleaned = _NAME_CHARACTER.sub("_", name.replace("/", ".")).strip(".")
    if not cleaned:
        return "tensor"
    return cleaned if cleaned[0].isalnum() else f"t{cleaned}"


def weight_stem(name: str) -> str:
    """The layer part of a parameter's name: ``layer1.0.conv1.weight`` -> ``layer1.0.conv1``."""
    stem = name[:-2] if name.endswith(":0") else name
    stem = _TF_SUFFIX.sub("", stem)
    stripped = _PARAMETER_SUFFIX.sub("", stem)
    return stripped or stem


# --------------------------------------------------------------------------- converter context


class NodeContext:
    """What a converter sees: the node, its inputs as Keras values or constants, and helpers."""

    def __init__(self, importer: Importer, node: onnx.NodeProto, since: int):
        self.importer = importer
        self.node = node
        self.op_type = node.op_type
        self.since = since
        self.opset = importer.opset
        self.attrs = fold.attributes(node)

    # ---- attributes and inputs
    def attr(self, name: str, default: Any = None) -> Any:
        value = self.attrs.get(name, default)
        return value.decode() if isinstance(value, bytes) else value

    def has_input(self, index: int) -> bool:
        return index < len(self.node.input) and bool(self.node.input[index])

    def is_constant(self, index: int) -> bool:
        return self.has_input(index) and self.node.input[index] in self.importer.constants

    def value(self, index: int) -> Value:
        """Input ``index`` as a Keras tensor with its layout (constants are refused)."""
        name = self.node.input[index]
        if name in self.importer.constants:
            raise NotConvertible(f"input {index} ({name}) is a constant where Keras needs a computed tensor")
        return self.importer.values[name]

    def constant(self, index: int, what: str = "") -> Constant:
        """Input ``index`` as a constant (an initializer, a Constant node or a folded value)."""
        if not self.has_input(index):
            raise NotConvertible(f"input {index} {what} is missing")
        name = self.node.input[index]
        found = self.importer.constants.get(name)
        if found is None:
            label = f" ({what})" if what else ""
            raise NotConvertible(f"input {index}{label} is computed at run time; Keras needs it fixed")
        if fold.is_symbolic(found.value):
            raise NotConvertible(f"input {index} {what} depends on a dimension known only at run time")
        return found

    def ints(self, index: int, what: str, default: Sequence[int] | None = None) -> list[int] | None:
        """A constant integer vector input (shape, axes, pads ...), or ``default`` when absent."""
        if not self.has_input(index):
            return None if default is None else list(default)
        return [int(v) for v in self.constant(index, what).value.reshape(-1)]

    # ---- building
    def name(self, suffix: str = "", weights: Sequence[str] = ()) -> str:
        """A unique layer name from the node's weights (their common stem), name or output."""
        if weights:
            base = weight_stem(weights[0])
        else:
            base = self.node.name or self.node.output[0]
        return self.importer.unique_name(sanitize(base) + (f".{suffix}" if suffix else ""))

    def to_layout(self, value: Value, perm: Perm) -> Any:
        return self.importer.to_layout(value, perm)

    def with_sizes(self, value: Value, sizes: dict[int, int]) -> Value:
        """``value`` with the ONNX axes of ``sizes`` made static (Keras builds weights from static sizes).

        The graph knows a size at run time only (a symbolic channel count) while the
        weights fix it: a Reshape to the same shape tells Keras.
        """
        import keras

        from interop_keras import layers as interop_layers

        kshape = list(value.keras_shape)
        changed = False
        for axis, size in sizes.items():
            k = value.keras_axis(axis)
            if kshape[k] is None:
                kshape[k], changed = int(size), True
            elif kshape[k] != size:
                raise NotConvertible(f"axis {axis} has {kshape[k]} elements, the weights expect {size}")
        if not changed:
            return value
        rest = kshape[1:]
        if kshape[0] is None and sum(1 for d in rest if d is None) <= 1:
            layer = keras.layers.Reshape(tuple(-1 if d is None else d for d in rest), name=self.name("sized"))
        elif sum(1 for d in kshape if d is None) <= 1:
            layer = interop_layers.Reshape([-1 if d is None else d for d in kshape], name=self.name("sized"))
        else:
            raise NotConvertible("sizes the weights fix are known only at run time, and others too")
        return Value(layer(value.tensor), value.perm)

    def output(self, tensor: Any, perm: Perm, index: int = 0) -> None:
        self.importer.values[self.node.output[index]] = Value(tensor, tuple(perm))

    def output_constant(self, constant: Constant, index: int = 0) -> None:
        self.importer.constants[self.node.output[index]] = constant

    def bind(self, constant: Constant, variable: Any, to_source: Callable[[np.ndarray], np.ndarray]) -> None:
        """Record that ``variable`` holds ``constant`` (``to_source`` maps its value back)."""
        if constant.source is None:
            return
        role = constant.role

        def to_onnx(array: np.ndarray, _c: Constant = constant) -> np.ndarray:
            return _c.to_source(to_source(array))

        self.importer.bindings.append(WeightBinding(constant.source, variable, role, to_onnx))

    def note(self, text: str) -> None:
        if text not in self.importer.notes:
            self.importer.notes.append(text)
