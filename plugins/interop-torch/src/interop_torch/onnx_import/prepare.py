"""Reading an ONNX graph before conversion: constants, shapes, and what every initializer is.

Every initializer (and every ``Constant`` node's tensor) is classified by its consumers,
the way STYLE.md's "Importers" section asks:

``weight``
    a trainable parameter: Conv/ConvTranspose W and B, Gemm's constant operands, MatMul's
    constant side (and the bias an ``Add`` right after it adds), the scale and bias of
    BatchNormalization/InstanceNormalization/LayerNormalization/GroupNormalization, PRelu's
    slope, an embedding table (``Gather`` of a constant float table by computed indices),
    and a float tensor of two or more finite elements that element-wise arithmetic applies
    to a value computed from weights (per-channel scales and shifts, such as a BatchNorm
    folded into ``Mul``/``Add`` by an exporter);
``statistic``
    BatchNormalization's running mean and variance: buffers that train mode updates;
``constant``
    everything else: shapes, axes, indices, pads, scalars, and float tensors applied to the
    graph inputs before any weight (input normalisation such as ``(x - mean) / std``).

A weight may reach its consumer through reshaping ops (``Transpose``, ``Reshape``,
``Unsqueeze``, ``Squeeze``, ``Identity``, ``Cast``, ``Flatten``) when each step has a single
consumer; such a chain is folded into the parameter, which keeps the initializer's name and
element count. The option ``trainable="all"`` makes every float initializer of two or more
finite elements that is not a statistic a weight.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

#: Ops a weight may pass through on its way to the consumer that decides its role.
PASS_THROUGH = frozenset({"Identity", "Cast", "Transpose", "Reshape", "Unsqueeze", "Squeeze", "Flatten"})
#: (op_type -> input slots) holding trainable weights whenever the operand is a float constant.
WEIGHT_SLOTS = {
    "Conv": (1, 2), "ConvTranspose": (1, 2), "Gemm": (0, 1, 2), "BatchNormalization": (1, 2),
    "InstanceNormalization": (1, 2), "LayerNormalization": (1, 2), "GroupNormalization": (1, 2),
    "RMSNormalization": (1,), "PRelu": (1,), "MatMul": (0, 1), "LSTM": (1, 2, 3), "GRU": (1, 2, 3), "RNN": (1, 2, 3),
}
STATISTIC_SLOTS = {"BatchNormalization": (3, 4)}
#: Element-wise ops whose float constant operand is a weight when applied to a weight-derived value.
AFFINE_OPS = frozenset({"Add", "Sub", "Mul", "Div"})
TRAINABLE_MODES = ("auto", "all")


@dataclass
class Initializer:
    """A constant tensor of the graph (an initializer or a Constant node's value)."""

    name: str
    array: np.ndarray
    role: str = "constant"  # weight | statistic | constant
    folded_into: str | None = None  # the value a pass-through chain turns it into
    transform: list[str] = field(default_factory=list)
    uses: int = 0  # nodes reading it (through Identity); a layer may own it only when this is 1


@dataclass
class PreparedGraph:
    model: onnx.ModelProto
    opset: int
    initializers: dict[str, Initializer]  # by the value holding the (folded) array its consumers see
    inputs: list[onnx.ValueInfoProto]
    outputs: list[onnx.ValueInfoProto]
    types: dict[str, tuple[int, tuple[Any, ...] | None]]  # value -> (elem_type, dims or None)
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]]
    skipped: set[int]  # ids of nodes folded into a weight

    def weight_count(self) -> int:
        """Elements of the initializers classified as weights (what training can change)."""
        return sum(int(init.array.size) for init in self.initializers.values() if init.role == "weight")


def default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return 1


def _value_types(model: onnx.ModelProto) -> dict[str, tuple[int, tuple[Any, ...] | None]]:
    types: dict[str, tuple[int, tuple[Any, ...] | None]] = {}
    graph = model.graph
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if not value.type.HasField("tensor_type"):
            continue
        tensor = value.type.tensor_type
        dims = None
        if tensor.HasField("shape"):
            dims = tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim)
        types[value.name] = (tensor.elem_type, dims)
    return types


def infer_types(model: onnx.ModelProto) -> dict[str, tuple[int, tuple[Any, ...] | None]]:
    """Element types and shapes of every value ONNX shape inference can tell (best effort)."""
    # Inference serialises the model: leave big weights out (declared as inputs of the same type),
    # keeping the small constants whose values shape arithmetic needs.
    light = onnx.ModelProto()
    light.CopyFrom(model) if not model.graph.initializer else _without_big_initializers(model, light)
    try:
        inferred = onnx.shape_inference.infer_shapes(light, check_type=False, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - an unknown op stops inference; converters then see less
        inferred = model
    return _value_types(inferred)


def _without_big_initializers(model: onnx.ModelProto, light: onnx.ModelProto) -> None:
    light.ir_version = max(model.ir_version, 4)
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    graph = light.graph
    graph.name = model.graph.name
    graph.node.extend(model.graph.node)
    graph.output.extend(model.graph.output)
    graph.value_info.extend(model.graph.value_info)
    names = {i.name for i in model.graph.input}
    graph.input.extend(model.graph.input)
    for tensor in model.graph.initializer:
        size = int(np.prod(tensor.dims)) if tensor.dims else 1
        if size <= 4096:
            graph.initializer.append(tensor)
        elif tensor.name not in names:
            graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))


def _constant_node_value(node: onnx.NodeProto) -> np.ndarray | None:
    for attr in node.attribute:
        if attr.name == "value":
            return numpy_helper.to_array(attr.t)
        if attr.name == "value_float":
            return np.array(attr.f, dtype=np.float32)
        if attr.name == "value_floats":
            return np.array(list(attr.floats), dtype=np.float32)
        if attr.name == "value_int":
            return np.array(attr.i, dtype=np.int64)
        if attr.name == "value_ints":
            return np.array(list(attr.ints), dtype=np.int64)
    return None


def _is_float(array: np.ndarray) -> bool:
    return array.dtype.kind == "f"


def _learnable(array: np.ndarray) -> bool:
    return _is_float(array) and array.size >= 2 and bool(np.isfinite(array).all())


def prepare(model: onnx.ModelProto, trainable: str = "auto") -> PreparedGraph:
    """Constants, value types, consumers and the role of every initializer."""
    if trainable not in TRAINABLE_MODES:
        raise ValueError(f"trainable must be one of {', '.join(TRAINABLE_MODES)}, got {trainable!r}")
    graph = model.graph
    opset = default_opset(model)
    inits: dict[str, Initializer] = {}
    for tensor in graph.initializer:
        inits[tensor.name] = Initializer(tensor.name, numpy_helper.to_array(tensor))
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
            value = _constant_node_value(node)
            if value is not None:
                inits[node.output[0]] = Initializer(node.output[0], value)
    # IR < 4 lists initializers among the inputs (as defaults); they are constants here.
    inputs = [v for v in graph.input if v.name not in inits]
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = collections.defaultdict(list)
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name:
                consumers[name].append((node, index))
    graph_outputs = {v.name for v in graph.output}

    # Follow each constant through single-consumer reshaping ops to the value its consumers see.
    chains: dict[str, list[onnx.NodeProto]] = {}
    for name, init in inits.items():
        chain: list[onnx.NodeProto] = []
        current = name
        while current not in graph_outputs and len(consumers.get(current, ())) == 1:
            node, index = consumers[current][0]
            if node.op_type not in PASS_THROUGH or index != 0 or len(node.output) != 1:
                break
            if any(other and other not in inits for other in node.input[1:]):
                break
            chain.append(node)
            current = node.output[0]
        chains[name] = chain
        init.folded_into = current

    def role_at(value: str) -> str:
        roles = set()
        for node, index in consumers.get(value, ()):
            if index in STATISTIC_SLOTS.get(node.op_type, ()):
                roles.add("statistic")
            elif index in WEIGHT_SLOTS.get(node.op_type, ()):
                if node.op_type == "MatMul" and all(n in inits for n in node.input):
                    continue  # constant @ constant is folded, not learned
                roles.add("weight")
            elif node.op_type == "Gather" and index == 0 and node.input[1] not in inits:
                roles.add("weight")  # an embedding table
        return "weight" if "weight" in roles else ("statistic" if "statistic" in roles else "constant")

    for init in inits.values():
        if _is_float(init.array):
            init.role = role_at(init.folded_into or init.name)
    # The bias an Add puts right after a weight MatMul (Dense / Linear written as two ops).
    folded = _by_folded(inits)
    for node in graph.node:
        if node.op_type != "MatMul" or node.input[1] not in folded or len(consumers[node.output[0]]) != 1:
            continue
        if folded[node.input[1]].role != "weight":
            continue
        add, _ = consumers[node.output[0]][0]
        if add.op_type == "Add":
            other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
            holder = folded.get(other)
            if holder is not None and _is_float(holder.array):
                holder.role = "weight"

    # Taint: which values are computed from weights. Affine constants applied to them are weights.
    tainted: set[str] = {value for value, init in folded.items() if init.role == "weight"}
    for node in graph.node:
        if any(name in tainted for name in node.input):
            tainted.update(node.output)
        if node.op_type not in AFFINE_OPS or len(node.input) != 2:
            continue
        for index in (0, 1):
            holder = folded.get(node.input[index])
            other = node.input[1 - index]
            if holder is None or holder.role != "constant" or not _learnable(holder.array):
                continue
            if other in tainted:
                holder.role = "weight"
                tainted.update(node.output)
    if trainable == "all":
        for init in inits.values():
            if init.role == "constant" and _learnable(init.array):
                init.role = "weight"

    skipped: set[int] = set()
    origins: dict[str, Initializer] = {}

    def uses(value: str) -> int:
        count = 0
        for node, _ in consumers.get(value, ()):
            count += uses(node.output[0]) if node.op_type == "Identity" and node.output else 1
        return count

    for name, init in inits.items():
        chain = chains[name]
        if init.role == "weight" and chain:
            array = init.array
            for node in chain:
                array = _apply_pass_through(node, array, inits, opset)
                init.transform.append(_describe(node))
                skipped.add(id(node))
            init.array = array
        else:
            init.folded_into = name
        origins[init.folded_into or name] = init
        init.uses = uses(init.folded_into or name) + (1 if (init.folded_into or name) in graph_outputs else 0)
    return PreparedGraph(model, opset, origins, inputs, list(graph.output), infer_types(model), consumers, skipped)


def _by_folded(inits: dict[str, Initializer]) -> dict[str, Initializer]:
    return {init.folded_into or name: init for name, init in inits.items()}


def _describe(node: onnx.NodeProto) -> str:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    shown = ", ".join(f"{k}={v}" for k, v in attrs.items() if k in ("perm", "axes", "axis", "to"))
    return f"{node.op_type}({shown})" if shown else node.op_type


def _apply_pass_through(node: onnx.NodeProto, array: np.ndarray, inits: dict[str, Initializer],
                        opset: int) -> np.ndarray:
    """Evaluate one reshaping op on a constant with ONNX's reference implementation (numpy only)."""
    from onnx.reference import ReferenceEvaluator

    feeds = {node.input[0]: array}
    for name in node.input[1:]:
        if name:
            feeds[name] = inits[name].array
    single = onnx.helper.make_graph(
        [node], "fold",
        [onnx.helper.make_tensor_value_info(n, onnx.helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
         for n, v in feeds.items()],
        [onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.UNDEFINED, None)],
    )
    model = onnx.helper.make_model(single, opset_imports=[onnx.helper.make_opsetid("", opset)])
    (result,) = ReferenceEvaluator(model).run(None, feeds)
    return np.asarray(result)
