"""Compare the outputs of selecting ops (TopK indices, ArgMax, ArgMin, Hardmax) through the values they select.

float32 rounding differs between engines now and then by an ulp (numpy's ``tanh(9.82)`` is
0.99999994, onnxruntime's 1.0), so two near-equal values swap and a selecting op picks the
other one. Such an output is not a mismatch when

1. the values both engines' choices select from the op's input (as onnxruntime computed it)
   agree within the float tolerance, and
2. the interpreter's choice is exactly the spec's choice over the interpreter's *own* input
   (fetched by running the graph with that tensor as an extra output): TopK's stable order
   with the lower index first, ArgMax/ArgMin's first index (the last with
   ``select_last_index=1``), Hardmax's first maximum.

So an exact tie resolved in the wrong order stays a mismatch, and so do integer data, NaN,
out-of-range indices and choices of values that really differ.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

#: The op types whose choice is compared through values, and which output holds the choice.
SELECTING = {"TopK": 1, "ArgMax": 0, "ArgMin": 0, "Hardmax": 0}


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _axis(node: onnx.NodeProto, rank: int) -> int:
    default = 0 if node.op_type in ("ArgMax", "ArgMin") else -1
    return _attr(node, "axis", default) % max(rank, 1)


def _choice(node: onnx.NodeProto, output: np.ndarray, rank: int) -> np.ndarray | None:
    """The chosen indices along the op's axis, with that axis kept (None when malformed)."""
    axis = _axis(node, rank)
    output = np.asarray(output)
    if node.op_type == "Hardmax":
        ones = output == 1
        if output.ndim != rank or not np.all(ones | (output == 0)) or not np.all(ones.sum(axis=axis) == 1):
            return None
        return np.expand_dims(np.argmax(ones, axis=axis), axis)
    indices = output.astype(np.int64)
    if node.op_type in ("ArgMax", "ArgMin") and not _attr(node, "keepdims", 1):
        indices = np.expand_dims(indices, axis)
    return indices if indices.ndim == rank else None


def spec_choice(node: onnx.NodeProto, data: np.ndarray, count: int | None = None) -> np.ndarray:
    """The spec's choice over ``data`` (float64, no NaN): indices along the axis, axis kept."""
    axis = _axis(node, data.ndim)
    if node.op_type == "TopK":
        order = np.argsort(-data if _attr(node, "largest", 1) else data, axis=axis, kind="stable")
        return np.take(order, np.arange(count), axis=axis)
    keyed = -data if node.op_type == "ArgMin" else data
    if node.op_type != "Hardmax" and _attr(node, "select_last_index", 0):
        flipped = np.flip(keyed, axis=axis)
        return data.shape[axis] - 1 - np.expand_dims(np.argmax(flipped, axis=axis), axis)
    return np.expand_dims(np.argmax(keyed, axis=axis), axis)


def index_ties(model: onnx.ModelProto, feeds: dict, got: dict, diffs: list, notes: list[str]) -> list:
    """``diffs`` without the selecting-op outputs whose choices differ only between near-equal values."""
    from interop_coreml.fuzz.rewrites import tensor_values

    chooser = {node.output[SELECTING[node.op_type]]: node for node in model.graph.node
               if node.op_type in SELECTING and len(node.output) > SELECTING[node.op_type]
               and node.output[SELECTING[node.op_type]]}
    if not any(name in chooser and kind == "value" for name, kind, *_ in diffs):
        return diffs
    try:
        values = tensor_values(model, feeds)
    except Exception:  # noqa: BLE001 - no values to compare through
        return diffs
    differing = {name for name, *_ in diffs}
    kept = []
    for diff in diffs:
        name, kind = diff[0], diff[1]
        node = chooser.get(name)
        if kind != "value" or node is None or not _same_choice(model, feeds, got, node, name, values, differing):
            kept.append(diff)
            continue
        notes.append(f"{name}: {node.op_type} chose between values that are equal within float tolerance")
    return kept


def _same_choice(model, feeds, got, node, name, values, differing) -> bool:
    from interop_coreml.fuzz.oracle import compare_output

    if node.input[0] not in values or name not in values or name not in got:
        return False
    if node.op_type == "TopK" and node.output[0] in differing:
        return False  # the TopK values themselves differ: not a matter of order
    data = np.asarray(values[node.input[0]])
    if data.dtype.kind != "f" or np.isnan(data).any():
        return False
    rank = data.ndim
    theirs = _choice(node, values[name], rank)
    ours = _choice(node, np.asarray(got[name]).reshape(np.shape(values[name])), rank)
    if ours is None or theirs is None or ours.shape != theirs.shape:
        return False
    axis = _axis(node, rank)
    if ours.size and (ours.min() < 0 or ours.max() >= data.shape[axis]):
        return False
    picked_ours = np.take_along_axis(data, ours, axis)
    picked_theirs = np.take_along_axis(data, theirs, axis)
    if compare_output(name, picked_theirs, picked_ours) is not None:
        return False
    return _self_consistent(model, feeds, node, ours, axis)


def _self_consistent(model, feeds, node, ours: np.ndarray, axis: int) -> bool:
    """The interpreter's choice is the spec's choice over the interpreter's own input of the op."""
    from interop_coreml.fuzz.oracle import run_coreml
    from interop_coreml.fuzz.shrink import _declare_outputs

    probe = _declare_outputs(model, [*(o.name for o in model.graph.output), node.input[0]])
    if probe is None:
        return False
    try:
        data = np.asarray(run_coreml(probe, feeds)[node.input[0]], dtype=np.float64)
    except Exception:  # noqa: BLE001
        return False
    if data.ndim != ours.ndim or np.isnan(data).any():
        return False
    spec = spec_choice(node, data, ours.shape[axis])
    if node.op_type == "TopK" and not _attr(node, "sorted", 1):
        return bool(np.array_equal(np.sort(spec, axis=axis), np.sort(ours, axis=axis)))
    return bool(np.array_equal(spec, ours))
