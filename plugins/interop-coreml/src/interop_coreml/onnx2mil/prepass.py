"""Pre-pass that makes exported ONNX graphs convertible to MIL.

Exporters leave graph structure behind that Core ML cannot or need not express:
shape arithmetic (``Shape → Gather → Unsqueeze → Concat → Reshape`` chains from
torch.onnx and tf2onnx), ``Constant`` nodes, weight transposes computed at run
time, and training-only nodes such as ``Dropout``. This module

1. inlines local functions and runs ONNX shape inference,
2. walks the nodes in order through the rewrite rules (:data:`RULES`, one function
   each, each with its own test): :func:`bypass_no_op` (``Identity``, inference-mode
   ``Dropout``), :func:`fold_constant_node`, :func:`mark_suspect_shapes` (shapes ONNX
   inference gets wrong are never folded), :func:`fold_shape_and_size`,
   :func:`fold_constant_inputs` (evaluated with ``onnx.reference``),
   :func:`propagate_symbolic_shapes` (shape vectors mixing static and symbolic dims) and
   :func:`rewrite_symbolic_reshape` (ONNX's ``0`` copy / ``-1`` infer markers),
3. drops the nodes whose outputs no longer reach a graph output.

The result is a new model whose constants are all initializers; the driver
converts what is left.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from interop_coreml.onnx2mil.subgraphs import implicit_inputs, rename_outer_reads
from interop_coreml.onnx2mil.weights import WeightReader

# Ops whose outputs are not a function of their inputs, or which we must never run.
_NOT_FOLDABLE = {
    "RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike",
    "Bernoulli", "Multinomial", "If", "Loop", "Scan", "ImageDecoder",
}
# Ops onnx's reference evaluator gets wrong for some attributes (onnx 1.23: LpNormalization
# p=1, Resize pytorch_half_pixel on length-1 axes, LRN size=1, GlobalMaxPool of 3-D input,
# MeanVarianceNormalization off 4-D, pools with SAME_LOWER/auto_pad+ceil_mode, ConvTranspose
# with groups or a cropping output_shape, RNN/GRU/LSTM with clip or sequence_lens, which it
# ignores; docs/fuzzing.md). Folding them would bake the bug into
# the model, so constant inputs of these go to the converters like any other value.
_REFERENCE_UNRELIABLE = {
    "LpNormalization", "Resize", "LRN", "GlobalMaxPool", "GlobalAveragePool", "MeanVarianceNormalization",
    "MaxPool", "AveragePool", "LpPool", "ConvTranspose", "Conv", "RNN", "GRU", "LSTM",
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


def slice_like_onnx(data: np.ndarray, starts, ends, axes=None, steps=None) -> np.ndarray:
    """ONNX Slice (opset 10+) by the spec's clamping rules.

    A negative step clamps the start to [0, dim - 1] and the end to [-1, dim - 1]: start
    -10 of 5 elements is element 0. onnx's reference evaluator slices with Python's rules
    instead (start -10 with step -1: nothing), so constant Slices are not folded with it.
    """
    data = np.asarray(data)
    axes = list(range(len(starts))) if axes is None else [int(a) % max(data.ndim, 1) for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        dim, start, end, step = data.shape[axis], int(start), int(end), int(step)
        start += dim if start < 0 else 0
        end += dim if end < 0 else 0
        if step > 0:
            index[axis] = slice(min(max(start, 0), dim), min(max(end, 0), dim), step)
        else:
            start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
            index[axis] = slice(start, None if end < 0 else end, step) if dim else slice(0, 0)
    return data[tuple(index)]


def _evaluate(node: onnx.NodeProto, inputs: list[np.ndarray | None], opset: int) -> list[np.ndarray] | None:
    from onnx.reference import ReferenceEvaluator

    if node.op_type == "Slice" and opset >= 10 and len(inputs) >= 3 and all(v is not None for v in inputs[:3]):
        rest = [None if v is None else [int(i) for i in np.ravel(v)] for v in inputs[3:5]] + [None, None]
        return [slice_like_onnx(inputs[0], [int(i) for i in np.ravel(inputs[1])], [int(i) for i in np.ravel(inputs[2])],
                                rest[0], rest[1])]
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


def _conv_transpose_shape_trusted(node: onnx.NodeProto, shapes: dict[str, tuple],
                                  constants: dict[str, np.ndarray]) -> bool:
    """ONNX shape inference agrees with the spec's ConvTranspose output size. It adds output_padding
    to auto_pad SAME's input · stride, and sizes SAME with a kernel smaller than the stride as
    onnxruntime does, not as the spec does."""
    x, y = shapes.get(node.input[0]), shapes.get(node.output[0])
    weight = constants[node.input[1]].shape if node.input[1] in constants else shapes.get(node.input[1])
    if x is None or y is None or len(y) != len(x) or len(x) < 3:
        return False
    n = len(x) - 2
    kernel = _attribute(node, "kernel_shape") or (list(weight)[2:] if weight is not None else None)
    if kernel is None or len(kernel) != n:
        return False
    strides = _attribute(node, "strides") or [1] * n
    dilations = _attribute(node, "dilations") or [1] * n
    pads = _attribute(node, "pads") or [0] * (2 * n)
    output_padding = _attribute(node, "output_padding") or [0] * n
    output_shape = _attribute(node, "output_shape")
    auto_pad = _attribute(node, "auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    for i in range(n):
        size, got = x[i + 2], y[i + 2]
        if not isinstance(size, int) or not isinstance(kernel[i], int):
            return False
        if output_shape is not None:
            expected = list(output_shape)[-n:][i]
        elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            expected = size * strides[i]
        else:
            begin, end = (0, 0) if auto_pad == "VALID" else (pads[i], pads[i + n])
            expected = strides[i] * (size - 1) + output_padding[i] + (kernel[i] - 1) * dilations[i] + 1 - begin - end
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


@dataclass
class _Walk:
    """What the pre-pass knows while it walks the nodes in order; each rule reads and extends it."""

    opset: int
    shapes: dict[str, tuple]
    constants: dict[str, np.ndarray]
    graph_outputs: set[str]
    consumed: set[str]
    alias: dict[str, str] = field(default_factory=dict)
    symbolic: dict[str, np.ndarray] = field(default_factory=dict)
    # Values whose inferred shape may be wrong (downstream of a node ONNX shape inference gets wrong).
    suspect: set[str] = field(default_factory=set)


def _default_domain(node: onnx.NodeProto) -> bool:
    return node.domain in ("", "ai.onnx")


# Each rule takes a node (inputs already renamed through ``walk.alias``) and returns True when it
# replaced the node entirely (by an alias or a constant), False when the node stays (possibly edited).


def bypass_no_op(node: onnx.NodeProto, walk: _Walk) -> bool:
    """Identity and inference-mode Dropout become aliases of their input, unless their output is a graph output."""
    if not _default_domain(node):
        return False
    no_op = node.op_type == "Identity" or (
        node.op_type == "Dropout"
        and not (len(node.output) > 1 and node.output[1] in walk.consumed)
        and not _dropout_training(node, walk.constants)
    )
    if no_op and node.output[0] not in walk.graph_outputs:
        walk.alias[node.output[0]] = node.input[0]
        return True
    return False


def fold_constant_node(node: onnx.NodeProto, walk: _Walk) -> bool:
    """A ``Constant`` node becomes a constant value."""
    if not (_default_domain(node) and node.op_type == "Constant"):
        return False
    value = _evaluate(node, [], walk.opset)
    if value is None:
        return False
    walk.constants[node.output[0]] = value[0]
    return True


def mark_suspect_shapes(node: onnx.NodeProto, walk: _Walk) -> bool:
    """Outputs of a pool or ConvTranspose whose inferred shape disagrees with the spec, and everything
    downstream, are suspect.

    ONNX shape inference is not the spec everywhere: shapes downstream of a node it gets
    wrong must not be folded into constants. Never replaces the node.
    """
    if any(name in walk.suspect for name in node.input if name) or (_default_domain(node) and (
        (node.op_type in _POOLS and not _pool_shape_trusted(node, walk.shapes))
        or (node.op_type == "ConvTranspose" and not _conv_transpose_shape_trusted(node, walk.shapes, walk.constants))
    )):
        walk.suspect.update(name for name in node.output if name)
    return False


def fold_shape_and_size(node: onnx.NodeProto, walk: _Walk) -> bool:
    """``Shape``/``Size`` of a statically shaped (trusted) value become constants; a shape with
    symbolic dims becomes a symbolic vector (ints and ``?dim`` names) for the rules below."""
    op = node.op_type
    source = node.input[0] if node.input else ""
    if not (_default_domain(node) and op in ("Shape", "Size") and source in walk.shapes
            and (source not in walk.suspect or source in walk.constants)):
        return False
    shape = walk.constants[source].shape if source in walk.constants else walk.shapes[source]
    start, end = _attribute(node, "start", 0), _attribute(node, "end", None)
    part = list(shape)[start:end] if op == "Shape" else list(shape)
    if all(isinstance(d, int) for d in part):
        walk.constants[node.output[0]] = (np.array(part, dtype=np.int64) if op == "Shape"
                                          else np.array(int(np.prod(part)), dtype=np.int64))
        return True
    if op == "Shape" and all(d is not None for d in shape):
        walk.symbolic[node.output[0]] = _symbolic_shape(node, shape)
    return False


def fold_constant_inputs(node: onnx.NodeProto, walk: _Walk) -> bool:
    """A node whose inputs are all constants is evaluated (onnx's reference evaluator), unless it is
    random, has a subgraph, is one the evaluator gets wrong, or would materialise a huge tensor."""
    present = [name for name in node.input if name]
    has_subgraph = any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)
    if not (_default_domain(node) and present and all(name in walk.constants for name in present)
            and node.op_type not in _NOT_FOLDABLE and node.op_type not in _REFERENCE_UNRELIABLE
            and not has_subgraph):
        return False
    values = _evaluate(node, [walk.constants.get(name) if name else None for name in node.input], walk.opset)
    if values is None or sum(v.size for v in values) > _MAX_FOLDED_ELEMENTS:
        return False
    for name, value in zip(node.output, values):
        walk.constants[name] = value
    return True


def propagate_symbolic_shapes(node: onnx.NodeProto, walk: _Walk) -> bool:
    """Index-shuffling ops (Gather, Concat, Slice, ...) on symbolic shape vectors: the result is a
    constant when every entry became static, else another symbolic vector."""
    present = [name for name in node.input if name]
    if not (_default_domain(node) and node.op_type in _SYMBOLIC_PASSTHROUGH and present
            and any(n in walk.symbolic for n in present)
            and all(n in walk.symbolic or n in walk.constants for n in present)):
        return False
    inputs = [walk.symbolic.get(n, walk.constants.get(n)) if n else None for n in node.input]
    result = _symbolic_eval(node, inputs)
    if result is None:
        return False
    if np.asarray(result).dtype.kind in "biuf":
        walk.constants[node.output[0]] = np.asarray(result)  # a Cast of an all-static shape
        return True
    result = np.asarray(result, dtype=object)
    if all(isinstance(v, (int, np.integer)) for v in result.ravel().tolist()):
        walk.constants[node.output[0]] = result.astype(np.int64)
        return True
    walk.symbolic[node.output[0]] = result
    return False


def rewrite_symbolic_reshape(node: onnx.NodeProto, walk: _Walk) -> bool:
    """A ``Reshape`` to a symbolic target gets a constant one with ONNX's 0 (copy) and -1 (infer)
    markers, when at most one dim is unknown. Edits the node; never replaces it."""
    if not (_default_domain(node) and node.op_type == "Reshape" and len(node.input) > 1
            and node.input[1] in walk.symbolic):
        return False
    allow_zero = _attribute(node, "allowzero", 0)
    symbolic = walk.symbolic[node.input[1]]
    target = _reshape_target(symbolic, walk.shapes.get(node.input[0]))
    literal_zero = any(isinstance(v, (int, np.integer)) and v == 0 for v in symbolic.tolist())
    if target is None or (allow_zero and literal_zero):
        return False
    name = node.input[1] + "__folded"
    walk.constants[name] = target
    node.input[1] = name
    # The target now uses 0 as "copy this dim", which allowzero=1 would read as an empty dim.
    for attribute in node.attribute:
        if attribute.name == "allowzero":
            attribute.i = 0
    return False


#: The rewrite rules, in the order they see each node; the first that replaces a node ends its turn.
RULES = (bypass_no_op, fold_constant_node, mark_suspect_shapes, fold_shape_and_size, fold_constant_inputs,
         propagate_symbolic_shapes, rewrite_symbolic_reshape)


# Initializers with more elements than this stay out of the copy the pre-pass works on (declared as
# graph inputs of their type and shape instead) and are read from the caller's model: their values
# decide no shape, and the copy plus the two serialisations onnx.shape_inference makes of it would
# otherwise hold every weight three more times (ResNet-50: ~300 MiB for 98 MiB of weights).
_INFERENCE_MAX_ELEMENTS = 1024


def _copy_without(message, skipped: str):
    """A copy of a protobuf ``message`` without its field ``skipped`` (never read, so never copied)."""
    copy = type(message)()
    for descriptor, value in message.ListFields():
        if descriptor.name == skipped:
            continue
        target = getattr(copy, descriptor.name)
        if descriptor.is_repeated:
            target.extend(value)
        elif descriptor.type == descriptor.TYPE_MESSAGE:
            target.CopyFrom(value)
        else:
            setattr(copy, descriptor.name, value)
    return copy


def _loaded(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` without its large initializers, local functions inlined, ONNX shape inference run."""
    copy = _copy_without(model, "graph")
    copy.graph.CopyFrom(_copy_without(model.graph, "initializer"))
    declared = {value.name for value in model.graph.input}
    for init in model.graph.initializer:
        if int(np.prod(init.dims, dtype=np.int64)) <= _INFERENCE_MAX_ELEMENTS:
            copy.graph.initializer.append(init)
        elif init.name not in declared:
            copy.graph.input.append(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    if copy.functions:
        try:
            from onnx import inliner

            copy = inliner.inline_local_functions(copy)
        except Exception:  # noqa: BLE001
            pass
    return _infer(copy)


def prepare(model: onnx.ModelProto, external_data_dir: str | Path | None = None) -> PreparedGraph:
    """Run the pre-pass (:data:`RULES` over every node, then dead-node removal); ``model`` is left untouched.

    Initializers whose data lives in files beside the model (loaded with ``load_external_data=False``)
    are mapped from ``external_data_dir``, not read (:mod:`~interop_coreml.onnx2mil.weights`).
    """
    weights = WeightReader(external_data_dir)
    model_copy = _loaded(model)
    graph = model_copy.graph
    shapes, elem_types = _value_shapes(graph)
    graph_outputs = [o.name for o in graph.output]
    walk = _Walk(
        opset=default_opset(model_copy),
        shapes=shapes,
        constants={init.name: weights.array(init) for init in model.graph.initializer},
        graph_outputs=set(graph_outputs),
        consumed={name for node in graph.node for name in _reads(node)} | set(graph_outputs),
    )
    kept: list[onnx.NodeProto] = []
    for original in graph.node:
        node = onnx.NodeProto()
        node.CopyFrom(original)
        for i, name in enumerate(node.input):
            if name in walk.alias:
                node.input[i] = walk.alias[name]
        rename_outer_reads(node, walk.alias)
        if not any(rule(node, walk) for rule in RULES):
            kept.append(node)

    kept = _without_dead_nodes(kept, graph_outputs)
    used = {name for node in kept for name in _reads(node)}
    new_graph = onnx.helper.make_graph(
        kept,
        graph.name,
        [i for i in graph.input if i.name not in walk.constants],
        list(graph.output),
        initializer=[],
        value_info=list(graph.value_info),
    )
    needed = used | set(graph_outputs)
    kept_constants = {name: value for name, value in walk.constants.items() if name in needed}
    prepared = onnx.helper.make_model(new_graph, opset_imports=list(model_copy.opset_import))
    prepared.ir_version = model_copy.ir_version
    prepared.producer_name = model_copy.producer_name
    prepared.producer_version = model_copy.producer_version
    return PreparedGraph(prepared, kept_constants, elem_types, walk.symbolic)


def _reads(node: onnx.NodeProto) -> list[str]:
    """The node's inputs and the enclosing-graph values its subgraphs read (a Loop body's)."""
    return [*node.input, *implicit_inputs(node)]


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
            live.update(name for name in _reads(node) if name)
            result.append(node)
    return result[::-1]
