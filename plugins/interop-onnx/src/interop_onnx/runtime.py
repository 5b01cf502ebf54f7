"""ONNX Runtime as an interop runtime: load an .onnx file, run numpy feeds on the CPU."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from interop.plugin_api import IntermediateSpec, ModelLoadError, TensorSpec
from interop_onnx.sniff import sniff_onnx

_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32", "tensor(uint64)": "uint64", "tensor(bool)": "bool",
    "tensor(string)": "str",
}


def session_options():  # type: ignore[no-untyped-def]
    """SessionOptions of every onnxruntime session this plugin opens: errors only, and no idle spinning.

    onnxruntime's intra-op threads busy-wait between runs by default. A check runs onnxruntime
    beside TensorFlow, PyTorch or the Core ML interpreter and numpy's comparisons in one process,
    and those spinning threads took the CPU from all of them (on 2 cores the Keras reference of a
    check ran 1.5-2x slower once an onnxruntime session existed). Threads still work in parallel
    within a run; they block when idle.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _spec(arg) -> TensorSpec:  # type: ignore[no-untyped-def]
    shape = tuple(d if isinstance(d, int) else (d or None) for d in arg.shape)
    return TensorSpec(arg.name, _ORT_TYPES.get(arg.type, arg.type), shape)


class OnnxRuntimeSession:
    """An onnxruntime.InferenceSession behind interop's Session protocol."""

    def __init__(self, path: Path):
        # The same refusals as format detection (truncated file, opset newer than onnx knows), for
        # callers that open a session without detecting the format first.
        reason = sniff_onnx(Path(path))
        if reason:
            raise ModelLoadError(f"{path}: not a valid onnx model: {reason}")
        import onnxruntime as ort

        options = session_options()
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelLoadError(f"{path}: onnxruntime cannot load it: {first}") from exc
        self._path = Path(path)
        self._options = options
        self._marked: object = None  # the session with every intermediate value as an output, made on demand
        self.engine = "onnxruntime (CPUExecutionProvider)"
        self.inputs = [_spec(a) for a in self._session.get_inputs()]
        self.outputs = [_spec(a) for a in self._session.get_outputs()]
        self.versions = {"onnxruntime": ort.__version__}
        # The model's metadata_props (plugin API 1.1 Session.metadata): a producer may record
        # interop.precision there, as interop's own converters do in their formats.
        self.metadata = dict(self._session.get_modelmeta().custom_metadata_map)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [o.name for o in self.outputs]
        values = self._session.run(names, dict(feeds))
        return dict(zip(names, values))


    # ------------------------------------------------ plugin API 1.1: intermediate values

    def _graph(self):  # type: ignore[no-untyped-def]
        import onnx

        # Weights stay on disk: only the graph's structure is needed here.
        return onnx.load(str(self._path), load_external_data=False)

    def intermediates(self) -> list[IntermediateSpec]:
        """Every value a node of the main graph computes, in the graph's (topological) order.

        ``scope`` is the PyTorch module path when torch.onnx recorded one
        (``pkg.torch.onnx.name_scopes``), else the name's ``/``-separated path (tf2onnx
        names values after the Keras layers: ``model/dense/BiasAdd:0``).
        """
        graph = self._graph().graph
        constants = {init.name for init in graph.initializer}
        constants |= {out for node in graph.node if node.op_type == "Constant" for out in node.output}
        specs = []
        for node in graph.node:
            if node.op_type == "Constant":
                continue
            inputs = tuple(name for name in node.input if name and name not in constants)
            for name in node.output:
                if name:
                    specs.append(IntermediateSpec(name=name, op_type=node.op_type, op_name=node.name,
                                                  inputs=inputs, scope=_scope(node, name)))
        return specs

    def run_intermediates(self, feeds: Mapping[str, np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
        """The named values for ``feeds``: the model is run with them marked as graph outputs."""
        if self._marked is None:
            self._marked = self._marked_session()
        values = self._marked.run(list(names), dict(feeds))  # type: ignore[attr-defined]
        return dict(zip(names, values))

    def input_index_ranges(self) -> dict[str, tuple[int, int]]:
        """Integer inputs used as Gather indices into an initializer (an embedding): their valid rows."""
        graph = self._graph().graph
        initializers = {init.name: tuple(init.dims) for init in graph.initializer}
        integer_inputs = {value.name for value in graph.input
                          if value.type.tensor_type.elem_type in _INTEGER_TYPES}
        # Value-preserving ops between a graph input and the lookup.
        passthrough = {"Cast", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"}
        origin = {name: name for name in integer_inputs}
        ranges: dict[str, tuple[int, int]] = {}
        for node in graph.node:
            if node.op_type in passthrough and node.input and node.input[0] in origin:
                for name in node.output:
                    origin[name] = origin[node.input[0]]
            elif node.op_type == "Gather" and len(node.input) == 2 and node.input[1] in origin \
                    and node.input[0] in initializers:
                axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
                dims = initializers[node.input[0]]
                if dims and -len(dims) <= axis < len(dims) and dims[axis] > 0:
                    source = origin[node.input[1]]
                    high = int(dims[axis]) - 1
                    ranges[source] = (0, min(high, ranges.get(source, (0, high))[1]))
        return ranges

    def _marked_session(self):  # type: ignore[no-untyped-def]
        import onnx
        import onnxruntime as ort

        model = self._graph()
        graph = model.graph
        present = {value.name for value in graph.output}
        for node in graph.node:
            for name in node.output:
                if name and name not in present:
                    present.add(name)
                    graph.output.append(onnx.ValueInfoProto(name=name))  # onnxruntime infers the type
        options = session_options()
        # External data is read from the model's folder, as for the model itself.
        options.add_session_config_entry("session.model_external_initializers_file_folder_path",
                                         str(self._path.resolve().parent))
        return ort.InferenceSession(model.SerializeToString(), sess_options=options,
                                    providers=["CPUExecutionProvider"])


# TensorProto element types of the integer kinds (INT8..UINT64).
_INTEGER_TYPES = {2, 3, 4, 5, 6, 7, 12, 13}


def _scope(node, name: str) -> str | None:  # type: ignore[no-untyped-def]
    """The module (PyTorch) or layer path (tf2onnx) a node belongs to, if its model says."""
    import ast

    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes" and len(prop.value) < 65536:
            try:
                scopes = ast.literal_eval(prop.value)  # a list of strings; literal_eval runs nothing
            except (ValueError, SyntaxError):
                break
            if isinstance(scopes, list) and len(scopes) >= 2 and all(isinstance(s, str) for s in scopes):
                return scopes[-2]  # the innermost module; the last entry names the op itself
            break
    path = node.name or name
    return path.rsplit("/", 1)[0] if "/" in path else None


def load(path: Path) -> OnnxRuntimeSession:
    return OnnxRuntimeSession(path)
