"""The Core ML inputs of a translated model: per-dim ranges and narrowed element types.

Every dynamic dim of an ONNX input becomes a Core ML ``RangeDim``. Its bounds come
from the ``input_shape`` option when it names the input (``name=d0,d1,...`` per
input, each dim an int or ``lo..hi``, inputs separated by ``;``), else
``1..max_dynamic_dim``. Dims that share an ONNX ``dim_param`` are one symbol and
get one range: the intersection of every range given for them, so bounding
``input_ids`` bounds ``attention_mask`` too. An int fixes the dim.

The translator emits ranges, never ``EnumeratedShapes``: every op it emits runs
on any size within the range on Core ML's CPU and GPU, and a range is what
``interop check`` can exercise at any size.

A saved ML Program has no names for its flexible dims: coremltools' reader gives
every unknown dim its own symbol, and an op that asserts two inputs' dims equal
(``scatter_along_axis`` of ``x`` by ``idx``, both batch ``B``) fails to load.
So the dims that share a symbol are recorded in the model's metadata under
:data:`SHARED_DIMS_KEY` (``{input: [symbol or null per axis]}``), from which
interop's reader gives them one symbol again.

Core ML inputs and outputs hold fp32, fp16 or int32: int64 ``input_ids`` become
int32 inputs (bool and the narrower integer types too). The narrowing is
recorded in the model's metadata under :data:`NARROWED_IO_KEY` so that
interop's runtimes show the ONNX type, narrow what they are fed (refusing a
value int32 cannot hold) and widen integer outputs back.
"""

from __future__ import annotations

import collections.abc
import re
from typing import Any

import onnx

NARROWED_IO_KEY = "interop.narrowed_io"
SHARED_DIMS_KEY = "interop.shared_dims"

# One dim: an int, or lo..hi.
_DIM = re.compile(r"\s*(\d+)\s*(?:\.\.\s*(\d+)\s*)?\Z")

InputShapes = dict[str, list[tuple[int, int]]]

_ONNX_NAMES = {
    onnx.TensorProto.INT64: "int64", onnx.TensorProto.INT16: "int16", onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8", onnx.TensorProto.UINT16: "uint16", onnx.TensorProto.UINT32: "uint32",
    onnx.TensorProto.BOOL: "bool",
}


def parse_input_shape(spec: str | collections.abc.Mapping[str, Any] | None) -> InputShapes:
    """``"ids=1..8,1..512;mask=1..8,1..512"`` (or a mapping name -> dims) as name -> [(lo, hi), ...]."""
    if spec is None or spec == "":
        return {}
    if isinstance(spec, str):
        items = []
        for part in spec.split(";"):
            if not part.strip():
                continue
            name, sep, dims = part.partition("=")
            if not sep or not name.strip():
                raise ValueError(f"input_shape: {part.strip()!r} is not NAME=DIMS (e.g. input_ids=1..8,1..512)")
            items.append((name.strip(), dims.split(",")))
    else:
        items = [(str(name), list(dims) if not isinstance(dims, str) else dims.split(",")) for name, dims in spec.items()]
    shapes: InputShapes = {}
    for name, dims in items:
        if name in shapes:
            raise ValueError(f"input_shape names input {name!r} twice")
        shapes[name] = [_parse_dim(name, axis, dim) for axis, dim in enumerate(dims)]
    return shapes


def _parse_dim(name: str, axis: int, dim: Any) -> tuple[int, int]:
    if isinstance(dim, int) and not isinstance(dim, bool):
        low = high = dim
    elif isinstance(dim, tuple) and len(dim) == 2 and all(isinstance(v, int) for v in dim):
        low, high = dim
    else:
        match = _DIM.match(str(dim))
        if not match:
            raise ValueError(f"input_shape: dim {axis} of {name!r} is {str(dim).strip()!r}; "
                             "give an int or a range lo..hi")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
    if low < 1 or high < low:
        raise ValueError(f"input_shape: dim {axis} of {name!r} is {low}..{high}; sizes are >= 1 and lo <= hi")
    return low, high


def _onnx_dims(value: onnx.ValueInfoProto) -> list[int | str | None]:
    shape = value.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (d.dim_param or None) for d in shape.dim]


def resolve_input_ranges(graph: onnx.GraphProto, spec: InputShapes, max_dynamic_dim: int) -> InputShapes:
    """(lo, hi) of every dim of every graph input (a static dim is (d, d)); raises ValueError on a bad spec."""
    inputs = {value.name: _onnx_dims(value) for value in graph.input}
    unknown = sorted(set(spec) - set(inputs))
    if unknown:
        raise ValueError(f"input_shape names {', '.join(map(repr, unknown))}, which the model does not take "
                         f"(its inputs: {', '.join(inputs) or 'none'})")
    # Bounds per symbol (a shared dim_param, or one anonymous dim) from every input naming it.
    bounds: dict[Any, tuple[int, int]] = {}
    for name, dims in inputs.items():
        given = spec.get(name)
        if given is not None and len(given) != len(dims):
            raise ValueError(f"input_shape gives {len(given)} dims for {name!r}, which has rank {len(dims)}")
        for axis, dim in enumerate(dims):
            if isinstance(dim, int):
                if given is not None and given[axis] != (dim, dim):
                    low, high = given[axis]
                    shown = str(low) if low == high else f"{low}..{high}"
                    raise ValueError(f"input_shape: dim {axis} of {name!r} is {dim} in the model, not {shown}")
                continue
            key = dim or (name, axis)
            low, high = given[axis] if given is not None else (1, None)
            old_low, old_high = bounds.get(key, (1, None))
            high = old_high if high is None else (high if old_high is None else min(high, old_high))
            low = max(low, old_low)
            if high is not None and low > high:
                raise ValueError(f"input_shape: the ranges given for dim {dim!r} (shared by several inputs) "
                                 "do not overlap")
            bounds[key] = (low, high)
    resolved: InputShapes = {}
    for name, dims in inputs.items():
        ranges = []
        for axis, dim in enumerate(dims):
            if isinstance(dim, int):
                ranges.append((dim, dim))
                continue
            low, high = bounds[dim or (name, axis)]
            if high is None:
                high = max(max_dynamic_dim, low)
            ranges.append((low, high))
        resolved[name] = ranges
    return resolved


def narrowed_types(graph: onnx.GraphProto) -> dict[str, dict[str, str]]:
    """ONNX element types the Core ML model carries as int32: {"inputs": {name: "int64"}, "outputs": {...}}."""
    record: dict[str, dict[str, str]] = {"inputs": {}, "outputs": {}}
    for key, values in (("inputs", graph.input), ("outputs", graph.output)):
        for value in values:
            elem = value.type.tensor_type.elem_type
            if elem in _ONNX_NAMES:
                record[key][value.name] = _ONNX_NAMES[elem]
    return record


def shared_dims(graph: onnx.GraphProto, ranges: InputShapes, mil_names: collections.abc.Mapping[str, str]
                ) -> dict[str, list[str | None]]:
    """Flexible dims that share an ONNX ``dim_param`` with another flexible dim: {MIL input: [symbol|None]}.

    Empty when no two flexible dims share one (each then gets its own symbol on reading anyway).
    """
    uses: dict[str, int] = {}
    flexible: dict[str, list[str | None]] = {}
    for value in graph.input:
        dims = []
        for axis, dim in enumerate(_onnx_dims(value)):
            low, high = ranges[value.name][axis]
            symbol = dim if isinstance(dim, str) and low != high else None
            if symbol is not None:
                uses[symbol] = uses.get(symbol, 0) + 1
            dims.append(symbol)
        flexible[value.name] = dims
    shared = {symbol for symbol, count in uses.items() if count > 1}
    return {mil_names[name]: [d if d in shared else None for d in dims]
            for name, dims in flexible.items() if any(d in shared for d in dims)}
