"""What a Keras file or SavedModel may contain before Keras or TensorFlow is allowed to open it.

A model file is data from a stranger. Keras' safe mode already refuses Lambda
bytecode; these checks do not rely on it. They read the file without
deserialising anything (JSON, HDF5 headers, the SavedModel protobuf) and refuse,
with the reason, whatever could run code, reach outside the model, or make
TensorFlow touch the file system:

- a Keras config (``config.json`` of a ``.keras`` archive, ``model_config`` of an
  ``.h5`` file) may only name classes and functions of Keras' own namespace, and no
  layer that runs user code or opens another file (Lambda, TFSMLayer,
  TorchModuleWrapper, JaxLayer/FlaxLayer, a lookup whose vocabulary is a path).
  The one exception is interop's own layers (:data:`INTEROP_LAYERS`, the classes
  the ONNX importer writes): exactly those class names, from the module
  ``interop_keras.layers``, under their registered names ``interop_keras>Name``
  (each validates its configuration against fixed tables when it is built);
- an HDF5 file (``.h5``, or the weights inside a ``.keras``) may not link to or
  store data in another file;
- a SavedModel directory may not hold links leading outside it, asset paths outside
  it, TensorFlow 1 initialisation graphs, or graph ops that touch files, call Python
  or are unknown to the installed TensorFlow (see :data:`STATEFUL_OPS_ALLOWED`).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from interop.plugin_api import ModelLoadError

_HINT = "interop never runs code from a model file (see docs/security.md); rebuild or re-export the model without it"

# --------------------------------------------------------------------------- Keras configs

#: Keras layers whose deserialisation runs user code or loads another model.
_CODE_LAYERS = {
    "Lambda": "a Lambda layer holds Python code",
    "TFSMLayer": "a TFSMLayer loads another SavedModel from a path of its choosing",
    "TorchModuleWrapper": "a TorchModuleWrapper holds a pickled torch module",
    "JaxLayer": "a JaxLayer holds Python functions",
    "FlaxLayer": "a FlaxLayer holds a Python module",
}
#: Layers that read their vocabulary from a file when the config gives a string.
_FILE_VOCABULARY_LAYERS = {"StringLookup", "IntegerLookup", "TextVectorization"}


#: The layers interop_keras.layers registers (the ONNX importer's layers for ops Keras
#: has no layer for). Listed here, not imported, so checking a file imports no Keras;
#: tests/plugins keep this list equal to what interop_keras.layers registers.
INTEROP_LAYERS = frozenset({
    "Cast", "ConstantOperand", "CumSum", "DepthToSpace", "Einsum", "Elementwise", "Expand", "Gather", "GatherElements",
    "GatherND", "LocalResponseNormalization", "LogSoftmax", "MatMul", "Pad", "Pooling", "Reduce", "Reshape",
    "ScatterElements", "ScatterND", "SizeOneAxes", "Slice", "SpaceToDepth", "TopK", "Transpose", "Trilu", "Unary",
    "Where",
})
INTEROP_LAYERS_MODULE = "interop_keras.layers"
INTEROP_PACKAGE = "interop_keras"


def _is_keras_module(module: str) -> bool:
    return module == "keras" or module.startswith("keras.")


def _is_interop_layer(node: dict[str, Any]) -> bool:
    """One of interop's own registered layers, named exactly as interop_keras.layers saves it."""
    class_name = node.get("class_name")
    return (
        class_name in INTEROP_LAYERS
        and node.get("module") == INTEROP_LAYERS_MODULE
        and node.get("registered_name") == f"{INTEROP_PACKAGE}>{class_name}"
    )


def keras_config_problems(config: Any) -> list[str]:
    """Every reason to refuse a Keras model config (an empty list when it is plain Keras)."""
    problems: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item)
            return
        if not isinstance(node, dict):
            return
        class_name = node.get("class_name")
        if isinstance(class_name, str):
            problems.extend(_object_problems(node, class_name))
        for value in node.values():
            visit(value)

    visit(config)
    return list(dict.fromkeys(problems))


def _object_problems(node: dict[str, Any], class_name: str) -> Iterator[str]:
    module = node.get("module")
    registered = node.get("registered_name")
    inner = node.get("config")
    if class_name == "__lambda__":
        yield "it holds a Python lambda (bytecode)"
    if class_name in _CODE_LAYERS:
        yield f"{_CODE_LAYERS[class_name]} (layer {class_name!r})"
    if _is_interop_layer(node):
        return
    if module is not None and not isinstance(module, str):
        yield f"object {class_name!r} names a non-string module"
    elif isinstance(module, str) and not _is_keras_module(module):
        if not (class_name == "function" and module == "builtins"):
            yield f"object {class_name!r} comes from module {module!r}, outside Keras"
    if isinstance(registered, str):
        expected = inner if class_name == "function" else class_name
        if ">" in registered or registered != expected:
            yield f"object {class_name!r} is the custom object {registered!r}"
    elif registered is not None:
        yield f"object {class_name!r} has a non-string registered_name"
    if class_name in _FILE_VOCABULARY_LAYERS and isinstance(inner, dict):
        if isinstance(inner.get("vocabulary"), str):
            yield f"layer {class_name!r} reads its vocabulary from the file {inner['vocabulary']!r}"


def _refuse(path: Path, problems: Iterable[str]) -> None:
    found = list(problems)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ModelLoadError(f"{path}: refused: {found[0]}{more}", hint=_HINT)


# --------------------------------------------------------------------------- HDF5


def hdf5_problems(handle: Any) -> list[str]:
    """Links to other files, external storage and virtual datasets in an open h5py.File."""
    import h5py

    problems: list[str] = []

    def on_link(name: str, link: Any) -> None:
        if isinstance(link, h5py.ExternalLink):
            problems.append(f"HDF5 entry {name!r} links to the file {link.filename!r}")

    def on_object(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset):
            if obj.external:
                problems.append(f"HDF5 dataset {name!r} stores its data in another file")
            if obj.is_virtual:
                problems.append(f"HDF5 dataset {name!r} is a virtual dataset over other files")

    handle.visititems_links(on_link)
    handle.visititems(on_object)
    return problems


def _open_hdf5_problems(source: Any, where: str) -> list[str]:
    import h5py

    try:
        with h5py.File(source, "r") as handle:
            return hdf5_problems(handle)
    except OSError as exc:
        raise ModelLoadError(f"{where}: not a readable HDF5 file: {str(exc).splitlines()[0][:200]}") from None


# --------------------------------------------------------------------------- .keras / .h5


def check_keras_file(path: Path) -> None:
    """Refuse a .keras or .h5 file whose config or weights could run code or read other files."""
    if path.suffix.lower() in {".h5", ".hdf5"}:
        _check_h5(path)
    else:
        _check_keras_archive(path)


def _check_h5(path: Path) -> None:
    import h5py

    _refuse(path, _open_hdf5_problems(str(path), str(path)))
    with h5py.File(str(path), "r") as handle:
        raw = handle.attrs.get("model_config")
    if raw is None:
        return  # Keras refuses it itself ("no model config")
    _refuse(path, keras_config_problems(_parse_json(path, raw, "model_config")))


def _check_keras_archive(path: Path) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelLoadError(f"{path}: not a valid Keras archive: {exc}") from None
    with archive:
        for name in archive.namelist():
            member = PurePosixPath(name.replace("\\", "/"))
            if member.is_absolute() or ".." in member.parts or ":" in name:
                _refuse(path, [f"the archive member {name!r} points outside the archive"])
        try:
            config = archive.read("config.json")
        except KeyError:
            return  # Keras refuses it itself
        _refuse(path, keras_config_problems(_parse_json(path, config, "config.json")))
        for name in archive.namelist():
            if name.endswith(".h5"):
                data = io.BytesIO(archive.read(name))
                _refuse(path, _open_hdf5_problems(data, f"{path} ({name})"))


def _parse_json(path: Path, raw: Any, what: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path}: {what} is not valid JSON: {exc}") from None


# --------------------------------------------------------------------------- SavedModel

#: Stateful TensorFlow ops a SavedModel's functions may use: variables, tables filled
#: from tensors, control flow, calls, random numbers, tensor arrays. Any other
#: stateful op (file I/O, Python callbacks, printing, summaries, datasets,
#: collectives, RPC, XLA modules...) is refused.
STATEFUL_OPS_ALLOWED = frozenset({
    "VarHandleOp", "ReadVariableOp", "AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp",
    "VarIsInitializedOp", "DestroyResourceOp", "DisableCopyOnRead", "ResourceGather", "ResourceGatherNd",
    "ResourceScatterUpdate", "ResourceScatterAdd", "ResourceScatterSub", "ResourceScatterMul",
    "ResourceScatterDiv", "ResourceScatterMin", "ResourceScatterMax", "ResourceScatterNdUpdate",
    "ResourceScatterNdAdd", "ResourceScatterNdSub", "ResourceStridedSliceAssign",
    "StatefulPartitionedCall", "If", "While", "Case", "Assert",
    "HashTableV2", "MutableHashTableV2", "MutableHashTableOfTensorsV2", "MutableDenseHashTableV2",
    "AnonymousHashTable", "AnonymousMutableHashTable", "AnonymousMutableHashTableOfTensors",
    "AnonymousMutableDenseHashTable", "LookupTableFindV2", "LookupTableImportV2", "LookupTableInsertV2",
    "LookupTableSizeV2", "LookupTableExportV2", "LookupTableRemoveV2", "InitializeTableV2",
    "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal", "RandomShuffle",
    "Multinomial", "RandomGamma", "RandomPoisson", "RandomPoissonV2", "StatefulStandardNormalV2",
    "StatefulUniform", "StatefulUniformInt", "StatefulUniformFullInt", "StatefulTruncatedNormal",
    "RngReadAndSkip", "RngSkip", "NonDeterministicInts",
    "TensorArrayV3", "TensorArrayReadV3", "TensorArrayWriteV3", "TensorArrayGatherV3",
    "TensorArrayScatterV3", "TensorArrayConcatV3", "TensorArraySplitV3", "TensorArraySizeV3",
    "TensorArrayCloseV3", "TensorArrayGradV3", "TensorArrayGradWithShape",
    "StackV2", "StackPushV2", "StackPopV2", "StackCloseV2",
})
#: Ops TensorFlow does not mark stateful that still read files, call Python or run
#: foreign code; refused wherever they appear.
STATELESS_OPS_REFUSED = frozenset({
    "ReadFile", "MatchingFiles", "PyFuncStateless", "ImmutableConst", "DecodeProtoV2", "EncodeProto",
    "GenerateVocabRemapping", "InitializeTableFromTextFile", "MlirPassthroughOp",
    "DebugIdentity", "DebugNanCount", "DebugNumericSummary",
})
#: Checkpoint ops allowed only in the functions the SavedModel's saver calls (which
#: loading never runs: TensorFlow 2 restores variables itself, from variables/).
_SAVER_OPS = frozenset({"SaveV2", "RestoreV2", "MergeV2Checkpoints"})


def _op_refusal(op: str, saver: bool, library: set[str]) -> str | None:
    from tensorflow.python.framework import op_def_registry

    if op in library:
        return None  # a call of one of the model's functions, checked on its own
    if op in STATELESS_OPS_REFUSED or "Dataset" in op:
        return f"it uses the op {op}, which reads files or runs code outside the graph"
    if saver and op in _SAVER_OPS:
        return None
    definition = op_def_registry.get(op)
    if definition is None:
        return f"it uses the op {op}, unknown to this TensorFlow (a custom op library)"
    if definition.is_stateful and op not in STATEFUL_OPS_ALLOWED:
        return f"it uses the op {op}, which has side effects (files, Python, printing, network...)"
    return None


def _node_name(reference: str) -> str:
    return reference.lstrip("^").split(":")[0]


def _called_functions(node: Any, library: set[str]) -> Iterator[str]:
    if node.op in library:
        yield node.op
    for value in node.attr.values():
        if value.HasField("func"):
            yield value.func.name
        for func in value.list.func:
            yield func.name


def _reachable(roots: Iterable[str], calls: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = [r for r in roots if r in calls]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(c for c in calls[name] if c in calls and c not in seen)
    return seen


def _ancestors(start: Iterable[str], producers: dict[str, list[str]]) -> set[str]:
    """Names of the nodes (or function arguments) a value is computed from."""
    seen: set[str] = set()
    todo = [_node_name(s) for s in start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_node_name(i) for i in producers.get(name, []) if not i.startswith("^"))
    return seen


def _saver_path_problems(nodes: Iterable[Any], allowed_sources: set[str], where: str) -> Iterator[str]:
    """Checkpoint ops whose path does not come from the caller (a path fixed inside the model)."""
    nodes = list(nodes)
    producers = {n.name: list(n.input) for n in nodes}
    for node in nodes:
        if node.op not in _SAVER_OPS:
            continue
        paths = node.input[:2] if node.op == "MergeV2Checkpoints" else node.input[:1]
        if not (_ancestors(paths, producers) & allowed_sources):
            yield f"its {node.op} op in {where} uses a file path fixed inside the model"


def saved_model_problems(path: Path) -> list[str]:
    """Every reason to refuse the SavedModel directory ``path``, read without loading it."""
    from tensorflow.core.protobuf import saved_model_pb2

    problems = list(_directory_problems(path))
    if problems:
        return problems
    saved = saved_model_pb2.SavedModel()
    try:
        saved.ParseFromString((path / "saved_model.pb").read_bytes())
    except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError has no public base
        raise ModelLoadError(f"{path}: saved_model.pb is not a SavedModel protobuf: {exc}") from None
    for meta_graph in saved.meta_graphs:
        problems.extend(_meta_graph_problems(path, meta_graph))
    return list(dict.fromkeys(problems))


def _directory_problems(path: Path) -> Iterator[str]:
    root = path.resolve()
    for folder, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            entry = Path(folder) / name
            if entry.is_symlink():
                try:
                    target = entry.resolve()
                except (OSError, RuntimeError):  # a loop of links
                    target = Path("/")
                if target != root and root not in target.parents:
                    yield f"{entry.relative_to(path)} is a link to {os.readlink(entry)}, outside the SavedModel"


def _meta_graph_problems(path: Path, meta_graph: Any) -> Iterator[str]:
    if not meta_graph.HasField("object_graph_def"):
        yield ("it is a TensorFlow 1 SavedModel, whose initialisation graph runs when it loads; "
               "interop opens TensorFlow 2 SavedModels only")
        return
    for asset in meta_graph.asset_file_def:
        relative = PurePosixPath(asset.filename.replace("\\", "/"))
        if relative.is_absolute() or ".." in relative.parts or ":" in asset.filename:
            yield f"its asset {asset.filename!r} lies outside the SavedModel"
        else:
            target = (path / "assets" / relative).resolve()
            if path.resolve() not in target.parents:
                yield f"its asset {asset.filename!r} lies outside the SavedModel"
    graph = meta_graph.graph_def
    functions = {f.signature.name: f for f in graph.library.function}
    library = set(functions)
    calls = {name: {c for n in f.node_def for c in _called_functions(n, library)} for name, f in functions.items()}

    # The saver's nodes in the top-level graph (what saver_def's save and restore run).
    saver = meta_graph.saver_def
    top_producers = {n.name: list(n.input) for n in graph.node}
    saver_roots = [r for r in (saver.save_tensor_name, saver.restore_op_name) if r]
    saver_nodes = _ancestors(saver_roots, top_producers) if saver_roots else set()
    model_top = [n for n in graph.node if n.name not in saver_nodes]
    model_roots = set(meta_graph.object_graph_def.concrete_functions)
    model_roots |= {c for n in model_top for c in _called_functions(n, library)}
    saver_only_roots = {c for n in graph.node if n.name in saver_nodes for c in _called_functions(n, library)}
    model_functions = _reachable(model_roots, calls)
    saver_functions = _reachable(saver_only_roots, calls) - model_functions

    for node in model_top:
        if (reason := _op_refusal(node.op, False, library)) is not None:
            yield reason
    top_saver = [n for n in graph.node if n.name in saver_nodes]
    for node in top_saver:
        if (reason := _op_refusal(node.op, True, library)) is not None:
            yield reason
    filename = _node_name(saver.filename_tensor_name) if saver.filename_tensor_name else ""
    yield from _saver_path_problems(top_saver, {filename} if filename else set(), "the saver graph")
    for name, function in functions.items():
        in_saver = name in saver_functions
        for node in function.node_def:
            if (reason := _op_refusal(node.op, in_saver, library)) is not None:
                yield reason
        if in_saver:
            arguments = {arg.name for arg in function.signature.input_arg}
            yield from _saver_path_problems(function.node_def, arguments, f"function {name}")


def check_saved_model(path: Path) -> None:
    """Refuse a SavedModel directory that could run code or touch files when loaded or run."""
    _refuse(path, saved_model_problems(path))
