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
    """A dimension known only at run time; ``BATCH`` is the batch axis of the graph's inputs.

    A product of such dimensions and a whole number is a Dim too (an einsum's batch
    times its heads, ``batch * seq`` of a reshape that merges both): ``terms`` are the
    atomic dimensions it multiplies, with repeats, ``factor`` the number. Two
    dimensions are the same when their terms and factors are. Atomic dimensions are
    told apart by identity, so the importer makes one per symbol (see
    ``Importer.symbol``).
    """

    def __init__(self, label: str, terms: tuple[Dim, ...] | None = None, factor: int = 1):
        self.label = label
        self.terms: tuple[Dim, ...] = (self,) if terms is None else terms
        self.factor = factor

    def key(self) -> tuple[tuple[int, ...], int]:
        return tuple(sorted(id(t) for t in self.terms)), self.factor

    def times(self, other: Any) -> Any:
        """This dimension times a whole number or another Dim (an int when nothing symbolic is left)."""
        terms = self.terms + (other.terms if isinstance(other, Dim) else ())
        factor = self.factor * (other.factor if isinstance(other, Dim) else int(other))
        return product_of(terms, factor)

    def __repr__(self) -> str:
        return self.label


def product_of(terms: tuple[Dim, ...], factor: int) -> Any:
    """The Dim ``factor * prod(terms)`` (``factor`` itself without terms; 0 when it is 0)."""
    if not terms or factor == 0:
        return factor
    terms = tuple(sorted(terms, key=id))
    if len(terms) == 1 and factor == 1:
        return terms[0]
    label = "*".join([t.label for t in terms] + ([str(factor)] if factor != 1 else []))
    return Dim(label, terms, factor)


def quotient(numerator: Any, denominator: Any) -> Any:
    """``numerator / denominator`` for ints and Dims when it is exact (an int or a Dim), else None."""
    def parts(value: Any) -> tuple[list[Dim], int]:
        return (list(value.terms), value.factor) if isinstance(value, Dim) else ([], int(value))

    top, top_factor = parts(numerator)
    bottom, bottom_factor = parts(denominator)
    for term in bottom:
        if term not in top:
            return None
        top.remove(term)
    if bottom_factor == 0 or top_factor % bottom_factor:
        return None
    return product_of(tuple(top), top_factor // bottom_factor)


BATCH = Dim("batch")


def same(a: Any, b: Any) -> bool:
    """Whether two entries of a shape vector (ints or :class:`Dim`) are equal for certain."""
    if isinstance(a, Dim) and isinstance(b, Dim):
        return a.key() == b.key()
    if isinstance(a, Dim) or isinstance(b, Dim):
        return False
    return int(a) == int(b)


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
    if op == "Reshape" and len(inputs) > 1 and inputs[1] is not None and not is_symbolic(np.asarray(inputs[1])):
        target = _int_list(inputs[1])
        if not attrs.get("allowzero", 0):
            target = [x.shape[i] if d == 0 and i < x.ndim else d for i, d in enumerate(target)]
        return [np.reshape(x, target)]
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
    if op == "Div" and len(inputs) == 2 and inputs[1] is not None:
        # x.shape[-1] // heads: exact quotients only (ONNX divides integers towards zero).
        return _pairwise(quotient, x, inputs[1])
    if op in ("Max", "Min") and all(v is not None for v in inputs):
        extreme = _extreme(op, [np.asarray(v, dtype=object) for v in inputs])
        return None if extreme is None else [extreme]
    if op == "ReduceProd" and x.ndim == 1 and (len(inputs) < 2 or inputs[1] is None) \
            and attrs.get("axes") in (None, [0], [-1]) and not attrs.get("noop_with_empty_axes", 0):
        total = product(list(x))
        return [np.asarray([total] if attrs.get("keepdims", 1) else total, dtype=object)]
    if op == "Mul" and len(inputs) == 2 and inputs[1] is not None:
        return _pairwise(lambda p, q: product([p, q]), x, inputs[1])
    return None


def _pairwise(fn: Any, x: np.ndarray, y: np.ndarray) -> list[np.ndarray] | None:
    """``fn`` of the broadcast entries of two shape arrays, or None when it gives up on one."""
    a, b = np.broadcast_arrays(np.asarray(x, dtype=object), np.asarray(y, dtype=object))
    results = [fn(p, q) for p, q in zip(a.reshape(-1), b.reshape(-1))]
    if any(r is None for r in results):
        return None
    out = np.empty(a.shape, dtype=object)
    out.reshape(-1)[:] = results
    return [out]


def product(entries: list[Any]) -> Any:
    """The product of shape entries (ints and :class:`Dim`)."""
    terms = tuple(t for e in entries if isinstance(e, Dim) for t in e.terms)
    number = int(np.prod([e.factor if isinstance(e, Dim) else int(e) for e in entries], dtype=np.int64))
    return product_of(terms, number)


def _extreme(op: str, arrays: list[np.ndarray]) -> np.ndarray | None:
    """Max/Min of shape vectors: equal entries, integers, or a dimension against 1 (sizes are >= 1)."""
    broadcast = np.broadcast_arrays(*arrays)
    out = np.empty(broadcast[0].shape, dtype=object)
    flat = out.reshape(-1)
    for i, entries in enumerate(zip(*(b.reshape(-1) for b in broadcast))):
        result = entries[0]
        for entry in entries[1:]:
            if same(result, entry):
                continue
            if not isinstance(result, Dim) and not isinstance(entry, Dim):
                result = max(int(result), int(entry)) if op == "Max" else min(int(result), int(entry))
            elif (entry if isinstance(result, Dim) else result) == 1:  # a broadcast 1 against a size
                result = (result if isinstance(result, Dim) else entry) if op == "Max" else 1
            else:
                return None
        flat[i] = result
    return out


def tensor_value(tensor: onnx.TensorProto) -> np.ndarray:
    return numpy_helper.to_array(tensor)
