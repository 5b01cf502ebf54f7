"""Pre-pass that makes exported ONNX graphs convertible to MIL.

Exporters leave graph structure behind that Core ML cannot or need not express:
shape arithmetic (``Shape → Gather → Unsqueeze → Concat → Reshape`` chains from
torch.onnx and tf2onnx), ``Constant`` nodes, weight transposes computed at run
time, and training-only nodes such as ``Dropout``. This module

1. inlines local functions and runs ONNX shape inference,
2. bypasses ``Identity`` and inference-mode ``Dropout`` nodes,
3. folds every node whose inputs are all known (evaluated with
   ``onnx.reference``), ``Shape``/``Size`` of statically shaped tensors, and
   shape vectors that mix static and symbolic dims, which are rewritten into a
   ``Reshape`` target using ONNX's ``0`` (copy) and ``-1`` (infer) markers.

The result is a new model whose constants are all initializers; the driver
converts what is left.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

# Ops whose outputs are not a function of their inputs, or which we must never run.
_NOT_FOLDABLE = {
    "RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike",
    "Bernoulli", "Multinomial", "If", "Loop", "Scan", "ImageDecoder",
}
# Ops onnx's reference evaluator gets wrong for some attributes (onnx 1.23: LpNormalization
# p=1, Resize pytorch_half_pixel on length-1 axes, LRN size=1, GlobalMaxPool of 3-D input,
# MeanVarianceNormalization off 4-D, pools with SAME_LOWER/auto_pad+ceil_mode, ConvTranspose
# with groups or a cropping output_shape; docs/fuzzing.md). Folding them would bake the bug into
# the model, so constant inputs of these go to the converters like any other value.
_REFERENCE_UNRELIABLE = {
    "LpNormalization", "Resize", "LRN", "GlobalMaxPool", "GlobalAveragePool", "MeanVarianceNormalization",
    "MaxPool", "AveragePool", "LpPool", "ConvTranspose", "Conv",
}
# Ops that pass symbolic shape entries through element-wise.
_SYMBOLIC_PASSTHROUGH = {"Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Identity"}
# Folding that would materialise huge tensors costs memory for no gain.
_MAX_FOLDED_ELEMENTS = 50_000_000


@dataclass
class PreparedGraph:
    """The graph after the pre-pass, with folded constants and inferred shapes."""

    model: onnx.ModelProto
    constants: dict[str, np.ndarray]
    shapes: dict[str, tuple] = field(default_factory=dict)
    elem_types: dict[str, int] = field(default_factory=dict)
    # Shape vectors mixing ints and '?dim' names (e.g. Resize sizes [N, C, 6, 9]).
    symbolic: dict[str, np.ndarray] = field(default_factory=dict)


def default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 1


def _value_shapes(graph: onnx.GraphProto) -> tuple[dict[str, tuple], dict[str, int]]:
    shapes: dict[str, tuple] = {}
    types: dict[str, int] = {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = info.type.tensor_type
        if not info.type.HasField("tensor_type"):
            continue
        types[info.name] = tensor_type.elem_type
        if tensor_type.HasField("shape"):
            dims = []
            for dim in tensor_type.shape.dim:
                if dim.HasField("dim_value"):
                    dims.append(int(dim.dim_value))
                elif dim.HasField("dim_param"):
                    dims.append(dim.dim_param)
                else:
                    dims.append(None)
            shapes[info.name] = tuple(dims)
    return shapes, types


def _attribute(node: onnx.NodeProto, name: str, default=None):
    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def _infer(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - inference is best effort; conversion still works without it
        return model


def _evaluate(node: onnx.NodeProto, inputs: list[np.ndarray | None], opset: int) -> list[np.ndarray] | None:
    from onnx.reference import ReferenceEvaluator

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            evaluator = ReferenceEvaluator(node, opsets={"": opset})
            feeds = {name: value for name, value in zip(node.input, inputs) if name}
            return [np.asarray(v) for v in evaluator.run(None, feeds)]
    except Exception:  # noqa: BLE001 - a node we cannot evaluate is simply left for conversion
        return None


def pool_geometry(size: int, k: int, s: int, d: int, begin: int, end: int, auto_pad: str, ceil_mode: bool):
    """(output size, begin pad, end pad of the declared padding) of one pooled axis, per the ONNX spec.

    Explicit pads: floor (or ceil) of (size + pads - effective kernel) / stride + 1, where in ceil
    mode a last window that would start in the right padding is dropped. SAME: ceil(size /
    stride), padded by (out - 1) * stride + effective kernel - size (the extra one at the end for
    SAME_UPPER, the begin for SAME_LOWER). That total is negative for some sizes when the
    effective kernel is smaller than the stride; it is returned unclamped, split python-style,
    and the pool converter refuses it (see ``_static_pool``). VALID: the explicit
    rule with zero pads, ceil_mode included. The spec's VALID formula, ceil((size - effective + 1)
    / stride), ignores ceil_mode, but onnx's shape inference, onnxruntime and torch all apply it
    (size 5, kernel 2, stride 2: 3 windows, the last one partial); the model's declared output
    shapes follow them, so the translator does too.
    """
    eff = (k - 1) * d + 1
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out = -(-size // s)
        total = (out - 1) * s + eff - size
        begin = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        return out, begin, total - begin
    if auto_pad == "VALID":
        begin = end = 0
    span = size + begin + end - eff
    if ceil_mode:
        out = -(-span // s) + 1
        if (out - 1) * s >= size + begin:
            out -= 1
    else:
        out = span // s + 1
    return out, begin, end


_POOLS = {"MaxPool", "AveragePool", "LpPool"}


def _pool_shape_trusted(node: onnx.NodeProto, shapes: dict[str, tuple]) -> bool:
    """ONNX shape inference agrees with the spec's pool output size (it lacks ceil_mode's last-window rule)."""
    x, y = shapes.get(node.input[0]), shapes.get(node.output[0])
    kernel = _attribute(node, "kernel_shape")
    if x is None or y is None or kernel is None or len(x) != len(kernel) + 2 or len(y) != len(x):
        return False
    n = len(kernel)
    strides = _attribute(node, "strides") or [1] * n
    dilations = _attribute(node, "dilations") or [1] * n
    pads = _attribute(node, "pads") or [0] * (2 * n)
    auto_pad = _attribute(node, "auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    ceil_mode = bool(_attribute(node, "ceil_mode", 0))
    for i in range(n):
        size, got = x[i + 2], y[i + 2]
        if not isinstance(size, int):
            return False
        expected = pool_geometry(size, kernel[i], strides[i], dilations[i], pads[i], pads[i + n], auto_pad, ceil_mode)[0]
        if got != expected:
            return False
    return True


def _symbolic_shape(node: onnx.NodeProto, shape: tuple) -> np.ndarray:
    start = _attribute(node, "start", 0)
    end = _attribute(node, "end", None)
    dims = list(shape)[start:end]
    return np.array([d if isinstance(d, int) else f"?{d}" for d in dims], dtype=object)


def _symbolic_eval(node: onnx.NodeProto, values: list) -> np.ndarray | None:
    """Evaluate index-shuffling ops on object arrays holding ints and '?sym' strings."""
    op = node.op_type
    try:
        if op == "Identity":
            return values[0]
        if op == "Cast":
            data = np.asarray(values[0], dtype=object)
            if all(isinstance(v, (int, np.integer)) for v in data.ravel().tolist()):
                to = onnx.helper.tensor_dtype_to_np_dtype(_attribute(node, "to"))
                return data.astype(np.int64).astype(to)
            # Symbolic entries survive only a cast to another integer type.
            integer = _attribute(node, "to") in (onnx.TensorProto.INT64, onnx.TensorProto.INT32)
            return data if integer else None
        if op == "Gather":
            data, idx = values[0], np.asarray(values[1]).astype(np.int64)
            return np.take(data, idx, axis=_attribute(node, "axis", 0))
        if op == "Concat":
            return np.concatenate([np.atleast_1d(v).astype(object) for v in values], axis=_attribute(node, "axis", 0))
        if op in ("Unsqueeze", "Squeeze"):
            axes = _attribute(node, "axes")
            if axes is None and len(values) > 1 and values[1] is not None:
                axes = [int(a) for a in np.asarray(values[1])]
            data = values[0]
            if op == "Unsqueeze":
                for axis in sorted(a % (data.ndim + len(axes)) for a in axes):
                    data = np.expand_dims(data, axis)
                return data
            return np.squeeze(data, axis=tuple(axes)) if axes else np.squeeze(data)
        if op == "Slice":
            data = values[0]
            starts, ends = (np.asarray(values[1]), np.asarray(values[2])) if len(values) > 2 else (None, None)
            if starts is None or data.ndim != 1:
                return None
            step = int(np.asarray(values[4])[0]) if len(values) > 4 and values[4] is not None else 1
            return data[int(starts[0]): int(min(ends[0], 2**31)): step]
    except Exception:  # noqa: BLE001
        return None
    return None


def _reshape_target(symbolic: np.ndarray, data_shape: tuple | None) -> np.ndarray | None:
    """Turn a shape vector with symbolic entries into ONNX 0/-1 markers, if possible."""
    target = []
    unknown = 0
    for i, entry in enumerate(symbolic.tolist()):
        if isinstance(entry, (int, np.integer)):
            target.append(int(entry))
        elif data_shape is not None and i < len(data_shape) and f"?{data_shape[i]}" == entry:
            target.append(0)  # same symbolic dim at the same position: copy it
        else:
            target.append(-1)
            unknown += 1
    if unknown > 1 or (unknown == 1 and -1 in [t for t, s in zip(target, symbolic.tolist()) if isinstance(s, (int, np.integer))]):
        return None
    return np.array(target, dtype=np.int64)


def prepare(model: onnx.ModelProto) -> PreparedGraph:
    """Run the pre-pass; the input model is left untouched."""
    model_copy = onnx.ModelProto()
    model_copy.CopyFrom(model)
    if model_copy.functions:
        try:
            from onnx import inliner

            model_copy = inliner.inline_local_functions(model_copy)
        except Exception:  # noqa: BLE001
            pass
    model_copy = _infer(model_copy)
    opset = default_opset(model_copy)
    graph = model_copy.graph
    shapes, elem_types = _value_shapes(graph)

    constants: dict[str, np.ndarray] = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    graph_outputs = [o.name for o in graph.output]
    alias: dict[str, str] = {}
    symbolic: dict[str, np.ndarray] = {}
    kept: list[onnx.NodeProto] = []
    suspect: set[str] = set()
    consumed = {name for node in graph.node for name in node.input} | set(graph_outputs)

    for original in graph.node:
        node = onnx.NodeProto()
        node.CopyFrom(original)
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
        op = node.op_type
        is_default_domain = node.domain in ("", "ai.onnx")

        # Bypass no-op nodes unless their output is a graph output (the name must survive).
        bypass = is_default_domain and (
            op == "Identity"
            or (op == "Dropout" and not (len(node.output) > 1 and node.output[1] in consumed) and not _dropout_training(node, constants))
        )
        if bypass and node.output[0] not in graph_outputs:
            alias[node.output[0]] = node.input[0]
            continue

        if is_default_domain and op == "Constant":
            value = _evaluate(node, [], opset)
            if value is not None:
                constants[node.output[0]] = value[0]
                continue

        # ONNX shape inference is not the spec everywhere: shapes downstream of a node it gets
        # wrong must not be folded into constants.
        if any(name in suspect for name in node.input if name) or (
            op in _POOLS and is_default_domain and not _pool_shape_trusted(node, shapes)
        ):
            suspect.update(name for name in node.output if name)

        if is_default_domain and op in ("Shape", "Size") and node.input[0] in shapes and (
            node.input[0] not in suspect or node.input[0] in constants
        ):
            shape = shapes[node.input[0]]
            if node.input[0] in constants:
                shape = constants[node.input[0]].shape
            start, end = _attribute(node, "start", 0), _attribute(node, "end", None)
            part = list(shape)[start:end] if op == "Shape" else list(shape)
            if all(isinstance(d, int) for d in part):
                if op == "Shape":
                    constants[node.output[0]] = np.array(part, dtype=np.int64)
                else:
                    constants[node.output[0]] = np.array(int(np.prod(part)), dtype=np.int64)
                continue
            if op == "Shape" and all(d is not None for d in shape):
                symbolic[node.output[0]] = _symbolic_shape(node, shape)

        present = [name for name in node.input if name]
        has_subgraph = any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)
        if (
            is_default_domain
            and present
            and all(name in constants for name in present)
            and op not in _NOT_FOLDABLE
            and op not in _REFERENCE_UNRELIABLE
            and not has_subgraph
        ):
            values = _evaluate(node, [constants.get(name) if name else None for name in node.input], opset)
            if values is not None and sum(v.size for v in values) <= _MAX_FOLDED_ELEMENTS:
                for name, value in zip(node.output, values):
                    constants[name] = value
                continue

        if is_default_domain and op in _SYMBOLIC_PASSTHROUGH and present and any(n in symbolic for n in present):
            if all(n in symbolic or n in constants for n in present):
                inputs = [symbolic.get(n, constants.get(n)) if n else None for n in node.input]
                result = _symbolic_eval(node, inputs)
                if result is not None and np.asarray(result).dtype.kind in "biuf":
                    constants[node.output[0]] = np.asarray(result)  # a Cast of an all-static shape
                    continue
                if result is not None:
                    result = np.asarray(result, dtype=object)
                    if all(isinstance(v, (int, np.integer)) for v in result.ravel().tolist()):
                        constants[node.output[0]] = result.astype(np.int64)
                        continue
                    symbolic[node.output[0]] = result

        if is_default_domain and op == "Reshape" and len(node.input) > 1 and node.input[1] in symbolic:
            target = _reshape_target(symbolic[node.input[1]], shapes.get(node.input[0]))
            if target is not None:
                name = node.input[1] + "__folded"
                constants[name] = target
                node.input[1] = name
        kept.append(node)

    kept = _without_dead_nodes(kept, graph_outputs)
    used = {name for node in kept for name in node.input}
    new_graph = onnx.helper.make_graph(
        kept,
        graph.name,
        [i for i in graph.input if i.name not in constants],
        list(graph.output),
        initializer=[],
        value_info=list(graph.value_info),
    )
    needed = used | set(graph_outputs)
    kept_constants = {name: value for name, value in constants.items() if name in needed}
    prepared = onnx.helper.make_model(new_graph, opset_imports=list(model_copy.opset_import))
    prepared.ir_version = model_copy.ir_version
    prepared.producer_name = model_copy.producer_name
    prepared.producer_version = model_copy.producer_version
    trusted = {name: shape for name, shape in shapes.items() if name not in suspect}
    return PreparedGraph(prepared, kept_constants, trusted, elem_types, symbolic)


def _dropout_training(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> bool:
    if len(node.input) > 2 and node.input[2]:
        value = constants.get(node.input[2])
        return value is None or bool(np.asarray(value))
    return False


def _without_dead_nodes(nodes: list[onnx.NodeProto], graph_outputs: list[str]) -> list[onnx.NodeProto]:
    """Drop nodes none of whose outputs reach a graph output (e.g. folded shape arithmetic)."""
    live = set(graph_outputs)
    result = []
    for node in reversed(nodes):
        if any(name in live for name in node.output if name):
            live.update(name for name in node.input if name)
            result.append(node)
    return result[::-1]
