"""Which initializers of an ONNX graph are weights, and fresh values for them (``interop train --reinit``).

The rule is the one the importers document (docs/training-elsewhere.md, "What is a weight"),
written here independently of both importers, so their tests compare with something they
did not compute (:func:`interop.testing.zoo.onnx_weight_count`), and ``--reinit`` re-draws
exactly the tensors an import trains. Only numpy and onnx are used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

_VIEWS = {"Identity", "Reshape", "Unsqueeze", "Squeeze", "Flatten", "Transpose"}
_PARAMETER_INPUTS = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (0, 1, 2), "MatMul": (0, 1),
    "BatchNormalization": (1, 2), "InstanceNormalization": (1, 2), "LayerNormalization": (1, 2),
    "GroupNormalization": (1, 2), "PRelu": (1,), "Gather": (0,),
}
_ARITHMETIC = {"Add", "Sub", "Mul", "Div", "Sum"}
_LINEAR = {"MatMul", "Gemm", "Conv", "ConvTranspose"}
_NORMS = {"BatchNormalization", "InstanceNormalization", "LayerNormalization", "GroupNormalization"}
_RECURRENT = {"LSTM", "GRU", "RNN"}
_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16)


@dataclass(frozen=True)
class WeightUse:
    """The first node that uses a weight, at which input, and (for a bias Add) the linear node before it."""

    node: onnx.NodeProto
    index: int
    after: onnx.NodeProto | None = None


def _float_constants(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    floats = {t.name: t for t in graph.initializer if t.data_type in _FLOAT_TYPES}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type in _FLOAT_TYPES:
                    floats[node.output[0]] = attr.t
    return floats


def onnx_weights(model: onnx.ModelProto) -> dict[str, WeightUse]:
    """The float constants an ONNX import must make trainable, by name, with their first use.

    Parameters of Conv/ConvTranspose/Gemm/MatMul, of the normalisations, PRelu's slope,
    the table of a Gather by computed indices; an Add's constant right after
    MatMul/Gemm/Conv (a bias); a constant of two or more finite elements that
    Add/Sub/Mul/Div/Sum applies to a value computed from weights (a per-channel scale
    or shift). Not: BatchNorm running statistics, shapes and indices, one-element
    factors, arithmetic on the inputs before any weight. Views (Reshape, Unsqueeze ...)
    of a constant are looked through.
    """
    graph = model.graph
    floats = _float_constants(graph)
    source = {name: name for name in floats}
    constant = set(source) | {t.name for t in graph.initializer} | {
        n.output[0] for n in graph.node if n.op_type == "Constant"}
    made_by: dict[str, onnx.NodeProto] = {}
    computed_from_weights: set[str] = set()
    weights: dict[str, WeightUse] = {}
    for node in graph.node:
        if node.op_type == "Constant":
            continue
        if all(not name or name in constant for name in node.input):
            constant.update(node.output)
            if node.op_type in _VIEWS and node.input and node.input[0] in source:
                source[node.output[0]] = source[node.input[0]]
            continue
        computed = [name for name in node.input if name and name not in constant]
        after_weight = any(name in computed_from_weights for name in computed)
        linear = next((made_by[n] for n in computed if n in made_by and made_by[n].op_type in _LINEAR), None)
        found = False
        for index, name in enumerate(node.input):
            if name not in source:
                continue
            value = numpy_helper.to_array(floats[source[name]])
            scale_or_shift = after_weight and value.size > 1 and bool(np.all(np.isfinite(value)))
            if index in _PARAMETER_INPUTS.get(node.op_type, ()) or (node.op_type in _ARITHMETIC and (
                    (node.op_type == "Add" and linear is not None) or scale_or_shift)):
                bias_of = linear if node.op_type == "Add" else None
                weights.setdefault(source[name], WeightUse(node, index, bias_of))
                found = True
        for out in node.output:
            made_by[out] = node
            if after_weight or found:
                computed_from_weights.add(out)
    return weights


def onnx_weight_count(model: onnx.ModelProto) -> int:
    """Elements of the weights :func:`onnx_weights` finds."""
    floats = _float_constants(model.graph)
    return sum(int(np.prod(floats[name].dims)) if floats[name].dims else 1 for name in onnx_weights(model))


def _attribute(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((int(onnx.helper.get_attribute_value(a)) for a in node.attribute if a.name == name), default)


def _fan_in(node: onnx.NodeProto, shapes: dict[str, tuple[int, ...]]) -> int | None:
    """Inputs per output of a linear node (the fan_in of the common initialisers), from the shape of its weight."""
    kind = node.op_type
    if kind in ("Conv", "ConvTranspose") and len(node.input) > 1 and node.input[1] in shapes:
        dims = shapes[node.input[1]]
        return int(np.prod(dims[1:])) if len(dims) > 1 else None
    if kind == "Gemm" and len(node.input) > 1 and node.input[1] in shapes:
        dims = shapes[node.input[1]]
        return dims[1] if _attribute(node, "transB", 0) else dims[0]
    if kind == "MatMul":
        if node.input[1] in shapes and len(shapes[node.input[1]]) >= 2:
            return shapes[node.input[1]][-2]
        if node.input[0] in shapes:
            return shapes[node.input[0]][-1]
    return None


def _fresh(use: WeightUse, shape: tuple[int, ...], shapes: dict[str, tuple[int, ...]],
           rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """New values for one weight and the rule used: the common default initialisation of the layer it belongs to."""
    node, index = use.node, use.index
    kind = node.op_type
    if kind in _NORMS:
        return (np.ones(shape), "ones") if index == 1 else (np.zeros(shape), "zeros")
    if kind == "PRelu":
        return np.full(shape, 0.25), "0.25"
    if kind == "Gather":
        return rng.standard_normal(shape), "normal(0, 1)"
    if kind in _LINEAR or use.after is not None:
        fan_in = _fan_in(use.after or node, shapes)
        if fan_in:
            bound = 1.0 / np.sqrt(fan_in)
            return rng.uniform(-bound, bound, shape), f"uniform(±1/sqrt({fan_in}))"
        return np.zeros(shape), "zeros"
    if kind in ("Mul", "Div"):
        return np.ones(shape), "ones"
    return np.zeros(shape), "zeros"  # a shift: Add, Sub, Sum


def reinitialized(model: onnx.ModelProto, seed: int) -> tuple[onnx.ModelProto, dict[str, str]]:
    """A copy whose weights are drawn afresh (seeded), and the rule used for each.

    Each weight gets the usual framework default for the layer it belongs to (uniform within
    ±1/sqrt(fan_in) for Conv/Gemm/MatMul weights and their biases; ones and zeros for a
    normalisation's scale and shift; N(0, 1) for an embedding table; 0.25 for a PRelu
    slope; ones and zeros for per-channel scales and shifts); BatchNorm running
    statistics restart at mean 0, variance 1; recurrent layers' W, R and B are uniform
    within ±1/sqrt(hidden_size). Everything else (shapes, input normalisation, ...)
    is kept: the architecture stays, the learned values go.
    """
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    rng = np.random.default_rng(seed)
    shapes = {t.name: tuple(int(d) for d in t.dims) for t in graph.initializer}
    uses = onnx_weights(copy)
    rules: dict[str, tuple[WeightUse | None, str]] = {name: (use, "") for name, use in uses.items()}
    for node in graph.node:
        if node.op_type == "BatchNormalization":
            for index, fill in ((3, "zeros"), (4, "ones")):
                if len(node.input) > index and node.input[index] in shapes:
                    rules.setdefault(node.input[index], (None, fill))
        if node.op_type in _RECURRENT:
            hidden = _attribute(node, "hidden_size", 0)
            for index in (1, 2, 3):
                if hidden and len(node.input) > index and node.input[index] in shapes:
                    rules.setdefault(node.input[index], (None, f"uniform(±1/sqrt({hidden}))"))
    used: dict[str, str] = {}
    for tensor in graph.initializer:
        if tensor.name not in rules or tensor.data_type not in _FLOAT_TYPES:
            continue
        use, rule = rules[tensor.name]
        shape = shapes[tensor.name]
        if use is not None:
            value, rule = _fresh(use, shape, shapes, rng)
        elif rule == "zeros":
            value = np.zeros(shape)
        elif rule == "ones":
            value = np.ones(shape)
        else:
            bound = 1.0 / np.sqrt(float(rule[len("uniform(±1/sqrt("):-2]))
            value = rng.uniform(-bound, bound, shape)
        dtype = numpy_helper.to_array(tensor).dtype
        tensor.CopyFrom(numpy_helper.from_array(value.astype(dtype), tensor.name))
        used[tensor.name] = rule
    return copy, used
