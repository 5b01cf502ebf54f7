"""Walks an ONNX graph node by node and builds the Keras functional model.

Order of work: load and validate the ONNX model (:mod:`.graph`), classify its
constants (:mod:`.weights`), refuse at once when op types have no converter,
then convert each node with its registered converter (:mod:`.ops`),
folding nodes whose inputs are all constants, and tracking each tensor's
layout (:mod:`.layout`). A node a converter cannot express is recorded and the
walk goes on, so one error lists every problem; nothing is written before the
whole model has been built.
"""

from __future__ import annotations

import collections
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from interop.plugin_api import ConversionError, UnsupportedModelError
from interop_keras.onnx_import import fold, layer_table, layout, ops
from interop_keras.onnx_import.context import Constant, NodeContext, NotConvertible, WeightBinding, sanitize
from interop_keras.onnx_import.layout import Perm, Value
from interop_keras.onnx_import.weights import CONSTANT, VIEW_OPS, WEIGHT, Classification, classify, constant_tensors

_INPUT_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.BOOL: "bool",
}


@dataclass
class ImportResult:
    """The Keras model built from an ONNX graph, with what the import decided on the way."""

    model: Any
    notes: list[str]
    weights: list[WeightBinding]
    classification: Classification
    transposes: int
    input_names: list[str]
    output_names: list[str]

    @property
    def source_weight_count(self) -> int:
        """Elements of the ONNX tensors classified as weights (see :mod:`.weights`)."""
        return self.classification.count(WEIGHT)

    @property
    def trainable_weight_count(self) -> int:
        return int(sum(int(np.prod(v.shape)) for v in self.model.trainable_weights))

    def onnx_weights(self, role: str | None = None) -> dict[str, np.ndarray]:
        """Current values of the imported tensors, in the ONNX initializers' shapes and names."""
        out: dict[str, np.ndarray] = {}
        for binding in self.weights:
            if role is None or binding.role == role:
                out.setdefault(binding.onnx_name, binding.onnx_value())
        return out


# --------------------------------------------------------------------------- the importer


@dataclass
class _Problem:
    count: int = 0
    reasons: collections.Counter = field(default_factory=collections.Counter)


class Importer:
    """Builds a Keras functional model from a validated ONNX ModelProto."""

    def __init__(self, model: onnx.ModelProto, label: str = "model"):
        self.model = model
        self.label = label
        self.graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.classification = classify(self.graph)
        self.constants: dict[str, Constant] = {}
        self.values: dict[str, Value] = {}
        self.bindings: list[WeightBinding] = []
        self.notes: list[str] = []
        self.transposes = 0
        self._names: set[str] = set()
        self._layout_cache: dict[tuple[int, Perm, Perm], Any] = {}
        self._reserved = {out.name: sanitize(out.name) for out in self.graph.output}
        self._reserved_names = set(self._reserved.values())
        self._output_layers: list[Any] = []
        self.consumers: dict[str, list[onnx.NodeProto]] = collections.defaultdict(list)
        for node in self.graph.node:
            for name in node.input:
                if name:
                    self.consumers[name].append(node)
        self.graph_outputs = {out.name for out in self.graph.output}
        self.absorbed: set[int] = set()
        self.inferred = _inferred_dims(model)
        initializers = {init.name for init in self.graph.initializer}
        first_input = next((i.name for i in self.graph.input if i.name not in initializers), None)
        first_dims = self.inferred.get(first_input or "", [])
        #: The symbol ONNX gives the first axis of the first input: Keras' batch axis.
        self.batch_param = first_dims[0] if first_dims and isinstance(first_dims[0], str) else None
        self._symbols: dict[str, fold.Dim] = {}
        #: A tensor and Keras axis that has each symbol's size (id of the Dim -> (Keras tensor, axis)).
        self.size_sources: dict[int, tuple[Any, int]] = {}

    # ---- names and layout
    def unique_name(self, base: str) -> str:
        """``base``, or ``base_N`` when taken; graph output names are kept for the output layers."""
        name, counter = base, 1
        while name in self._names or name in self._reserved_names:
            name = f"{base}_{counter}"
            counter += 1
        self._names.add(name)
        return name

    def to_layout(self, value: Value, perm: Perm) -> Any:
        """``value``'s tensor transposed into layout ``perm`` (one transpose per tensor and layout)."""
        perm = tuple(perm)
        if value.perm == perm:
            return value.tensor
        key = (id(value.tensor), value.perm, perm)  # ONNX's Transpose gives one Keras tensor several layouts
        if key not in self._layout_cache:
            import keras

            from interop_keras import layers as interop_layers

            order = layout.transpose_between(value.perm, perm)
            history = getattr(value.tensor, "_keras_history", None)
            base = history.operation.name if history is not None else "tensor"
            kshape = value.keras_shape
            moved = [i for i in order if kshape[i] != 1]
            if moved == sorted(moved) and order[0] == 0 and sum(1 for d in kshape[1:] if d is None) <= 1:
                # Only size-1 axes move: the same elements in the same order, a reshape.
                target = tuple(-1 if kshape[i] is None else kshape[i] for i in order[1:])
                layer = keras.layers.Reshape(target, name=self.unique_name(f"{base}.relayout"))
            elif order[0] == 0:
                layer = keras.layers.Permute(tuple(order[1:]), name=self.unique_name(f"{base}.transpose"))
                self.transposes += 1
            else:
                layer = interop_layers.Transpose(list(order), name=self.unique_name(f"{base}.transpose"))
                self.transposes += 1
            self._layout_cache[key] = layer(value.tensor)
        return self._layout_cache[key]

    def symbol(self, label: str) -> fold.Dim:
        """The one :class:`~.fold.Dim` of a symbolic size (the batch for the first input's first axis)."""
        if label == self.batch_param:
            return fold.BATCH
        return self._symbols.setdefault(label, fold.Dim(label))

    def size_named(self, param: str) -> Any:
        """The size a dim_param names: one symbol, or a product such as torch.onnx's ``s0*s1`` or ``2*s1``."""
        factors = [f.strip() for f in param.split("*")]
        if len(factors) > 1 and all(f.isdigit() or f.isidentifier() for f in factors):
            symbols = tuple(self.symbol(f) for f in factors if not f.isdigit())
            return fold.product_of(symbols, int(np.prod([int(f) for f in factors if f.isdigit()], dtype=np.int64)))
        return self.symbol(param)

    def dims(self, name: str, value: Value) -> list[Any]:
        """The ONNX sizes of tensor ``name`` (computed as ``value``): ints, or a Dim per size known at run time.

        A size Keras does not know is named by ONNX shape inference when it can
        (``batch``, ``seq``, torch.onnx's ``s0``): equal names are one Dim, the first
        input's first axis is the batch. A size shape inference leaves unnamed is the
        batch when it is the Keras tensor's first axis and the graph's batch is unnamed
        too, and otherwise a Dim of its own that equals nothing else.
        """
        inferred = self.inferred.get(name)
        if inferred is not None and len(inferred) != value.rank:
            inferred = None
        out: list[Any] = []
        for axis, size in enumerate(value.shape):
            known = inferred[axis] if inferred is not None else None
            if size is not None:
                out.append(int(size))
                continue
            if isinstance(known, int):
                out.append(known)
                continue
            if isinstance(known, str):
                dim = self.size_named(known)
            elif value.perm[0] == axis and value.keras_shape[0] is None:
                dim = fold.BATCH
            else:
                dim = self.symbol(f"{name}[{axis}]")
            if isinstance(dim, fold.Dim) and len(dim.terms) == 1 and dim.factor == 1:
                self.size_sources.setdefault(id(dim), (value.tensor, value.keras_axis(axis)))
            out.append(dim)
        return out

    def is_used(self, name: str) -> bool:
        """Whether a tensor is read by a node or is a graph output."""
        return bool(name) and (name in self.consumers or name in self.graph_outputs)

    def absorb(self, node: onnx.NodeProto, alias_of: str) -> None:
        """A later ``node`` was folded into the layer that computes ``alias_of`` (a Dense's bias Add)."""
        self.absorbed.add(id(node))
        self.values[node.output[0]] = self.values[alias_of]

    # ---- the walk
    def run(self) -> ImportResult:
        import keras

        self._load_constants()
        self._refuse_unknown_ops()
        inputs = self._make_inputs()
        problems: dict[str, _Problem] = collections.OrderedDict()
        poisoned: set[str] = set()
        for node in self.graph.node:
            if node.op_type == "Constant" and node.output[0] in self.constants or id(node) in self.absorbed:
                continue
            if any(name in poisoned for name in node.input):
                poisoned.update(node.output)
                continue
            try:
                self._convert(node)
            except NotConvertible as problem:
                entry = problems.setdefault(_op_label(node), _Problem())
                entry.count += 1
                entry.reasons[problem.reason] += 1
                poisoned.update(node.output)
            except (UnsupportedModelError, ConversionError):
                raise
            except Exception as exc:  # a converter bug or a Keras refusal: name the node
                raise ConversionError(
                    f"{self.label}: importing node {node.name or node.output[0]!r} ({node.op_type}) into Keras "
                    f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                    hint="set INTEROP_DEBUG=1 for the traceback",
                ) from exc
        outputs = {}
        for output in self.graph.output:
            if output.name in poisoned:
                continue
            try:
                outputs[output.name] = self._make_output(output.name)
            except NotConvertible as problem:
                entry = problems.setdefault("graph output", _Problem())
                entry.count += 1
                entry.reasons[problem.reason] += 1
        if problems:
            raise UnsupportedModelError(
                f"{self.label}: {sum(p.count for p in problems.values())} node(s) cannot be imported into Keras: "
                + "; ".join(_describe(op, p) for op, p in problems.items()),
                hint="docs/training-elsewhere.md lists what the Keras importer converts",
            )
        self._dropout_note()
        with warnings.catch_warnings():
            # Dict inputs keyed by ONNX names Keras cannot use as layer names ('/') work; Keras
            # still warns that the keys differ from the (sanitised) layer names.
            warnings.filterwarnings("ignore", message="When providing `inputs` as a dict")
            model = keras.Model(
                inputs=self._structure(inputs), outputs=self._structure(outputs),
                name=sanitize(self.graph.name or "onnx_model").replace(".", "_"),
            )
        return ImportResult(
            model=model, notes=list(self.notes), weights=self.bindings, classification=self.classification,
            transposes=self.transposes, input_names=list(inputs), output_names=list(outputs),
        )

    def _load_constants(self) -> None:
        roles = self.classification.roles
        for name, tensor in constant_tensors(self.graph).items():
            self.constants[name] = Constant(fold.tensor_value(tensor), source=name, role=roles.get(name, CONSTANT))

    def _refuse_unknown_ops(self) -> None:
        """One error listing every op type no converter handles, before any Keras work."""
        constant = set(self.constants)
        missing: collections.Counter = collections.Counter()
        for node in self.graph.node:
            if node.op_type == "Constant" and node.output[0] in constant:
                continue
            foldable = all(not name or name in constant for name in node.input) and node.domain in ("", "ai.onnx")
            if foldable and node.op_type not in ("RandomNormal", "RandomUniform", "Multinomial"):
                constant.update(node.output)
            elif ops.layer_converter_for(node.op_type, node.domain, self.opset) is None:
                missing[_op_label(node, self.opset)] += 1
            if node.op_type == "Shape":
                constant.update(node.output)  # its value comes from the (static) shape at import
        if missing:
            listing = ", ".join(f"{op} x{count}" for op, count in sorted(missing.items()))
            raise UnsupportedModelError(
                f"{self.label}: the Keras importer has no converter for {sum(missing.values())} node(s): {listing}",
                hint="docs/training-elsewhere.md lists the ONNX ops and versions the Keras importer converts",
            )

    def _make_inputs(self) -> dict[str, Any]:
        import keras

        initializers = {init.name for init in self.graph.initializer}
        inputs: dict[str, Any] = {}
        problems = []
        for value_info in self.graph.input:
            if value_info.name in initializers:
                continue
            tensor_type = value_info.type.tensor_type
            dtype = _INPUT_DTYPES.get(tensor_type.elem_type)
            if not value_info.type.HasField("tensor_type") or dtype is None:
                kind = onnx.TensorProto.DataType.Name(tensor_type.elem_type) if tensor_type.elem_type else "non-tensor"
                problems.append(f"input {value_info.name!r} is {kind}; the importer takes float32, integer and boolean tensors")
                continue
            if not tensor_type.HasField("shape") or len(tensor_type.shape.dim) == 0:
                problems.append(f"input {value_info.name!r} has no rank (Keras needs a batch axis)")
                continue
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
            tensor = keras.Input(
                shape=tuple(dims[1:]), batch_size=dims[0], dtype=dtype,
                name=self.unique_name(sanitize(value_info.name)),
            )
            inputs[value_info.name] = tensor
            self.values[value_info.name] = Value(tensor, layout.identity(len(dims)))
        if problems:
            raise UnsupportedModelError(f"{self.label}: " + "; ".join(problems))
        return inputs

    def _convert(self, node: onnx.NodeProto) -> None:
        if all(not name or name in self.constants for name in node.input) and node.domain in ("", "ai.onnx"):
            if self._fold(node):
                return
        converter = ops.layer_converter_for(node.op_type, node.domain, self.opset)
        if converter is None:
            if any(name in self.constants and fold.is_symbolic(self.constants[name].value) for name in node.input):
                raise NotConvertible("its inputs hold sizes known only at run time, and the importer has no "
                                     f"{node.op_type} converter to compute it then")
            raise NotConvertible("its inputs are constants the importer could not evaluate")
        since = layer_table.schema_version(node.op_type, "", self.opset) or 1
        converter(NodeContext(self, node, since))
        missing = [name for name in node.output if self.is_used(name) and name not in self.values
                   and name not in self.constants]
        if missing:
            raise ConversionError(f"{self.label}: the {node.op_type} converter produced no value for {missing}")

    def _fold(self, node: onnx.NodeProto) -> bool:
        """Evaluate an all-constant node; a view of one initializer keeps pointing at it."""
        inputs = [self.constants[name] if name else None for name in node.input]
        first = inputs[0] if inputs else None
        if node.op_type in VIEW_OPS and first is not None and first.source is not None and first.role != CONSTANT:
            results = fold.evaluate(node, [c.value if c is not None else None for c in inputs], self.opset)
            if results is None:
                return False
            out = results[0]
            if node.op_type == "Transpose":
                step: tuple[str, Any] = ("transpose", _perm_of(node, first.value))
            else:
                step = ("reshape", first.value.shape)
            self.constants[node.output[0]] = Constant(out, first.source, first.role, first.steps + (step,))
            return True
        results = fold.evaluate(node, [c.value if c is not None else None for c in inputs], self.opset)
        if results is None:
            return False
        for constant in inputs:
            if constant is not None and constant.role != CONSTANT and constant.source is not None:
                self._note_folded_weight(constant.source, node)
        shape_of = first.shape_of if first is not None and node.op_type in ("Cast", "Identity") else None
        for name, result in zip(node.output, results):
            if name:
                value = np.asarray(result) if not fold.is_symbolic(result) else result
                self.constants[name] = Constant(value, shape_of=shape_of)
        return True

    def _note_folded_weight(self, source: str, node: onnx.NodeProto) -> None:
        text = (f"initializer {source!r} is combined with other constants by {node.op_type} before use; "
                "the result is folded into a fixed constant and is not trained")
        if text not in self.notes:
            self.notes.append(text)

    def _make_output(self, name: str) -> Any:
        """The output tensor in the ONNX layout, from a layer named after the ONNX output."""
        import keras

        if name in self.constants:
            raise NotConvertible(f"output {name!r} is a constant; a Keras model output must be computed")
        value = self.values[name]
        tensor = self.to_layout(value, layout.identity(value.rank))
        wanted = self._reserved[name]
        self._names.add(wanted)
        layer = tensor._keras_history.operation
        single = len(layer._inbound_nodes) == 1 and len(keras.tree.flatten(layer._inbound_nodes[0].output_tensors)) == 1
        if isinstance(layer, keras.layers.InputLayer) or not single or layer in self._output_layers:
            layer = keras.layers.Identity(name=wanted)
            tensor = layer(tensor)
        else:
            self._names.discard(layer.name)
            layer.name = wanted
        self._output_layers.append(layer)
        return tensor

    def _structure(self, tensors: dict[str, Any]) -> Any:
        """A list when every ONNX name is a valid Keras name, else a dict keyed by the ONNX names."""
        if all(sanitize(name) == name for name in tensors):
            items = list(tensors.values())
            return items[0] if len(items) == 1 else items
        return dict(tensors)

    def _dropout_note(self) -> None:
        dropouts = [n for n in self.graph.node if n.op_type == "Dropout"]
        if dropouts:
            self.notes.append(
                f"the graph has {len(dropouts)} Dropout node(s); each is a keras.layers.Dropout "
                "(identity at inference, active in training)"
            )
        else:
            self.notes.append(
                "the ONNX graph has no Dropout (exporters drop it from inference graphs); the Keras model "
                "trains without Dropout unless you add it"
            )


def _inferred_dims(model: onnx.ModelProto) -> dict[str, list[Any]]:
    """Every tensor's dims from ONNX shape inference: an int, a symbol's name, or None (unknown).

    Shape inference names the sizes it cannot follow ``unk__N``; such a name says nothing
    unless the model's inputs or outputs declare it (tf2onnx writes ``unk__N`` for
    TensorFlow's unknown sizes), so it becomes None.
    """
    def shapes(graph: onnx.GraphProto) -> dict[str, list[Any]]:
        found: dict[str, list[Any]] = {}
        for info in [*graph.input, *graph.value_info, *graph.output]:
            tensor_type = info.type.tensor_type
            if info.type.HasField("tensor_type") and tensor_type.HasField("shape"):
                found[info.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                                    for d in tensor_type.shape.dim]
        return found

    interface = {info.name for info in [*model.graph.input, *model.graph.output]}
    declared = {d for name, dims in shapes(model.graph).items() if name in interface for d in dims if isinstance(d, str)}
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001 - no inference: sizes Keras does not know stay anonymous
        inferred = model
    return {name: [None if isinstance(d, str) and d.startswith("unk__") and d not in declared else d for d in dims]
            for name, dims in shapes(inferred.graph).items()}


def _perm_of(node: onnx.NodeProto, value: np.ndarray) -> tuple[int, ...]:
    attrs = fold.attributes(node)
    perm = attrs.get("perm")
    return tuple(perm) if perm is not None else tuple(reversed(range(value.ndim)))


def _op_label(node: onnx.NodeProto, opset: int | None = None) -> str:
    name = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
    if opset is None or node.domain not in ("", "ai.onnx"):
        return name
    since = layer_table.schema_version(node.op_type, "", opset)
    if since is None:
        return f"{name} (not an ONNX op in opset {opset})"
    versions = ops.registered().get(node.op_type)
    if versions:
        return f"{name}-{since} (converted versions: {', '.join(map(str, versions))})"
    return name


def _describe(op: str, problem: _Problem) -> str:
    reasons = ", ".join(reason if n == 1 else f"{reason} (x{n})" for reason, n in problem.reasons.most_common())
    return f"{op} x{problem.count} ({reasons})"
