"""Evaluating nodes whose inputs are all constants, at import time.

Exporters leave shape arithmetic in graphs (``Shape -> Gather -> Concat ->
Reshape`` for a flatten that keeps the batch). The importer evaluates such nodes
once: with onnx's reference implementation for numbers, and with a few numpy
rules for shape vectors that hold a dimension only known at run time
(:class:`Dim`, typically the batch size), so a Reshape to ``[batch, -1]`` is
recognised as keeping the batch axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper


class Dim:
    """A dimension known only at run time; ``BATCH`` is the batch axis of the graph's tensors."""

    def __init__(self, label: str):
        self.label = label

    def __repr__(self) -> str:
        return self.label


BATCH = Dim("batch")


def is_symbolic(array: np.ndarray) -> bool:
    return array.dtype == object


def attributes(node: onnx.NodeProto) -> dict[str, Any]:
    return {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}


def evaluate(node: onnx.NodeProto, inputs: list[np.ndarray | None], opset: int) -> list[np.ndarray] | None:
    """The outputs of ``node`` on constant ``inputs``, or None when it cannot be evaluated here."""
    if any(x is not None and is_symbolic(x) for x in inputs):
        return _symbolic(node, inputs)
    return _reference(node, inputs, opset)


def _reference(node: onnx.NodeProto, inputs: list[np.ndarray | None], opset: int) -> list[np.ndarray] | None:
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" if x is not None else "" for i, x in enumerate(inputs)]
    outputs = [f"out{i}" for i in range(len(node.output))]
    clone = onnx.helper.make_node(node.op_type, names, outputs, domain=node.domain)
    clone.attribute.extend(node.attribute)
    feeds = [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None) for n in names if n]
    graph = onnx.helper.make_graph(
        [clone], "fold", feeds, [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None) for n in outputs],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    try:
        results = ReferenceEvaluator(model).run(None, {n: x for n, x in zip(names, inputs) if n})
    except Exception:  # noqa: BLE001 - any failure means "not foldable here"; the converter then decides
        return None
    return [np.asarray(r) for r in results]


def _int_list(array: np.ndarray | None) -> list[int] | None:
    if array is None:
        return None
    return [int(v) for v in np.asarray(array).reshape(-1)]


def _symbolic(node: onnx.NodeProto, inputs: list[np.ndarray | None]) -> list[np.ndarray] | None:
    """Shape-vector ops on arrays that hold :class:`Dim` entries; all-integer results become int64."""
    results = _symbolic_values(node, inputs)
    if results is None:
        return None
    out = []
    for result in results:
        array = np.empty((), dtype=object) if np.ndim(result) == 0 else None
        if array is not None:
            array[()] = result.item() if isinstance(result, np.ndarray) else result
        else:
            array = np.asarray(result, dtype=object)
        if not any(isinstance(v, Dim) for v in array.reshape(-1)):
            array = array.astype(np.int64)
        out.append(array)
    return out


def _symbolic_values(node: onnx.NodeProto, inputs: list[np.ndarray | None]) -> list[Any] | None:
    attrs = attributes(node)
    op = node.op_type
    x = inputs[0]
    if x is None:
        return None
    if op in ("Identity", "Cast"):
        return [x]
    if op == "Gather":
        return [np.take(x, np.asarray(inputs[1]).astype(np.int64), axis=attrs.get("axis", 0))]
    if op == "Concat":
        parts = [np.asarray(v, dtype=object) for v in inputs if v is not None]
        return [np.concatenate(parts, axis=attrs.get("axis", 0))]
    if op == "Unsqueeze":
        axes = _int_list(inputs[1]) if len(inputs) > 1 else attrs.get("axes")
        out = x
        for axis in sorted(a % (x.ndim + len(axes)) for a in axes):
            out = np.expand_dims(out, axis)
        return [out]
    if op == "Squeeze":
        axes = _int_list(inputs[1]) if len(inputs) > 1 else attrs.get("axes")
        return [np.squeeze(x, axis=tuple(axes) if axes is not None else None)]
    if op == "Slice":
        if len(inputs) > 1:  # opset 10+: starts, ends, axes, steps as inputs
            starts, ends = _int_list(inputs[1]), _int_list(inputs[2])
            axes = _int_list(inputs[3]) if len(inputs) > 3 and inputs[3] is not None else list(range(len(starts)))
            steps = _int_list(inputs[4]) if len(inputs) > 4 and inputs[4] is not None else [1] * len(starts)
        else:
            starts, ends = attrs["starts"], attrs["ends"]
            axes = attrs.get("axes", list(range(len(starts))))
            steps = [1] * len(starts)
        index = [slice(None)] * x.ndim
        for axis, start, end, step in zip(axes, starts, ends, steps):
            index[axis] = slice(start, end, step)
        return [x[tuple(index)]]
    return None


def tensor_value(tensor: onnx.TensorProto) -> np.ndarray:
    return numpy_helper.to_array(tensor)
