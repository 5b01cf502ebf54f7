"""The import driver: ONNX graph -> Python source of one nn.Module class, plus its weights.

Order of work: classify the initializers (prepare.py) -> for every node, fold it when all
its inputs are constants, else run its converter -> collect every unsupported node and
raise one error before anything is written -> prune what no output needs -> render the
source. The module itself is made by running that source (:func:`instantiate`): the same
code a ``torch-source`` folder holds, so the two outputs of the importer cannot drift.
"""

from __future__ import annotations

import collections
import linecache
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from interop.plugin_api import ConversionError, TensorSpec, UnsupportedModelError
from interop_torch.onnx_import import module_table, ops
from interop_torch.onnx_import.context import ImportContext, NodeNotConvertible, StateEntry, Value, dims_or_none, np_dtype
from interop_torch.onnx_import.prepare import PreparedGraph, prepare

#: Nodes never evaluated at import time even with constant inputs.
_NOT_FOLDED = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
                         "Bernoulli", "Dropout", "If", "Loop", "Scan"})
#: Largest tensor (elements) an import folds into a constant; bigger ones are computed at run time.
_FOLD_LIMIT = 1 << 20
#: Element types of graph inputs and outputs the importer accepts.
_COMPUTABLE = frozenset({"float32", "float16", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool"})
_GENERIC_GRAPH_NAMES = {"", "main_graph", "tf2onnx", "torch_jit", "torch-jit-export", "graph", "model", "onnx_model"}
_HINT = ("docs/training-elsewhere.md lists what the importer converts; re-export the model without these ops "
         "(or at another opset)")


@dataclass
class ImportPlan:
    """The importer's result before any torch object exists: source code and weights."""

    source: str
    class_name: str
    state: dict[str, StateEntry]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    notes: list[str]
    weight_count: int
    opset: int
    producer: str
    layer_count: int = 0
    dropouts: int = 0

    def parameter_sources(self) -> dict[str, dict[str, Any]]:
        """State-dict key -> where it came from: ONNX initializer, role, and any reshaping applied."""
        sources = {}
        for key, entry in self.state.items():
            record: dict[str, Any] = {"kind": "parameter" if entry.parameter else "buffer"}
            if entry.origin is not None:
                record["onnx"] = entry.origin.name
                record["role"] = entry.origin.role
            if entry.transform:
                record["transform"] = list(entry.transform)
            sources[key] = record
        return sources

    @property
    def parameter_count(self) -> int:
        return sum(int(e.array.size) for e in self.state.values() if e.parameter)


@dataclass
class _Unsupported:
    count: int = 0
    nodes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def _io_spec(value: onnx.ValueInfoProto) -> TensorSpec:
    if not value.type.HasField("tensor_type"):
        raise UnsupportedModelError(f"graph input/output {value.name!r} is not a tensor (a sequence or map)")
    tensor = value.type.tensor_type
    dtype = np_dtype(tensor.elem_type)
    if dtype is None or str(dtype) not in _COMPUTABLE:
        # uint16/32/64: torch stores them but has almost no CPU kernels (no add, compare, max);
        # float8/int4 and friends: torch cannot take them from numpy.
        raise UnsupportedModelError(f"graph input/output {value.name!r} is {dtype or 'of a type'} torch cannot compute with")
    dims: list[Any] = []
    if tensor.HasField("shape"):
        for d in tensor.shape.dim:
            dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
    return TensorSpec(value.name, str(dtype), tuple(dims))


def _fold(ctx: ImportContext, node: onnx.NodeProto) -> bool:
    """Evaluate ``node`` now when every input is a non-weight constant; True when it was."""
    if node.op_type in _NOT_FOLDED or node.domain not in module_table.DEFAULT_DOMAINS or not node.input:
        return False
    feeds = {}
    for name in node.input:
        if not name:
            continue
        value = ctx.values.get(name)
        array = ctx.const(value)
        if value is None or array is None or (value.kind == "const" and value.role != "constant"):
            return False
        feeds[name] = array
    for output in node.output:
        _, dims = ctx.prepared.types.get(output, (0, None))
        if dims is None or not all(isinstance(d, int) for d in dims) or int(np.prod(dims)) > _FOLD_LIMIT:
            if node.op_type in ("ConstantOfShape", "Expand", "Tile", "Range", "Resize", "Upsample", "Pad",
                                "OneHot", "EyeLike"):
                return False
    from onnx.reference import ReferenceEvaluator

    graph = onnx.helper.make_graph(
        [node], "fold",
        [onnx.helper.make_tensor_value_info(n, onnx.helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
         for n, a in feeds.items()],
        [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output if o],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", ctx.opset)])
    model.ir_version = ctx.prepared.model.ir_version or model.ir_version
    try:
        results = ReferenceEvaluator(model).run(None, feeds)
    except Exception:  # noqa: BLE001 - the converter then writes it as a run-time op
        return False
    outputs = [o for o in node.output if o]
    if any(np.asarray(r).size > _FOLD_LIMIT for r in results):
        return False
    for name, result in zip(outputs, results):
        ctx.set_const(name, np.asarray(result))
    return True


def plan_import(model: onnx.ModelProto, trainable: str = "auto", class_name: str | None = None) -> ImportPlan:
    """Convert ``model`` into source and weights; raises UnsupportedModelError listing every problem."""
    prepared = prepare(model, trainable)
    graph = model.graph
    ctx = ImportContext(prepared)
    inputs = [_io_spec(v) for v in prepared.inputs]
    outputs = [_io_spec(v) for v in prepared.outputs]
    arguments = []
    for value in prepared.inputs:
        var = ctx.var(value.name)
        arguments.append(var)
        elem, dims = prepared.types.get(value.name, (value.type.tensor_type.elem_type, None))
        ctx.values[value.name] = Value(value.name, "tensor", var, np_dtype(elem), dims_or_none(dims))
    missing: dict[str, _Unsupported] = collections.OrderedDict()

    def unsupported(node: onnx.NodeProto, index: int, reason: str | None) -> None:
        key = node.op_type if node.domain in module_table.DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"
        entry = missing.setdefault(key, _Unsupported())
        entry.count += 1
        entry.nodes.append(node.name or node.output[0] if node.output else f"#{index}")
        if reason and reason not in entry.reasons:
            entry.reasons.append(reason)
        for output in node.output:
            if output:
                ctx.unknown(output)

    for index, node in enumerate(graph.node):
        if id(node) in prepared.skipped or id(node) in ctx.done_nodes:
            continue
        if node.op_type == "Constant" and node.output and node.output[0] in prepared.initializers:
            continue
        converter, reason = ops.module_converter_for(node, prepared.opset)
        if converter is None:
            unsupported(node, index, reason)
            continue
        ctx.node = node
        ctx.since = module_table.schema_version(node.op_type, "", prepared.opset) or 0
        try:
            if _fold(ctx, node):
                continue
            converter(ctx, node)
        except NodeNotConvertible as error:
            unsupported(node, index, error.reason)
        except (UnsupportedModelError, ConversionError):
            raise
        except Exception as error:  # noqa: BLE001 - name the node that broke
            if missing:  # an input came from a node that could not be converted: already reported
                for output in node.output:
                    if output:
                        ctx.unknown(output)
                continue
            label = f"{node.op_type} node {node.name or (node.output[0] if node.output else index)!r}"
            raise ConversionError(f"the ONNX -> torch importer failed on {label}: {type(error).__name__}: "
                                  f"{error}") from error
    if missing:
        raise UnsupportedModelError(_unsupported_message(missing, prepared.opset), hint=_HINT)
    results = []
    for value in prepared.outputs:
        results.append(ctx.t(ctx.values[value.name]))
    _notes(ctx, prepared)
    name = class_name or _class_name(graph.name)
    source, state = _render(ctx, name, arguments, results, model)
    producer = f"{model.producer_name} {model.producer_version}".strip()
    layers = sum(1 for line in ctx.init_lines if "= nn." in line and "nn.Parameter" not in line)
    return ImportPlan(source, name, state, inputs, outputs, list(ctx.notes), prepared.weight_count(),
                      prepared.opset, producer, layers, ctx.dropouts)


def _unsupported_message(missing: dict[str, _Unsupported], opset: int) -> str:
    parts = []
    for op_type, entry in missing.items():
        shown = ", ".join(entry.nodes[:3]) + (", ..." if len(entry.nodes) > 3 else "")
        why = f"; {'; '.join(entry.reasons[:2])}" if entry.reasons else ""
        parts.append(f"{op_type} x{entry.count} ({shown}{why})")
    total = sum(e.count for e in missing.values())
    return (f"{total} node(s) of {len(missing)} op type(s) cannot be imported into torch at ONNX opset {opset}: "
            + "; ".join(parts))


def _notes(ctx: ImportContext, prepared: PreparedGraph) -> None:
    if ctx.dropouts:
        ctx.note(f"{ctx.dropouts} Dropout node(s) became nn.Dropout: active in train mode, the identity in eval mode")
    else:
        ctx.note("the graph holds no Dropout: an inference export removes it, so the imported model trains "
                 "without it (nothing is invented; add nn.Dropout to a torch-source model.py if the design had it)")
    stats = [i for i in prepared.initializers.values() if i.role == "statistic"]
    if stats:
        ctx.note("BatchNorm running statistics are buffers: train mode normalises with batch statistics and "
                 "updates them, eval mode uses them")


def _class_name(graph_name: str) -> str:
    if graph_name.strip().lower() in _GENERIC_GRAPH_NAMES:
        return "OnnxModel"
    parts = [p for p in re.split(r"[^0-9A-Za-z]+", graph_name) if p]
    name = "".join(p[:1].upper() + p[1:] for p in parts)[:48]
    if not name:
        return "OnnxModel"
    return name if name[0].isalpha() else f"Model{name}"


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _render(ctx: ImportContext, class_name: str, arguments: list[str], results: list[str],
            model: onnx.ModelProto) -> tuple[str, dict[str, StateEntry]]:
    """The module's source, with lines no output needs (and the layers only they used) left out."""
    needed = set()
    for expr in results:
        needed.update(_IDENT.findall(expr))
    kept: list[str] = []
    for line in reversed(ctx.lines):
        target, _, expr = line.partition(" = ")
        targets = set(_IDENT.findall(target))
        if targets & needed:
            kept.append(line)
            needed.update(_IDENT.findall(expr))
    kept.reverse()
    body = kept + [f"return {', '.join(results)}"]
    used_attrs = set()
    for line in body:
        used_attrs.update(re.findall(r"self\.([A-Za-z_][A-Za-z0-9_]*)", line))
    init_lines = []
    for line in ctx.init_lines:
        match = re.match(r'self\.([A-Za-z_][A-Za-z0-9_]*) =|self\.register_buffer\("([^"]+)"', line)
        attr = (match.group(1) or match.group(2)) if match else None
        if attr is None or attr in used_attrs:
            init_lines.append(line)
    state = {key: entry for key, entry in ctx.state.items() if key.split(".", 1)[0] in used_attrs}
    text = "\n".join(body + init_lines)
    helpers = [source for name, source in ctx.helpers.items() if re.search(rf"\b{name}\(", text)]
    doc_source = model.graph.name or "an ONNX graph"
    producer = f"{model.producer_name} {model.producer_version}".strip() or "an unknown producer"
    params = sum(int(e.array.size) for e in state.values() if e.parameter)
    lines = [
        '"""' + f"{class_name}: a PyTorch module imported from ONNX by interop-torch.",
        "",
        f"Source graph: {doc_source!r} (producer {producer}, ONNX opset {ctx.opset}); "
        f"{params:,} trainable parameters.",
        "Layers and variables are named after the ONNX graph; weights load by name with load_state_dict.",
        "Edit the architecture freely before training (add Dropout, swap the head).",
        '"""',
        "",
        "import torch",
        "import torch.nn.functional as F",
        "from torch import nn",
        "",
    ]
    for helper in helpers:
        lines += ["", helper, ""]
    lines += ["", f"class {class_name}(nn.Module):", "    def __init__(self) -> None:", "        super().__init__()"]
    lines += [f"        {line}" for line in init_lines]
    signature = ", ".join(f"{a}: torch.Tensor" for a in arguments)
    returns = "torch.Tensor" if len(results) == 1 else f"tuple[{', '.join(['torch.Tensor'] * len(results))}]"
    lines += ["", f"    def forward(self{', ' if signature else ''}{signature}) -> {returns}:"]
    lines += [f"        {line}" for line in body]
    return "\n".join(lines) + "\n", state


def instantiate(plan: ImportPlan, filename: str = "<interop-torch generated model.py>") -> Any:
    """Run the plan's source (written by the importer, never read from a file) and load its weights."""
    module_class = define_class(plan.source, plan.class_name, filename)
    return load_weights(module_class, {key: entry.array for key, entry in plan.state.items()})


def define_class(source: str, class_name: str, filename: str) -> Any:
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": "interop_torch_generated", "__file__": filename}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - code the importer just wrote
    return namespace[class_name]


#: Up to this many weight elements, layers are built on the CPU and their random initialisation is
#: thrown away; above it they are built on the meta device. The meta device's function mode costs
#: about 0.15 ms per layer whatever its size, a CPU initialisation about 4 ns per element.
_DIRECT_BUILD_ELEMENTS = 65_536


def load_weights(module_class: Any, arrays: dict[str, np.ndarray], strict: bool = True) -> Any:
    """An instance of ``module_class`` holding ``arrays``: built without real initialisation where that
    would cost time (on the meta device), then given the arrays. The caller's random state is untouched."""
    import torch

    if sum(math.prod(array.shape) for array in arrays.values()) <= _DIRECT_BUILD_ELEMENTS:
        with torch.random.fork_rng(devices=[]):  # the thrown-away initialisation draws no user random numbers
            module = module_class()
    else:
        with torch.device("meta"):
            module = module_class()
    tensors = {key: _tensor(array) for key, array in arrays.items()}
    module.load_state_dict(tensors, strict=strict, assign=True)
    return module


def _tensor(array: Any) -> Any:
    import torch

    if isinstance(array, torch.Tensor):
        return array
    if "bfloat16" in str(array.dtype):  # ml_dtypes' bfloat16: numpy and torch share no buffer type for it
        return torch.from_numpy(np.asarray(array, dtype=np.float32)).to(torch.bfloat16)
    return torch.from_numpy(np.array(array, copy=True))
