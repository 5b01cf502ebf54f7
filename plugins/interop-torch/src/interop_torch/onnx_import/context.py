"""The state one import builds: values, layers, parameters, and the lines of ``forward``.

A converter reads its node's inputs as :class:`Value` objects and writes Python: a layer
declared in ``__init__`` (:meth:`ImportContext.add_layer`) and one line of ``forward``
(:meth:`ImportContext.emit`). Values are of three kinds:

``tensor``
    a torch tensor at run time, held in a local variable of ``forward``;
``const``
    known now (an initializer, a ``Constant``, or folded); it becomes a parameter, a
    buffer or a literal only where a converter needs it as a tensor;
``shape``
    a 1-D int64 tensor (or an int64 scalar) kept as a Python list of ints (or an int) at
    run time, such as ``list(x.shape)``: shape arithmetic stays in Python, so
    ``torch.export`` sees symbolic sizes instead of data-dependent tensors.
"""

from __future__ import annotations

import builtins
import functools
import keyword
import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx

from interop_torch.onnx_import.prepare import Initializer, PreparedGraph


class NodeNotConvertible(Exception):
    """A converter cannot express this node (an attribute value, a dynamic operand): exit 3."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


NP_TO_TORCH = {
    "float32": "torch.float32", "float16": "torch.float16", "float64": "torch.float64", "bfloat16": "torch.bfloat16",
    "int8": "torch.int8", "int16": "torch.int16", "int32": "torch.int32", "int64": "torch.int64",
    "uint8": "torch.uint8", "uint16": "torch.uint16", "uint32": "torch.uint32", "uint64": "torch.uint64",
    "bool": "torch.bool",
}


def np_dtype(elem_type: int) -> np.dtype | None:
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:  # noqa: BLE001 - strings, undefined
        return None


def torch_dtype(dtype: np.dtype | None) -> str:
    name = "bfloat16" if dtype is not None and "bfloat16" in str(dtype) else str(dtype)
    if name not in NP_TO_TORCH:
        raise NodeNotConvertible(f"element type {dtype} has no torch equivalent")
    return NP_TO_TORCH[name]


def literal(value: Any) -> str:
    """Python source for a number, a bool, or a (nested) list of them."""
    if isinstance(value, np.ndarray):
        return literal(value.tolist())
    if isinstance(value, (list, tuple)):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if isinstance(value, tuple) and len(value) == 1 else (
            f"({inner})" if isinstance(value, tuple) else f"[{inner}]")
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return 'float("nan")'
        if math.isinf(value):
            return 'float("inf")' if value > 0 else '-float("inf")'
        return repr(value)
    if isinstance(value, str):
        return repr(value)
    if value is None:
        return "None"
    raise TypeError(f"no literal for {type(value).__name__}")


@dataclass
class Value:
    """An ONNX value as the generated code sees it."""

    name: str
    kind: str  # tensor | const | shape
    expr: str = ""
    dtype: np.dtype | None = None
    shape: tuple[Any, ...] | None = None  # ints or None (unknown) per dim; None when the rank is unknown
    array: np.ndarray | None = None  # kind const
    elems: list[int | None] | None = None  # kind shape: what is known now of each element (None: length unknown)
    scalar: bool = False  # kind shape: a Python int (a rank-0 int64 tensor in ONNX)
    init: Initializer | None = None  # kind const: the initializer it holds

    @property
    def rank(self) -> int | None:
        if self.kind == "const":
            return self.array.ndim  # type: ignore[union-attr]
        if self.kind == "shape":
            return 0 if self.scalar else 1
        return None if self.shape is None else len(self.shape)

    @property
    def role(self) -> str:
        return self.init.role if self.init is not None else "constant"


#: Path components exporters add that say nothing about the layer (TensorFlow's function wrappers).
_NOISE_SCOPES = frozenset({"StatefulPartitionedCall", "PartitionedCall", "ConstantFolding"})
_RESERVED = frozenset(keyword.kwlist) | frozenset(dir(builtins)) | {"self", "torch", "nn", "F", "math"}
_PORT_ZERO = re.compile(r":0$")
_RUNS_OF_NON_IDENTIFIER = re.compile(r"(?:[^0-9A-Za-z_]|_)+")


class Names:
    """Identifiers from graph names: sanitised, shortened by the graph's common scope, unique."""

    def __init__(self, reserved: set[str] | frozenset[str] = frozenset(), scopes: tuple[str, ...] = ()):
        self.used = set(_RESERVED) | set(reserved)
        self.scopes = scopes

    def clean(self, raw: str) -> str:
        for scope in self.scopes:
            if raw.startswith(scope) or raw + "/" == scope:  # a name that is only the scope says nothing
                raw = raw[len(scope):]
        parts = [p for p in _PORT_ZERO.sub("", raw).split("/") if p and p not in _NOISE_SCOPES]
        # Long paths keep their last components: the layer and op, not the enclosing model.
        while len(parts) > 1 and len("_".join(parts)) > 40:
            parts = parts[1:]
        name = _RUNS_OF_NON_IDENTIFIER.sub("_", "_".join(parts)).strip("_")
        return name[:60].rstrip("_")

    def take(self, raw: str, fallback: str = "v") -> str:
        name = self.clean(raw) or fallback
        if name[0].isdigit():
            name = f"{fallback}_{name}"
        candidate, index = name, 1
        while candidate in self.used or candidate.startswith("__"):
            candidate = f"{name}_{index}"
            index += 1
        self.used.add(candidate)
        return candidate


def common_scopes(names: list[str]) -> tuple[str, ...]:
    """Leading path scopes (``gpu_0/``, ``model_1/``) that most names share, to leave out of identifiers."""
    scopes: list[str] = []
    current = [n for n in names if n]
    while len(current) >= 4:
        firsts: dict[str, int] = {}
        for name in current:
            if "/" in name:
                head = name.split("/", 1)[0] + "/"
                firsts[head] = firsts.get(head, 0) + 1
        if not firsts:
            break
        head, count = max(firsts.items(), key=lambda item: item[1])
        if count * 5 < len(current) * 3:
            break
        scopes.append("".join(scopes) + head)
        current = [n[len(head):] for n in current if n.startswith(head)]
    return tuple(reversed(scopes))


@dataclass
class StateEntry:
    array: np.ndarray
    parameter: bool
    origin: Initializer | None = None
    transform: list[str] = field(default_factory=list)


class ImportContext:
    """Everything a converter reads and writes; see the module docstring."""

    def __init__(self, prepared: PreparedGraph):
        self.prepared = prepared
        self.opset = prepared.opset
        graph = prepared.model.graph
        all_names = [o for n in graph.node for o in n.output] + [i.name for i in graph.initializer] + [
            v.name for v in graph.input]
        scopes = common_scopes(all_names)
        self.vars = Names(scopes=scopes)
        self.attrs = Names(reserved=_module_attributes(), scopes=scopes)
        self.values: dict[str, Value] = {}
        self.init_lines: list[str] = []
        self.lines: list[str] = []
        self.state: dict[str, StateEntry] = {}
        self.helpers: dict[str, str] = {}
        self.notes: list[str] = []
        self.node: onnx.NodeProto | None = None
        self.since = 0  # schema since_version of the node being converted
        self._materialised: dict[str, str] = {}
        self._shared: dict[str, str] = {}
        self.claimed: set[str] = set()
        self.done_nodes: set[int] = set()  # nodes another converter already wrote (a fused bias Add)
        self.dropouts = 0
        for init in prepared.initializers.values():
            name = init.folded_into or init.name
            self.values[name] = Value(name, "const", array=init.array, dtype=init.array.dtype, init=init,
                                      shape=tuple(init.array.shape))

    # ------------------------------------------------------------------ reading

    def input(self, node: onnx.NodeProto, index: int) -> Value | None:
        """The node's ``index``-th input, or None when it is absent or left empty."""
        if index >= len(node.input) or not node.input[index]:
            return None
        name = node.input[index]
        if name not in self.values:
            raise NodeNotConvertible(f"input {name!r} is produced by no node before it")
        return self.values[name]

    def inputs(self, node: onnx.NodeProto) -> list[Value | None]:
        return [self.input(node, i) for i in range(len(node.input))]

    def attr(self, node: onnx.NodeProto, name: str, default: Any = None) -> Any:
        for attr in node.attribute:
            if attr.name == name:
                if attr.type == onnx.AttributeProto.GRAPH or attr.type == onnx.AttributeProto.GRAPHS:
                    raise NodeNotConvertible(f"attribute {name} holds a subgraph")
                if attr.ref_attr_name:
                    raise NodeNotConvertible(f"attribute {name} refers to a function attribute")
                value = onnx.helper.get_attribute_value(attr)
                if attr.type == onnx.AttributeProto.FLOAT:
                    return _short_float32(value)
                if attr.type == onnx.AttributeProto.FLOATS:
                    return [_short_float32(v) for v in value]
                if isinstance(value, bytes):
                    return value.decode("utf-8", "replace")
                if isinstance(value, onnx.TensorProto):
                    return onnx.numpy_helper.to_array(value)
                if isinstance(value, list):
                    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
                return value
        return default

    def const(self, value: Value | None) -> np.ndarray | None:
        """The value's array when it is known now (a constant, or a shape whose elements are all known)."""
        if value is None:
            return None
        if value.kind == "const":
            return value.array
        if value.kind == "shape" and not value.scalar and value.elems is not None and all(
                e is not None for e in value.elems):
            return np.array(value.elems, dtype=np.int64)
        return None

    def ints(self, value: Value | None) -> list[int] | None:
        array = self.const(value)
        return None if array is None else [int(v) for v in np.asarray(array).reshape(-1)]

    def require_ints(self, value: Value | None, what: str) -> list[int]:
        found = self.ints(value)
        if found is None:
            raise NodeNotConvertible(f"its {what} must be a constant, not computed at run time")
        return found

    def rank(self, value: Value) -> int | None:
        return value.rank

    def require_rank(self, value: Value) -> int:
        rank = value.rank
        if rank is None:
            raise NodeNotConvertible(f"the rank of {value.name!r} is unknown (ONNX shape inference could not tell)")
        return rank

    def static_shape(self, value: Value) -> tuple[Any, ...] | None:
        if value.kind == "const":
            return tuple(value.array.shape)  # type: ignore[union-attr]
        return value.shape

    # ------------------------------------------------------------------ tensors as code

    def t(self, value: Value) -> str:
        """An expression that is ``value`` as a torch tensor."""
        if value.kind == "tensor":
            return value.expr
        if value.kind == "shape":
            return f"torch.tensor({value.expr}, dtype=torch.int64)"
        assert value.array is not None
        key = value.init.name if value.init is not None else value.name
        if key in self._materialised:
            return self._materialised[key]
        array = value.array
        if value.role == "weight":
            expr = self.parameter(value)
        elif array.ndim == 0 and array.dtype.kind in "biuf":
            expr = f"torch.tensor({literal(array.item())}, dtype={torch_dtype(array.dtype)})"
        elif array.dtype.kind in "biu" and array.size <= 16:
            expr = f"torch.tensor({literal(array)}, dtype={torch_dtype(array.dtype)})"
        else:
            expr = self.buffer(value)
        self._materialised[key] = expr
        return expr

    def operand(self, value: Value, other: Value | None = None) -> str:
        """Like :meth:`t`, but a rank-0 constant (or a size-1 one that cannot change the rank) is a literal."""
        array = value.array if value.kind == "const" and value.role != "weight" else None
        if array is not None and array.size == 1 and array.dtype.kind in "biuf":
            other_rank = None if other is None else other.rank
            if array.ndim == 0 or (other_rank is not None and other_rank >= array.ndim):
                return literal(scalar(array))
        if value.kind == "shape" and value.scalar:
            return value.expr
        return self.t(value)

    def parameter(self, value: Value) -> str:
        """``self.<name>``: a standalone trainable parameter holding a weight constant."""
        init = value.init
        assert init is not None and value.array is not None
        attr = self.attrs.take(init.name, "weight")
        shape = literal(tuple(value.array.shape))
        self.init_lines.append(f"self.{attr} = nn.Parameter(torch.zeros({shape}, dtype={torch_dtype(value.array.dtype)}))")
        self.state[attr] = StateEntry(value.array, True, init, list(init.transform))
        self.claimed.add(init.name)
        return f"self.{attr}"

    def buffer(self, value: Value, persistent: bool = True) -> str:
        """``self.<name>``: a constant tensor registered as a buffer (saved with the weights, never trained)."""
        assert value.array is not None
        attr = self.attrs.take(value.init.name if value.init else value.name, "const")
        shape = literal(tuple(value.array.shape))
        self.init_lines.append(
            f'self.register_buffer("{attr}", torch.zeros({shape}, dtype={torch_dtype(value.array.dtype)}))')
        self.state[attr] = StateEntry(value.array, False, value.init)
        return f"self.{attr}"

    # ------------------------------------------------------------------ layers

    def used(self, onnx_name: str) -> bool:
        """True when a node or the graph's outputs read ``onnx_name``."""
        return bool(onnx_name) and (bool(self.prepared.consumers.get(onnx_name))
                                    or any(v.name == onnx_name for v in self.prepared.outputs))

    def owns(self, value: Value | None, role: str = "weight") -> bool:
        """True when ``value`` is a constant of ``role`` that only the current node uses (a layer may own it).

        A constant read by several nodes (a tied weight) is one standalone parameter, shared.
        """
        if value is None or value.kind != "const" or value.init is None or value.role != role:
            return False
        if value.init.name in self.claimed or value.init.uses != 1:
            return False
        users = self.prepared.consumers.get(value.name, [])
        return len(users) == 1 and users[0][0] is self.node

    def layer_name(self, *weights: Value | None) -> str:
        """A layer's attribute name, from the graph: the shared stem of its initializers' names, else the
        node's name, else its first initializer's name; names an exporter generated (``const_fold_opt_642``,
        ``val_3``, ``Conv__339``) only when nothing better exists."""
        names = [w.init.name for w in weights if w is not None and w.init is not None]
        candidates = [_shared_stem(names) if len(names) > 1 else "", self.node.name if self.node is not None else "",
                      _strip_weight_suffix(names[0]) if names else ""]
        meaningful = [c for c in candidates if self.attrs.clean(c) and not _generated(c)]
        stem = (meaningful or [c for c in candidates if self.attrs.clean(c)] or [""])[0]
        fallback = (self.node.op_type if self.node is not None else "layer").lower()
        return self.attrs.take(stem or fallback, fallback)

    def add_layer(self, ctor: str, state: dict[str, tuple[np.ndarray, Value | None, bool]] | None = None,
                  *weights: Value | None) -> str:
        """Declare ``self.<name> = <ctor>`` holding ``state`` ({key: (array, source value, is_parameter)})."""
        sources = [v for _, v, _ in (state or {}).values() if v is not None]
        attr = self.layer_name(*(weights or sources))
        self.init_lines.append(f"self.{attr} = {ctor}")
        for key, (array, source, is_param) in (state or {}).items():
            init = source.init if source is not None else None
            self.state[f"{attr}.{key}"] = StateEntry(np.ascontiguousarray(array), is_param, init,
                                                     list(init.transform) if init else [])
            if init is not None:
                self.claimed.add(init.name)
        return attr

    def shared_layer(self, ctor: str, kind: str) -> str:
        """A parameterless layer (``nn.ReLU()``), declared once and reused, as people write ``self.relu``."""
        if ctor not in self._shared:
            self._shared[ctor] = self.attrs.take(kind, kind)
            self.init_lines.append(f"self.{self._shared[ctor]} = {ctor}")
        return self._shared[ctor]

    def done(self, node: onnx.NodeProto) -> None:
        """``node`` was written by the converter of an earlier node (fused into its layer)."""
        self.done_nodes.add(id(node))

    # ------------------------------------------------------------------ writing forward

    def var(self, onnx_name: str) -> str:
        return self.vars.take(onnx_name, "v")

    def emit(self, node_outputs: list[str] | str, expr: str, *, kind: str = "tensor", dtype: np.dtype | None = None,
             shape: tuple[Any, ...] | None = None, elems: list[int | None] | None = None,
             scalar: bool = False) -> list[str]:
        """Write ``out = expr`` (``a, b = expr`` for several outputs) and record the outputs' values."""
        outputs = [node_outputs] if isinstance(node_outputs, str) else list(node_outputs)
        names = [self.var(o) if o else "_" for o in outputs]
        target = names[0] if len(names) == 1 else ", ".join(names)
        self.lines.append(f"{target} = {expr}")
        for onnx_name, var in zip(outputs, names):
            if not onnx_name:
                continue
            elem, dims = self.prepared.types.get(onnx_name, (0, None))
            value = Value(onnx_name, kind, var, dtype if dtype is not None else np_dtype(elem),
                          shape if (shape is not None and len(outputs) == 1) else dims_or_none(dims))
            if kind == "shape":
                value.elems, value.scalar = (None if scalar else elems), scalar
                value.shape = () if scalar else (None if elems is None else (len(elems),))
                value.dtype = dtype if dtype is not None else np.dtype(np.int64)
            self.values[onnx_name] = value
        return names

    def set_const(self, onnx_name: str, array: np.ndarray) -> None:
        array = np.asarray(array)
        self.values[onnx_name] = Value(onnx_name, "const", array=array, dtype=array.dtype, shape=tuple(array.shape))

    def alias(self, onnx_name: str, value: Value) -> None:
        """``onnx_name`` is ``value`` (Identity and no-op casts write no line)."""
        copy = Value(**{**value.__dict__, "name": onnx_name})
        if value.kind == "const":
            copy.init = value.init
        self.values[onnx_name] = copy

    def unknown(self, onnx_name: str) -> None:
        """An output of a node that could not be converted (conversion continues to find every problem)."""
        self.values[onnx_name] = Value(onnx_name, "tensor", "None")

    def helper(self, name: str, source: str) -> str:
        """Include a module-level helper function in the generated file; returns its name."""
        self.helpers.setdefault(name, source.strip("\n"))
        return name

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def scalar(array: np.ndarray) -> Any:
    """The one element of ``array`` as a Python number (a float32 as its shortest exact decimal)."""
    array = np.asarray(array).reshape(-1)
    item = array[0].item()
    if array.dtype == np.float32:
        return _short_float32(item)
    return bool(item) if array.dtype.kind == "b" else item


def _short_float32(value: float) -> float:
    """A float32 attribute as the shortest decimal that is the same float32 (1e-05, not 9.99999974e-06)."""
    return float(str(np.float32(value)))


def dims_or_none(dims: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    if dims is None:
        return None
    return tuple(d if isinstance(d, int) and d > 0 else None for d in dims)


@functools.lru_cache(maxsize=1)
def _module_attributes() -> frozenset[str]:
    import torch

    return frozenset(name for name in dir(torch.nn.Module) if not name.startswith("__")) | {"training"}


#: Names exporters make up (tf2onnx's const_fold_opt_642 and Conv__339, torch.onnx's val_3 and node_MatMul_2).
_GENERATED = re.compile(r"(const_fold_opt_|val_|onnx__|initializer_?|Constant_?|node_[A-Za-z]+_?|[A-Za-z]+__)\d*\Z")


def _generated(name: str) -> bool:
    return bool(_GENERATED.match(re.sub(r":\d+\Z", "", name).rsplit("/", 1)[-1]))
_WEIGHT_SUFFIX = re.compile(
    r"([._/](weight|weights|bias|kernel|w|b|W|B|scale|gamma|beta)(_0)?|(_w|_b)_0|/ReadVariableOp|:0)+$")


def _strip_weight_suffix(name: str) -> str:
    stripped = _WEIGHT_SUFFIX.sub("", name)
    return stripped or name


def _shared_stem(names: list[str]) -> str:
    prefix = names[0]
    for name in names[1:]:
        while not name.startswith(prefix):
            prefix = prefix[:-1]
    return re.sub(r"[._/:-]+$", "", prefix)
