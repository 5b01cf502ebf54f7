"""Translate an ONNX model into a Core ML ML Program with coremltools' MIL builder.

Order of work: validate options → pre-pass → collect every unsupported op and
raise one error → build the MIL program node by node → ``ct.convert`` it with
``skip_model_load=True`` (no Core ML runtime on Linux) → attach metadata.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import importlib.metadata
import json
import os
import pathlib
import tempfile
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx

from interop.plugin_api import (
    METADATA_INTEROP_VERSION,
    METADATA_IO_NAMES,
    METADATA_PRECISION,
    METADATA_SCALAR_IO,
    METADATA_SOURCE_OPSET,
    METADATA_SOURCE_PRODUCER,
    METADATA_WEIGHT_COMPRESSION,
    VALUE_MAP_METADATA_KEY,
    option_values,
)

from interop_coreml.onnx2mil import op_converters, symbolic
from interop_coreml.onnx2mil.context import ConversionContext
from interop_coreml.onnx2mil.errors import ConversionError, NeedsStaticDims, NodeNotConvertible, UnsupportedModelError
from interop_coreml.onnx2mil.high_rank import HighRank
from interop_coreml.onnx2mil.inputs import (
    NARROWED_IO_KEY, SHARED_DIMS_KEY, InputShapes, narrowed_types, shared_dims, parse_input_shape, resolve_input_ranges,
)
from interop_coreml.onnx2mil.ops._common import ONNX_TO_MIL_DTYPE
from interop_coreml.onnx2mil.prepass import PreparedGraph, default_opset, prepare
from interop_coreml.onnx2mil.subgraphs import all_nodes


# Element types a Core ML model input may carry map to the MIL dtype we declare.
_INPUT_TYPES = ONNX_TO_MIL_DTYPE


@dataclass
class _Unsupported:
    count: int = 0
    nodes: list[str] = field(default_factory=list)


def _settings(**given: Any) -> dict[str, Any]:
    """The converter options, checked against (and defaulted from) the plugin's one declaration of them."""
    from interop_coreml import CONVERTER_OPTIONS

    return option_values(CONVERTER_OPTIONS, given)


def find_unsupported(prepared: PreparedGraph, opset: int) -> dict[str, _Unsupported]:
    """Op types (and input dtypes) with no converter, with counts and node names."""
    missing: dict[str, _Unsupported] = collections.OrderedDict()
    for index, node in enumerate(all_nodes(prepared.model.graph)):
        if op_converters.converter_for(node.domain, node.op_type, opset) is None:
            key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
            newer = op_converters.unverified_schema(node.domain, node.op_type, opset)
            if newer is not None:
                key += f" (its opset-{newer} definition is newer than the translator knows: {op_converters.VERIFIED_OPSET})"
            entry = missing.setdefault(key, _Unsupported())
            entry.count += 1
            entry.nodes.append(node.name or f"#{index}")
    for value in [*prepared.model.graph.input, *prepared.model.graph.output]:
        elem = value.type.tensor_type.elem_type if value.type.HasField("tensor_type") else None
        if elem in _INPUT_TYPES and value.type.tensor_type.HasField("shape") and any(
            d.HasField("dim_value") and d.dim_value == 0 for d in value.type.tensor_type.shape.dim
        ):
            entry = missing.setdefault("empty (zero-sized) graph input/output", _Unsupported())
            entry.count += 1
            entry.nodes.append(value.name)
        if elem not in _INPUT_TYPES:
            type_name = onnx.TensorProto.DataType.Name(elem) if elem else "non-tensor"
            entry = missing.setdefault(f"{type_name} graph input/output", _Unsupported())
            entry.count += 1
            entry.nodes.append(value.name)
    return missing


def unsupported_message(missing: dict[str, _Unsupported], opset: int) -> str:
    parts = []
    for op_type, entry in missing.items():
        shown = ", ".join(entry.nodes[:3]) + (", ..." if len(entry.nodes) > 3 else "")
        parts.append(f"{op_type} x{entry.count} (first: {shown})")
    return f"{len(missing)} unsupported op type(s) for Core ML at ONNX opset {opset}: " + "; ".join(parts)


_HINT = (
    "see docs/coreml-op-coverage.md for the supported ops; re-export with a different opset, "
    "or replace these ops in the source model"
)


def _static_dims_hint(graph: onnx.GraphProto, ranges: dict) -> str:
    """How to fix the dynamic dims with the converter's input_shape option, the inputs' dims filled in."""
    shapes = []
    for value in graph.input:
        dims = [str(low) if low == high else f"{low}..{high}" for low, high in ranges.get(value.name, [])]
        if any(".." in d for d in dims):
            shapes.append(f"{value.name}={','.join(dims)}")
    example = ";".join(shapes) or "NAME=1,3,224,224"
    return (f"fix the dims it needs with -O input_shape (these are the ranges used now: -O input_shape='{example}'; "
            "give the size the model runs at in place of a range)")


def _dims(value: onnx.ValueInfoProto) -> list:
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None) for d in shape.dim]


def _build_program(prepared: PreparedGraph, opset: int, target: Any, max_dynamic_dim: int,
                   input_shape: InputShapes | None = None):
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import Function, Program, get_new_symbol, types

    graph = prepared.model.graph
    ctx = ConversionContext(opset, target)
    ctx.symbolic = prepared.symbolic
    ranges = resolve_input_ranges(graph, input_shape or {}, max_dynamic_dim)
    symbols: dict[str, Any] = {}
    placeholders, input_types, input_names = {}, [], {}
    mil_types = {"fp32": types.fp32, "fp16": types.fp16, "int32": types.int32, "bool": types.int32}
    for value in graph.input:
        dims = _dims(value)
        elem = value.type.tensor_type.elem_type
        declared = _INPUT_TYPES[elem]
        if declared == "fp16" and target < ct.target.iOS16:
            declared = "fp32"  # fp16 inputs need iOS16; cast inside the program instead
        mil_shape, ct_shape = [], []
        for axis, dim in enumerate(dims):
            low, high = ranges[value.name][axis]
            if low == high:
                mil_shape.append(low)
                ct_shape.append(low)
            else:
                key = dim or f"_anon_{value.name}_{axis}"
                if key not in symbols:
                    symbols[key] = get_new_symbol()
                    ctx.dims.declare(symbols[key], low, high)
                mil_shape.append(symbols[key])
                ct_shape.append(ct.RangeDim(low, high, default=low))
        name = ctx.mil_name(value.name)
        input_names[name] = value.name
        if not mil_shape:
            # Core ML has no rank-0 inputs: take a 1-element vector and squeeze it inside.
            mil_shape, ct_shape = [1], [1]
        placeholders[name] = mb.placeholder(shape=mil_shape, dtype=mil_types[declared])
        np_type = {"fp32": np.float32, "fp16": np.float16, "int32": np.int32, "bool": np.int32}[declared]
        input_types.append(ct.TensorType(name=name, shape=ct_shape, dtype=np_type))

    output_names: dict[str, str] = {}
    scalars: dict[str, list[str]] = {"inputs": [v.name for v in graph.input if not _dims(v)], "outputs": []}
    prog = Program()
    with Function(placeholders, opset_version=target) as func:
        for value in graph.input:
            var = func.inputs[ctx.mil_name(value.name)]
            elem = value.type.tensor_type.elem_type
            if not _dims(value):
                var = mb.squeeze(x=var, axes=[0])
            if elem == onnx.TensorProto.BOOL:
                var = mb.cast(x=var, dtype="bool")
            elif elem == onnx.TensorProto.FLOAT16 and var.dtype != types.fp16:
                var = mb.cast(x=var, dtype="fp16")
            ctx.set(value.name, var)
        for name, array in prepared.constants.items():
            ctx.set(name, array)
        reserved = [ctx.mil_name(o.name) for o in graph.output]
        for node in graph.node:
            fn = op_converters.converter_for(node.domain, node.op_type, opset)
            label = f"{node.op_type} node {node.name or node.output[0]!r}"
            try:
                convert_node(ctx, node, fn, prepared.elem_types)
            except NeedsStaticDims as error:
                raise UnsupportedModelError(f"{label} cannot be converted: {error.reason}",
                                            hint=_static_dims_hint(graph, ranges)) from None
            except NodeNotConvertible as error:
                raise UnsupportedModelError(f"{label} cannot be converted: {error.reason}", hint=_HINT) from None
            except (UnsupportedModelError, ConversionError):
                raise
            except Exception as error:  # noqa: BLE001 - report which node broke, with MIL's reason
                reason = f"{type(error).__name__}: {_first_line(error)}"
                if _raised_by_coremltools(error):
                    # MIL's own validation refused the op: Core ML cannot express this node.
                    raise UnsupportedModelError(f"{label} cannot be converted: Core ML's MIL rejects it: {reason}",
                                                hint=_HINT) from error
                raise ConversionError(f"{label} failed to convert: {reason}") from error
        outputs = []
        for value, name in zip(graph.output, reserved):
            result = ctx.get(value.name)
            if isinstance(result, HighRank):
                raise UnsupportedModelError(
                    f"graph output {value.name!r} has rank {result.rank}; Core ML tensors have rank <= 5",
                    hint="reshape the output to rank 5 or less in the source model")
            if not hasattr(result, "op"):  # a constant output
                result = mb.const(val=result)
            if result.rank == 0:
                result = mb.expand_dims(x=result, axes=[0])  # Core ML outputs have rank >= 1
                scalars["outputs"].append(value.name)
            if result.dtype == types.bool:
                result = mb.cast(x=result, dtype="int32")
            elif result.dtype == types.fp16 and target < ct.target.iOS16:
                result = mb.cast(x=result, dtype="fp32")
            if result.name != name or result in outputs or result.op is None:
                if result.name == name:
                    result.name = name + "_value"
                result = mb.identity(x=result, name=name)
            outputs.append(result)
            output_names[name] = value.name
        func.set_outputs(outputs)
        prog.add_function("main", func)
    value_map = {onnx_name: var.name for onnx_name, var in ctx.produced.items()}
    return prog, input_types, input_names, output_names, scalars, value_map


def convert_node(ctx: ConversionContext, node: onnx.NodeProto, fn: Callable[..., None],
                 elem_types: dict[str, int]) -> None:
    """Bind the node's outputs in ``ctx``: shape arithmetic that turns out static becomes constants,
    anything else goes through the op's converter ``fn`` (the Loop converter calls this for its body)."""
    values = symbolic.evaluate(node, ctx.dims, ctx)
    if values is not None and len(values) == len(node.output) and all(v.concrete for v in values):
        # Shape arithmetic whose result is static after all: a constant, no ops.
        for name, value in zip(node.output, values):
            ctx.set(name, value.numpy(elem_types.get(name)))
        return
    fn(ctx, node)
    if values is not None:
        ctx.dims.values.update(zip(node.output, values))
    _check_ranks(ctx, node)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "(no message)"


def _raised_by_coremltools(error: BaseException) -> bool:
    """The innermost frame of the traceback is coremltools code (not this translator's)."""
    tb = error.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return last is not None and f"{os.sep}coremltools{os.sep}" in last


def _failing_pass(error: BaseException) -> str | None:
    """The coremltools graph pass whose code raised ``error``, if any."""
    tb = error.__traceback__
    name = None
    while tb is not None:
        frame = tb.tb_frame
        owner = frame.f_locals.get("self")
        if owner is not None and type(owner).__module__.startswith(("coremltools.converters.mil.mil.passes",
                                                                       "coremltools.converters.mil.backend",
                                                                       "interop_coreml.onnx2mil.passes")):
            name = type(owner).__name__
        tb = tb.tb_next
    return name


def _check_ranks(ctx: ConversionContext, node: onnx.NodeProto) -> None:
    for name in node.output:
        if name and ctx.has(name):
            value = ctx.get(name)
            if isinstance(value, HighRank):
                continue  # stands for a rank > 5 tensor without building one (onnx2mil/high_rank.py)
            rank = np.ndim(value) if isinstance(value, np.ndarray) else value.rank
            if rank > 5 and not isinstance(value, np.ndarray):
                raise NodeNotConvertible(f"output {name!r} has rank {rank}; Core ML tensors have rank <= 5")


def convert_model(
    model: onnx.ModelProto | Callable[[], onnx.ModelProto],
    *,
    precision: str | None = None,
    minimum_deployment_target: str | None = None,
    max_dynamic_dim: int | None = None,
    input_shape: str | None = None,
    compress: str | None = None,
    external_data_dir: str | pathlib.Path | None = None,
    timings: dict[str, float] | None = None,
):
    """Convert an ONNX model to a Core ML ML Program (``coremltools.models.MLModel``).

    ``precision="fp32"`` computes in float32 so a fidelity check against
    onnxruntime is meaningful; ``"fp16"`` lets Core ML store weights and compute
    in float16 (inputs/outputs stay float32), halving size at ~1e-3 relative
    error. Symbolic ONNX dims become ``RangeDim(1, max_dynamic_dim)`` unless ``input_shape``
    bounds them (``"name=1..8,1..512;other=..."``, see :mod:`~interop_coreml.onnx2mil.inputs`). Options
    left at None take the defaults the plugin declares (``interop_coreml.CONVERTER_OPTIONS``);
    a bad value raises InteropError (exit 2).
    A model loaded with ``load_external_data=False`` has its external initializers mapped from
    ``external_data_dir`` (the model's folder) instead of read into memory.
    ``model`` may be a loader, called once after the options are checked: the translator then holds
    the only reference to the ModelProto and drops it after the pre-pass, so the protobuf copy of the
    weights is gone before the MIL program is built (``interop convert`` converts this way).
    ``compress`` (``int8``, ``palettize8``, ``palettize4``) compresses the weights afterwards
    (:mod:`~interop_coreml.onnx2mil.compress`); compressed weights need iOS16, so a lower
    ``minimum_deployment_target`` is raised to iOS16.
    Raises UnsupportedModelError listing every unsupported op before building.
    ``timings``, if given, receives the CPU seconds of each stage (``prepare``: ONNX shape inference
    and constant folding; ``build``: the MIL program; ``passes``: coremltools' graph passes, each also
    as ``pass:NAME``; ``serialise``: the rest of ``ct.convert``, writing the ML Program and its weights;
    ``compress``: coremltools.optimize, with ``compress``).
    """
    import coremltools as ct

    from interop_coreml.onnx2mil.pass_manager import lean_pass_manager

    stages: dict[str, float] = {}
    clock = [time.process_time()]

    def stage(name: str) -> None:
        now = time.process_time()
        stages[name] = stages.get(name, 0.0) + now - clock[0]
        clock[0] = now

    settings = _settings(precision=precision, minimum_deployment_target=minimum_deployment_target,
                         max_dynamic_dim=max_dynamic_dim, input_shape=input_shape, compress=compress)
    precision, max_dynamic_dim, compress = settings["precision"], settings["max_dynamic_dim"], settings["compress"]
    target = getattr(ct.target, settings["minimum_deployment_target"])
    if compress != "none":
        target = max(target, ct.target.iOS16)
    shapes = parse_input_shape(settings["input_shape"])
    if callable(model):
        model = model()
    resolve_input_ranges(model.graph, shapes, max_dynamic_dim)  # a bad spec fails before any work
    opset = default_opset(model)
    prepared = prepare(model, external_data_dir)
    del model  # the pre-pass's copy has what the rest needs; a loaded model is freed here
    missing = find_unsupported(prepared, opset)
    if missing:
        raise UnsupportedModelError(unsupported_message(missing, opset), hint=_HINT)
    stage("prepare")
    prog, input_types, input_names, output_names, scalars, value_map = _build_program(
        prepared, opset, target, max_dynamic_dim, shapes)
    # The program holds the weights it uses; the pre-pass's references would only keep alive
    # the arrays coremltools' fusions replace (conv + batch norm, ...).
    prepared.constants.clear()
    stage("build")
    pass_seconds: dict[str, float] = {}
    compute = ct.precision.FLOAT32 if precision == "fp32" else ct.precision.FLOAT16
    # ct.convert ends with a full gc.collect(), which costs seconds in a process
    # holding torch/TensorFlow heaps; freezing the existing objects keeps that
    # collection to what this conversion allocated.
    try:
        with frozen_heap(), lean_pass_manager(pass_seconds):
            mlmodel = _ct_convert(ct, prog, input_types, compute, target)
    except Exception as error:  # noqa: BLE001 - coremltools' passes and backend refuse with assorted types
        failing = _failing_pass(error)
        where = f" in coremltools' {failing}" if failing else ""
        raise UnsupportedModelError(
            f"Core ML rejected the translated program{where}: {type(error).__name__}: {_first_line(error)}",
            hint="set INTEROP_DEBUG=1 for the full trace; please report this model",
        ) from error
    stage("convert")
    if compress != "none":
        from interop_coreml.onnx2mil.compress import compress_weights

        mlmodel = compress_weights(mlmodel, compress)
        mlmodel.user_defined_metadata[METADATA_WEIGHT_COMPRESSION] = compress
        stage("compress")
    _record_metadata(mlmodel, prepared.model, opset, input_names, output_names, precision)
    # Variables coremltools' passes removed (fused, dead) are simply absent from the saved program.
    mlmodel.user_defined_metadata[VALUE_MAP_METADATA_KEY] = json.dumps(value_map)  # in computation order
    if scalars["inputs"] or scalars["outputs"]:
        mlmodel.user_defined_metadata[METADATA_SCALAR_IO] = json.dumps(scalars, sort_keys=True)
    shared = shared_dims(prepared.model.graph, resolve_input_ranges(prepared.model.graph, shapes, max_dynamic_dim),
                         {onnx_name: mil for mil, onnx_name in input_names.items()})
    if shared:
        mlmodel.user_defined_metadata[SHARED_DIMS_KEY] = json.dumps(shared, sort_keys=True)
    narrowed = narrowed_types(prepared.model.graph)
    if narrowed["inputs"] or narrowed["outputs"]:
        mlmodel.user_defined_metadata[NARROWED_IO_KEY] = json.dumps(narrowed, sort_keys=True)
    stage("convert")
    if timings is not None:
        passes = sum(pass_seconds.values())
        timings.update(prepare=stages["prepare"], build=stages["build"], passes=passes,
                       serialise=stages["convert"] - passes)
        timings.update({f"pass:{name}": seconds for name, seconds in pass_seconds.items()})
        if "compress" in stages:
            timings["compress"] = stages["compress"]
    return mlmodel


def _ct_convert(ct, prog, input_types, compute, target):
    from interop_coreml.onnx2mil.passes import pass_pipeline

    return ct.convert(
        prog,
        convert_to="mlprogram",
        inputs=input_types,
        compute_precision=compute,
        minimum_deployment_target=target,
        skip_model_load=True,
        pass_pipeline=pass_pipeline(),
    )


def _interop_version() -> str:
    try:
        return importlib.metadata.version("interop")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _record_metadata(mlmodel, model, opset, input_names, output_names, precision) -> None:
    meta = mlmodel.user_defined_metadata
    meta[METADATA_IO_NAMES] = json.dumps({"inputs": input_names, "outputs": output_names}, sort_keys=True)
    producer = model.producer_name + (f" {model.producer_version}" if model.producer_version else "")
    meta[METADATA_SOURCE_PRODUCER] = producer.strip() or "unknown"
    meta[METADATA_SOURCE_OPSET] = str(opset)
    meta[METADATA_INTEROP_VERSION] = _interop_version()
    meta[METADATA_PRECISION] = precision


_frozen_depth = 0


@contextlib.contextmanager
def frozen_heap():
    """Keep the objects that exist now out of the garbage collector's passes (``gc.freeze``), reentrant."""
    global _frozen_depth
    if _frozen_depth == 0:
        gc.freeze()
    _frozen_depth += 1
    try:
        yield
    finally:
        _frozen_depth -= 1
        if _frozen_depth == 0:
            gc.unfreeze()


def save_mlpackage(model: onnx.ModelProto | Callable[[], onnx.ModelProto], path: pathlib.Path,
                   **options: Any) -> None:
    """Convert ``model`` (or a loader of it, see :func:`convert_model`) and write the ``.mlpackage`` at ``path``.

    Returns the conversion's memory before it returns (:func:`_return_freed_memory`).
    """
    with frozen_heap():
        mlmodel = convert_model(model, **options)
        path = pathlib.Path(path)
        if path.suffix == ".mlpackage":
            mlmodel.save(str(path))
        else:
            # coremltools appends ".mlpackage" to other names; the caller wants exactly ``path``.
            with tempfile.TemporaryDirectory(dir=path.parent, prefix=".onnx2mil-") as tmp:
                staged = pathlib.Path(tmp) / "model.mlpackage"
                mlmodel.save(str(staged))
                os.replace(staged, path)
        del mlmodel
        _return_freed_memory()


def _return_freed_memory() -> None:
    """Free the finished conversion and give its memory back to the system.

    The MIL program (the weights as consts) is a graph of reference cycles, so it goes only
    with a collection; the heap from before the conversion is frozen (:func:`frozen_heap`),
    so this one sees only the conversion's objects. Then the freed heap is returned
    (:mod:`interop_coreml.memory`), so that reading the package back does not add its copy of
    the weights on top of it.
    """
    from interop_coreml.memory import return_freed_memory

    gc.collect()
    return_freed_memory()
