"""Which ONNX initializers are weights, which are statistics, which are plain constants.

The importer must decide, for every constant tensor of the graph, whether the
Keras model learns it. The decision follows the consumer (onnx2torch #194 shows
what goes wrong otherwise), looking through view operations (Identity, Reshape,
Unsqueeze, Squeeze, Flatten, Transpose) to where the value is really used:

- **weight** (a trainable variable): Conv/ConvTranspose kernel and bias, Gemm
  operands, MatMul's constant side, the scale and bias of BatchNormalization,
  InstanceNormalization, LayerNormalization and GroupNormalization, PRelu's
  slope, the table of a Gather with computed indices (an embedding), W, R and B of LSTM, GRU and RNN; the
  constant operand of Add/Sub/Mul/Div/Sum when the other operand is computed from
  weights and the constant has more than one element, all finite (a per-channel scale or
  shift, such as a folded BatchNormalization or a Caffe ``Scale``), and an Add's
  constant straight after MatMul, Gemm or Conv (a bias), whatever its size;
- **state** (a non-trainable variable): BatchNormalization's running mean and variance;
- **constant**: everything else — shapes, axes, indices, pads, clip bounds,
  exponents, one-element factors such as 0.5 or 1/255, and arithmetic applied to
  the input before any learned layer (normalisation with fixed statistics, as a
  Keras ``Normalization`` layer or a PyTorch buffer exports it).

A constant used in several places takes the strongest role (weight, then state).
Only floating-point tensors can be weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx

WEIGHT, STATE, CONSTANT = "weight", "state", "constant"
_STRENGTH = {CONSTANT: 0, STATE: 1, WEIGHT: 2}

VIEW_OPS = frozenset({"Identity", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Transpose"})
#: (op type) -> input positions that hold learned parameters when constant.
WEIGHT_INPUTS: Mapping[str, frozenset[int]] = {
    "Conv": frozenset({1, 2}),
    "ConvTranspose": frozenset({1, 2}),
    "Gemm": frozenset({0, 1, 2}),
    "MatMul": frozenset({0, 1}),
    "BatchNormalization": frozenset({1, 2}),
    "InstanceNormalization": frozenset({1, 2}),
    "LayerNormalization": frozenset({1, 2}),
    "GroupNormalization": frozenset({1, 2}),
    "PRelu": frozenset({1}),
    "Gather": frozenset({0}),
    "LSTM": frozenset({1, 2, 3}),
    "GRU": frozenset({1, 2, 3}),
    "RNN": frozenset({1, 2, 3}),
}
STATE_INPUTS: Mapping[str, frozenset[int]] = {"BatchNormalization": frozenset({3, 4})}
ARITHMETIC = frozenset({"Add", "Sub", "Mul", "Div", "Sum"})
BIAS_PRODUCERS = frozenset({"MatMul", "Gemm", "Conv", "ConvTranspose"})

_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}


@dataclass(frozen=True)
class Classification:
    """Roles of the graph's constant tensors, by the name of the initializer (or Constant output)."""

    roles: Mapping[str, str]
    sizes: Mapping[str, int]

    def names(self, role: str) -> list[str]:
        return [name for name, r in self.roles.items() if r == role]

    def count(self, role: str) -> int:
        """Number of elements in the tensors of ``role`` (the weight count for WEIGHT)."""
        return sum(self.sizes[name] for name in self.names(role))


def constant_tensors(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    """Initializers and the tensors of Constant nodes with a ``value`` attribute, by name."""
    tensors = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attr in node.attribute:
                if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                    tensors[node.output[0]] = attr.t
    return tensors


def classify(graph: onnx.GraphProto) -> Classification:
    """The role of every constant tensor of ``graph`` (see the module docstring)."""
    tensors = constant_tensors(graph)
    sizes = {name: int(np.prod(t.dims)) if t.dims else 1 for name, t in tensors.items()}
    finite: dict[str, bool] = {}

    def all_finite(name: str) -> bool:
        if name not in finite:
            from onnx import numpy_helper

            finite[name] = bool(np.all(np.isfinite(numpy_helper.to_array(tensors[name]))))
        return finite[name]

    floats = {name for name, t in tensors.items() if t.data_type in _FLOAT_TYPES}
    roles = {name: CONSTANT for name in tensors}
    origin: dict[str, str | None] = {name: name for name in tensors}  # constant tensor -> its source tensor
    element_count: dict[str, int] = dict(sizes)
    producer: dict[str, str] = {}
    learned: set[str] = set()

    for node in graph.node:
        if node.op_type == "Constant":
            continue
        inputs = [name for name in node.input]
        constant_inputs = [name for name in inputs if not name or name in origin]
        if len(constant_inputs) == len(inputs):
            # Folded at import: a view keeps pointing at its source, anything else is a new constant.
            keeps = node.op_type in VIEW_OPS and inputs and inputs[0]
            for out in node.output:
                origin[out] = origin[inputs[0]] if keeps else None
                element_count[out] = element_count.get(inputs[0], 0) if keeps else 0
            continue
        dynamic = [name for name in inputs if name and name not in origin]
        other_learned = any(name in learned for name in dynamic)
        after_bias_producer = any(producer.get(name) in BIAS_PRODUCERS for name in dynamic)
        uses_weight = False
        for index, name in enumerate(inputs):
            source = origin.get(name) if name else None
            if source is None or source not in floats:
                continue
            size = element_count.get(name, sizes[source])
            scale_or_shift = other_learned and size > 1 and node.op_type in ARITHMETIC and all_finite(source)
            role = _role(node.op_type, index, scale_or_shift, after_bias_producer)
            uses_weight = uses_weight or role == WEIGHT
            if _STRENGTH[role] > _STRENGTH[roles[source]]:
                roles[source] = role
        for out in node.output:
            producer[out] = node.op_type
            if other_learned or uses_weight:
                learned.add(out)
    return Classification(roles=roles, sizes=sizes)


def _role(op_type: str, index: int, scale_or_shift: bool, after_bias_producer: bool) -> str:
    if index in WEIGHT_INPUTS.get(op_type, ()):
        return WEIGHT
    if index in STATE_INPUTS.get(op_type, ()):
        return STATE
    if op_type in ARITHMETIC and (scale_or_shift or (op_type == "Add" and after_bias_producer)):
        return WEIGHT
    return CONSTANT


def weight_count(graph: onnx.GraphProto) -> int:
    """Elements of the tensors the importer makes trainable (the source's weight count)."""
    return classify(graph).count(WEIGHT)

