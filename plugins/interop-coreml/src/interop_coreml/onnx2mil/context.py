"""State shared by op converters while one ONNX graph is translated to MIL.

Values are either MIL ``Var`` objects (computed at run time) or numpy arrays
(known at conversion time: initializers, folded constants). Keeping constants as
numpy lets converters read shapes, axes and pads directly, and MIL turns a numpy
array passed to a builder op into a ``const`` on its own.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import onnx
from coremltools.converters.mil.mil import Var, types
from coremltools.converters.mil.mil.types.symbolic import any_symbolic

from interop_coreml.onnx2mil.errors import NodeNotConvertible
from interop_coreml.onnx2mil.high_rank import HighRank
from interop_coreml.onnx2mil.symbolic import ShapeValue, SymbolicDims, constant_value

_INVALID = re.compile(r"[^A-Za-z0-9_]")

Value = Any  # Var | np.ndarray


def to_mil_constant(array: np.ndarray) -> np.ndarray:
    """Narrow a numpy constant to a dtype MIL computes in (int32, fp32, fp16, bool)."""
    array = np.asarray(array)
    if array.dtype == np.float64:
        return array.astype(np.float32)
    if array.dtype in (np.int64, np.uint64, np.uint32, np.int16, np.uint16, np.int8, np.uint8):
        info = np.iinfo(np.int32)
        # np.clip of a rank-0 array returns a numpy scalar, not an array: keep it an array.
        return np.asarray(np.clip(array, info.min, info.max).astype(np.int32))
    return array


class ConversionContext:
    """Name → value table plus naming helpers for one graph."""

    def __init__(self, opset: int, target: Any):
        self.opset = opset
        self.target = target
        self._values: dict[str, Value] = {}
        self._used_names: set[str] = set()
        self._mil_names: dict[str, str] = {}
        self.symbolic: dict[str, np.ndarray] = {}
        # ONNX name -> the MIL Var it became (run-time values only), recorded in the model's
        # metadata so a checker can pair intermediate values of the two copies (--locate).
        self.produced: dict[str, Var] = {}
        self.dims = SymbolicDims()

    # ------------------------------------------------------------------ values
    def set(self, onnx_name: str, value: Value) -> None:
        if isinstance(value, np.ndarray) or np.isscalar(value):
            value = to_mil_constant(np.asarray(value))
        elif isinstance(value, Var):
            self.produced[onnx_name] = value
        self._values[onnx_name] = value

    def has(self, onnx_name: str) -> bool:
        return onnx_name in self._values

    def get(self, onnx_name: str) -> Value:
        return self._values[onnx_name]

    def input(self, node: onnx.NodeProto, index: int, default: Value = None) -> Value:
        """The node's ``index``-th input, or ``default`` when absent or empty.

        A tensor of rank > 5 (:class:`~interop_coreml.onnx2mil.high_rank.HighRank`) is refused
        here: only the converters that rewrite such tensors read them, with :meth:`input_any`.
        """
        value = self.input_any(node, index, default)
        if isinstance(value, HighRank):
            raise NodeNotConvertible(
                f"input {node.input[index]!r} is a rank-{value.rank} tensor (from {value.origin}); Core ML "
                f"tensors have rank <= 5, and only Reshape/Transpose/Squeeze/Unsqueeze chains of such "
                f"tensors are rewritten, not {node.op_type}")
        return value

    def input_any(self, node: onnx.NodeProto, index: int, default: Value = None) -> Value:
        """The node's ``index``-th input, whatever its rank."""
        if index >= len(node.input) or node.input[index] == "":
            return default
        return self._values[node.input[index]]

    def const(self, node: onnx.NodeProto, index: int, default: Any = None) -> np.ndarray | None:
        """The input's value if known at conversion time, else ``default``."""
        value = self.input_any(node, index)
        if value is None or isinstance(value, HighRank):
            return default
        if isinstance(value, np.ndarray):
            return value
        if isinstance(value, Var) and value.val is not None and not any_symbolic(value.val):
            return np.asarray(value.val)
        return default

    def shape_value(self, node: onnx.NodeProto, index: int) -> ShapeValue | None:
        """What the input holds in terms of the model's dims (tracked, or a small constant), else None."""
        if index >= len(node.input) or not node.input[index]:
            return None
        tracked = self.dims.values.get(node.input[index])
        if tracked is not None:
            return tracked
        known = self.const(node, index)
        return constant_value(known) if known is not None else None

    def require_const(self, node: onnx.NodeProto, index: int, what: str) -> np.ndarray:
        value = self.const(node, index)
        if value is None:
            raise NodeNotConvertible(f"{what} (input {index}) must be a constant known at conversion time")
        return value

    def output(self, node: onnx.NodeProto, index: int, value: Value) -> None:
        """Bind the node's ``index``-th output."""
        if index < len(node.output) and node.output[index]:
            self.set(node.output[index], value)

    # ------------------------------------------------------------------- names
    def mil_name(self, onnx_name: str) -> str:
        """A unique, valid MIL identifier for an ONNX tensor name (stable per name)."""
        if onnx_name in self._mil_names:
            return self._mil_names[onnx_name]
        base = _INVALID.sub("_", onnx_name) or "t"
        if base[0].isdigit():
            base = "_" + base
        name, counter = base, 1
        while name in self._used_names:
            name = f"{base}_{counter}"
            counter += 1
        self._used_names.add(name)
        self._mil_names[onnx_name] = name
        return name

    def out_name(self, node: onnx.NodeProto, index: int = 0) -> str:
        return self.mil_name(node.output[index])


def rank(value: Value) -> int:
    return np.ndim(value) if isinstance(value, np.ndarray) else value.rank




def is_float(value: Value) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype.kind == "f"
    return types.is_float(value.dtype)


def is_bool(value: Value) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype == np.bool_
    return types.is_bool(value.dtype)
