"""Symbolic dimensions while one ONNX graph is translated.

A model exported with a dynamic batch and sequence computes shapes in the graph:
``Shape → Gather → Concat → Expand``, ``Range(0, Squeeze(Shape(ids)[1]))``,
``Reshape(x, Concat(Shape(x)[:2], [-1, 8]))``. The converted nodes compute those
values at run time, but MIL's type inference follows symbols only through
``shape``/``gather``/``concat`` and gives up at the first ``add`` or ``reshape``,
so every later type would hold fresh, unrelated symbols, and converters that need
a dim (a static hidden size, two dims known to be equal) would refuse.

This module keeps, for every small integer tensor whose value is a function of the
model's dynamic dims (a *shape value*), that function as sympy expressions over the
input dims, and gives each distinct expression one MIL symbol. With it

- a shape computation whose result turns out static folds into a constant;
- ``Reshape``/``Expand``/``ConstantOfShape``/``Tile``/``Range``/``Slice`` driven by a
  run-time shape get output types with the right dims (:meth:`SymbolicDims.refine`);
- the ranges declared for the inputs bound every derived dim, so ``Min(seq, 128)``
  is ``seq`` when the sequence is declared at most 128 long.

Nothing here changes a value the program computes: the run-time computation is
still the converted ONNX nodes. Root symbols are positive integers (Core ML has no
empty tensors); a decision that cannot be proven (a comparison, a sign) gives up,
and the value is then only known at run time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import sympy

# Shape values larger than this are tensors, not shapes: not tracked.
MAX_ELEMENTS = 64
_INF = sympy.oo


@dataclass
class ShapeValue:
    """Elements (ints, bools or sympy expressions) of a small tensor, and their kind."""

    array: np.ndarray  # dtype=object
    kind: str  # "int" | "float" | "bool"

    @property
    def concrete(self) -> bool:
        return all(not isinstance(v, sympy.Basic) for v in self.array.ravel().tolist())

    def numpy(self, elem_type: int | None = None) -> np.ndarray:
        """The value as a numpy constant (only when :attr:`concrete`)."""
        if elem_type is not None and elem_type in _NUMPY_OF_ONNX:
            dtype = _NUMPY_OF_ONNX[elem_type]
        else:
            dtype = {"int": np.int64, "float": np.float32, "bool": np.bool_}[self.kind]
        values = [float(v) if self.kind == "float" else v for v in self.array.ravel().tolist()]
        return np.array(values, dtype=dtype).reshape(self.array.shape)


_NUMPY_OF_ONNX = {
    onnx.TensorProto.INT64: np.int64, onnx.TensorProto.INT32: np.int32, onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.DOUBLE: np.float64, onnx.TensorProto.FLOAT16: np.float16, onnx.TensorProto.BOOL: np.bool_,
}


def _normal(value: Any) -> Any:
    """sympy integers and booleans as Python values; everything else as is."""
    if isinstance(value, (bool, np.bool_)) or value is sympy.true or value is sympy.false:
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, sympy.Basic) and value.is_Integer:
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return int(value) if value.is_integer() and abs(value) < 2**62 else sympy.Rational(value)
    if isinstance(value, sympy.Basic) and value.is_Rational:
        return value
    return value


class SymbolicDims:
    """Expressions for MIL's symbolic dims, their bounds, and the shape values of one graph."""

    def __init__(self) -> None:
        self._root_of: dict[Any, sympy.Symbol] = {}  # MIL symbol -> positive-integer sympy symbol
        self._expr_of: dict[Any, Any] = {}  # MIL symbol -> expression over root symbols
        self._symbol_of: dict[Any, Any] = {}  # expression -> MIL symbol
        self._bounds: dict[sympy.Symbol, tuple[int, Any]] = {}
        self.values: dict[str, ShapeValue] = {}

    # ---------------------------------------------------------------- symbols
    def declare(self, mil_symbol: Any, low: int = 1, high: int | None = None) -> sympy.Symbol:
        """A dynamic input dim: its MIL symbol, bounded to [low, high] (high None: unbounded)."""
        root = self._root(mil_symbol)
        self._bounds[root] = (max(int(low), 1), _INF if high is None else int(high))
        return root

    def _root(self, mil_symbol: Any) -> sympy.Symbol:
        root = self._root_of.get(mil_symbol)
        if root is None:
            root = sympy.Symbol(f"d_{mil_symbol}", integer=True, positive=True)
            self._root_of[mil_symbol] = root
            self._expr_of[mil_symbol] = root
            self._symbol_of[root] = mil_symbol
            self._bounds.setdefault(root, (1, _INF))
        return root

    def expr(self, dim: Any) -> Any:
        """A MIL dim (int, symbol or expression of symbols) as an expression over root symbols."""
        if isinstance(dim, (int, np.integer)):
            return int(dim)
        if not isinstance(dim, sympy.Basic):
            raise TypeError(f"not a dim: {dim!r}")
        if dim in self._expr_of:
            return self._expr_of[dim]
        if isinstance(dim, sympy.Symbol):
            return self._root(dim)
        return self.simplify(dim.xreplace({s: self.expr(s) for s in dim.free_symbols}))

    def shape(self, value: Any) -> list[Any]:
        """Every dim of a Var (or numpy constant) as an expression."""
        return [self.expr(d) for d in np.shape(value)] if isinstance(value, (np.ndarray, np.generic)) else \
            [self.expr(d) for d in value.shape]

    def dim(self, expr: Any) -> Any:
        """An expression as a MIL dim: an int, or the one MIL symbol standing for it."""
        expr = self.simplify(expr)
        if isinstance(expr, int):
            return expr
        symbol = self._symbol_of.get(expr)
        if symbol is None:
            from coremltools.converters.mil.mil import get_new_symbol

            symbol = get_new_symbol()
            self._symbol_of[expr] = symbol
            self._expr_of[symbol] = expr
        return symbol

    # ----------------------------------------------------------------- bounds
    def bounds(self, expr: Any) -> tuple[Any, Any]:
        """(low, high) of an expression over the declared ranges (interval arithmetic; may be loose).

        Interval arithmetic forgets that two terms are the same dim, so ``4*floor((a + 3)/4) - a``
        (padding up to whole windows) would look possibly negative; writing each ``floor(p/q)`` as
        ``(p - Mod(p, q))/q`` first lets such terms cancel (``3 - Mod(a + 3, 4)``). Both readings
        are bounded and the tighter bounds kept.
        """
        low, high = self._interval(expr)
        rewritten = _without_floors(expr)
        if rewritten is not None:
            low2, high2 = self._interval(rewritten)
            low, high = max(low, low2), min(high, high2)
        if isinstance(expr, sympy.Basic) and expr.is_integer:
            low, high = _ceil(low), _floor(high)
        return low, high

    def _interval(self, expr: Any) -> tuple[Any, Any]:
        expr = _normal(expr)
        if isinstance(expr, bool):
            return int(expr), int(expr)
        if isinstance(expr, int):
            return expr, expr
        if expr.is_Number:
            return expr, expr
        if isinstance(expr, sympy.Symbol):
            return self._bounds.get(expr, (1, _INF) if expr.is_positive else (-_INF, _INF))
        parts = [self._interval(a) for a in expr.args]
        if isinstance(expr, sympy.Add):
            return sum(p[0] for p in parts), sum(p[1] for p in parts)
        if isinstance(expr, sympy.Mul):
            low, high = parts[0]
            for a, b in parts[1:]:
                corners = [_times(x, y) for x in (low, high) for y in (a, b)]
                low, high = min(corners), max(corners)
            return low, high
        if isinstance(expr, sympy.Min):
            return min(p[0] for p in parts), min(p[1] for p in parts)
        if isinstance(expr, sympy.Max):
            return max(p[0] for p in parts), max(p[1] for p in parts)
        if isinstance(expr, sympy.floor):
            return _floor(parts[0][0]), _floor(parts[0][1])
        if isinstance(expr, sympy.ceiling):
            return _ceil(parts[0][0]), _ceil(parts[0][1])
        if isinstance(expr, sympy.Mod) and expr.args[1].is_Number and expr.args[1] > 0 and parts[0][0] >= 0:
            return 0, min(expr.args[1] - 1, parts[0][1])
        if isinstance(expr, sympy.Pow) and expr.args[1].is_Integer and expr.args[1] > 0 and parts[0][0] >= 0:
            return parts[0][0] ** expr.args[1], parts[0][1] ** expr.args[1]
        return -_INF, _INF

    def simplify(self, expr: Any) -> Any:
        """``Min``/``Max`` decided by the bounds; integers as ints."""
        expr = _normal(expr)
        if not isinstance(expr, sympy.Basic) or expr.is_Atom:
            return expr
        args = [self.simplify(a) for a in expr.args]
        if isinstance(expr, (sympy.Min, sympy.Max)):
            args = self._undominated(args, isinstance(expr, sympy.Min))
            return _normal(args[0] if len(args) == 1 else expr.func(*args))
        return _normal(expr.func(*args))

    def _undominated(self, args: list, is_min: bool) -> list:
        kept = list(args)
        for a in args:
            la, ha = self.bounds(a)
            for b in kept:
                if b is a:
                    continue
                lb, hb = self.bounds(b)
                # Min: a never below b when b's highest <= a's lowest; then a changes nothing.
                if (is_min and hb <= la) or (not is_min and lb >= ha):
                    kept = [k for k in kept if k is not a]
                    break
        return kept or args[:1]

    def compare(self, op: str, a: Any, b: Any) -> bool | None:
        """``a op b`` when the bounds decide it, else None."""
        diff = self.simplify(sympy.sympify(a) - sympy.sympify(b))
        low, high = self.bounds(diff)
        if op == "==":
            if low == high:
                return bool(low == 0)
            return False if (low > 0 or high < 0) else None
        if op == "<":
            return True if high < 0 else False if low >= 0 else None
        if op == "<=":
            return True if high <= 0 else False if low > 0 else None
        if op == ">":
            return True if low > 0 else False if high <= 0 else None
        if op == ">=":
            return True if low >= 0 else False if high < 0 else None
        raise ValueError(op)

    def nonnegative(self, expr: Any) -> bool:
        return self.bounds(expr)[0] >= 0

    # ----------------------------------------------------------------- types
    def refine(self, var: Any, dims: Sequence[Any]) -> Any:
        """Give ``var`` (a MIL Var just built) the dims ``dims`` where MIL's inference knows less.

        A dim MIL knows as an int stays (so does any dim given as None); a symbol MIL
        invented is replaced by the symbol of the expression. A disagreement between two ints is a translator bug: raised.
        """
        from coremltools.converters.mil.mil import types

        if not hasattr(var, "_sym_type") or not types.is_tensor(var.sym_type) or len(dims) != var.rank:
            return var
        current = list(var.shape)
        new = []
        for have, want in zip(current, dims):
            if want is None:
                new.append(have)
                continue
            want = self.dim(want)
            if isinstance(have, (int, np.integer)):
                if isinstance(want, int) and want != int(have):
                    raise AssertionError(f"{var.name}: dim {have} is {want} symbolically")
                new.append(int(have))
            else:
                new.append(want)
        if new != current:
            var._sym_type = types.tensor(var.dtype, tuple(new))
        return var


def _without_floors(expr: Any) -> Any | None:
    """``expr`` with every ``floor(p/q)`` (q a positive integer) written ``(p - Mod(p, q))/q``, expanded; None if none."""
    if not isinstance(expr, sympy.Basic) or not expr.has(sympy.floor):
        return None

    def exact(term: Any) -> Any:
        numerator, denominator = sympy.fraction(sympy.together(term.args[0]))
        if not (denominator.is_Integer and denominator > 0):
            return term
        return (numerator - sympy.Mod(numerator, denominator)) / denominator

    try:
        return sympy.expand(expr.replace(lambda e: isinstance(e, sympy.floor), exact))
    except (TypeError, ValueError, RecursionError):
        return None


def _times(x: Any, y: Any) -> Any:
    if x == 0 or y == 0:
        return 0
    return x * y


def _floor(v: Any) -> Any:
    return v if v in (_INF, -_INF) else sympy.floor(v)


def _ceil(v: Any) -> Any:
    return v if v in (_INF, -_INF) else sympy.ceiling(v)


# ------------------------------------------------------------------------------------- evaluation


class _GiveUp(Exception):
    """The value of this node cannot be stated symbolically."""


Inputs = list[ShapeValue | None]
_Evaluator = Callable[[onnx.NodeProto, Inputs, SymbolicDims, Any], list[ShapeValue]]
_EVALUATORS: dict[str, _Evaluator] = {}


def _evaluator(*ops: str) -> Callable[[_Evaluator], _Evaluator]:
    def register(fn: _Evaluator) -> _Evaluator:
        for op in ops:
            _EVALUATORS[op] = fn
        return fn

    return register


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for attribute in node.attribute:
        if attribute.name == name:
            return onnx.helper.get_attribute_value(attribute)
    return default


def _kind_of(array: np.ndarray) -> str:
    if array.dtype == np.bool_:
        return "bool"
    return "float" if array.dtype.kind == "f" else "int"


def constant_value(known: Any) -> ShapeValue | None:
    """A numpy constant small enough to take part in shape arithmetic."""
    array = np.asarray(known)
    if array.size > MAX_ELEMENTS or array.ndim > 2 or array.dtype.kind not in "biuf":
        return None
    return ShapeValue(np.array([_normal(v) for v in array.ravel().tolist()], dtype=object).reshape(array.shape),
                      _kind_of(array))


def evaluate(node: onnx.NodeProto, dims: SymbolicDims, ctx: Any) -> list[ShapeValue] | None:
    """The shape values of ``node``'s outputs, or None when they are not shape values."""
    fn = _EVALUATORS.get(node.op_type)
    if fn is None or node.domain not in ("", "ai.onnx"):
        return None
    inputs: Inputs = []
    tracked = False
    for index, name in enumerate(node.input):
        if not name:
            inputs.append(None)
            continue
        value = dims.values.get(name)
        if value is not None:
            tracked = True
        else:
            known = ctx.const(node, index)
            value = constant_value(known) if known is not None else None
        inputs.append(value)
    if not tracked and node.op_type not in ("Shape", "Size"):
        return None
    try:
        outputs = fn(node, inputs, dims, ctx)
    except (_GiveUp, TypeError, ValueError, IndexError, ZeroDivisionError, OverflowError):
        return None
    for value in outputs:
        if not isinstance(value.array, np.ndarray):  # numpy hands back a scalar for rank-0 results
            scalar = np.empty((), dtype=object)
            scalar[()] = value.array
            value.array = scalar
        if value.array.size > MAX_ELEMENTS:
            return None
        value.array = _map(_normal, value.array)
    return outputs


def _need(value: ShapeValue | None) -> ShapeValue:
    if value is None:
        raise _GiveUp
    return value


def _present(node: onnx.NodeProto, inputs: Inputs) -> list[ShapeValue]:
    """The values of every input ``node`` names (a variadic Concat, Max, ...); gives up on an unknown one.

    ``inputs`` holds None both for an absent optional input and for a tensor that is no shape
    value (a graph input, a computed float tensor): dropping the latter would compute another op.
    """
    return [_need(value) for name, value in zip(node.input, inputs) if name]


def _optional(node: onnx.NodeProto, inputs: Inputs, index: int) -> ShapeValue | None:
    """Input ``index`` when given, None when absent; gives up when it is given but not a shape value."""
    if index >= len(node.input) or not node.input[index]:
        return None
    return _need(inputs[index])


@_evaluator("Shape")
def _shape(node, inputs, dims, ctx):
    x = ctx.input_any(node, 0)
    shape = list(x.dims) if hasattr(x, "sizes") else dims.shape(x)  # a HighRank value has logical dims
    rank = len(shape)
    start, end = _attr(node, "start", 0), _attr(node, "end", None)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = rank if end is None else min(max(end + rank if end < 0 else end, 0), rank)
    return [ShapeValue(np.array(shape[start:end], dtype=object), "int")]


@_evaluator("Size")
def _size(node, inputs, dims, ctx):
    return [ShapeValue(np.array(sympy.Mul(*dims.shape(ctx.input(node, 0))), dtype=object), "int")]


@_evaluator("Identity")
def _identity(node, inputs, dims, ctx):
    return [_need(inputs[0])]


_INT_TYPES = {onnx.TensorProto.INT64, onnx.TensorProto.INT32, onnx.TensorProto.INT16, onnx.TensorProto.INT8,
              onnx.TensorProto.UINT8, onnx.TensorProto.UINT16, onnx.TensorProto.UINT32, onnx.TensorProto.UINT64}
_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16}


@_evaluator("Cast")
def _cast(node, inputs, dims, ctx):
    x = _need(inputs[0])
    to = _attr(node, "to")
    if to in _INT_TYPES:
        def to_int(v):
            if isinstance(v, bool):
                return int(v)
            if isinstance(v, sympy.Basic) and v.is_integer:
                return v
            if not isinstance(v, sympy.Basic) and float(v).is_integer():
                return int(v)
            if dims.nonnegative(v):  # truncation toward zero
                return sympy.floor(v)
            raise _GiveUp
        return [ShapeValue(_map(to_int, x.array), "int")]
    if to in _FLOAT_TYPES:
        return [ShapeValue(_map(lambda v: int(v) if isinstance(v, bool) else v, x.array), "float")]
    if to == onnx.TensorProto.BOOL:
        return [ShapeValue(_map(lambda v: _decided(dims.compare("==", v, 0), negate=True), x.array), "bool")]
    raise _GiveUp


def _decided(result: bool | None, negate: bool = False) -> bool:
    if result is None:
        raise _GiveUp
    return (not result) if negate else result


def _map(fn: Callable[[Any], Any], array: np.ndarray) -> np.ndarray:
    out = np.empty(array.shape, dtype=object)
    for index, value in np.ndenumerate(array):
        out[index] = fn(value)
    return out


def _int_list(value: ShapeValue | None) -> list[int]:
    value = _need(value)
    if not value.concrete:
        raise _GiveUp
    return [int(v) for v in value.array.ravel().tolist()]


@_evaluator("Gather")
def _gather(node, inputs, dims, ctx):
    data = _need(inputs[0])
    indices = _need(inputs[1])
    if not indices.concrete:
        raise _GiveUp
    axis = _attr(node, "axis", 0)
    axis = axis + data.array.ndim if axis < 0 else axis
    size = data.array.shape[axis]
    index = np.array([int(i) + size if int(i) < 0 else int(i) for i in indices.array.ravel().tolist()],
                     dtype=np.int64).reshape(indices.array.shape)
    return [ShapeValue(np.take(data.array, index, axis=axis), data.kind)]


@_evaluator("Concat")
def _concat(node, inputs, dims, ctx):
    parts = _present(node, inputs)
    axis = _attr(node, "axis", 0)
    kind = parts[0].kind
    return [ShapeValue(np.concatenate([p.array for p in parts], axis=axis), kind)]


def _axes(node, inputs, ctx) -> list[int] | None:
    axes = _attr(node, "axes")
    if axes is None and _optional(node, inputs, 1) is not None:
        axes = _int_list(inputs[1])
    return None if axes is None else [int(a) for a in axes]


@_evaluator("Unsqueeze")
def _unsqueeze(node, inputs, dims, ctx):
    data = _need(inputs[0])
    axes = _axes(node, inputs, ctx)
    if axes is None:
        raise _GiveUp
    array = data.array
    rank = array.ndim + len(axes)
    for axis in sorted(a + rank if a < 0 else a for a in axes):
        array = np.expand_dims(array, axis)
    return [ShapeValue(array, data.kind)]


@_evaluator("Squeeze")
def _squeeze(node, inputs, dims, ctx):
    data = _need(inputs[0])
    axes = _axes(node, inputs, ctx)
    array = data.array
    axes = tuple(a + array.ndim if a < 0 else a for a in axes) if axes else None
    return [ShapeValue(np.squeeze(array, axis=axes), data.kind)]


@_evaluator("Slice")
def _slice(node, inputs, dims, ctx):
    data = _need(inputs[0])
    if _attr(node, "starts") is not None:  # opset < 10
        starts, ends, axes, steps = _attr(node, "starts"), _attr(node, "ends"), _attr(node, "axes"), None
    else:
        starts, ends = _int_list(inputs[1]), _int_list(inputs[2])
        axes = _int_list(inputs[3]) if _optional(node, inputs, 3) is not None else None
        steps = _int_list(inputs[4]) if _optional(node, inputs, 4) is not None else None
    array = data.array
    axes = list(range(len(starts))) if axes is None else [a + array.ndim if a < 0 else a for a in axes]
    steps = steps or [1] * len(starts)
    index = [slice(None)] * array.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        size = array.shape[axis]
        index[axis] = slice(*slice(int(start), int(end), int(step)).indices(size))
    return [ShapeValue(array[tuple(index)], data.kind)]


@_evaluator("Reshape")
def _reshape(node, inputs, dims, ctx):
    data = _need(inputs[0])
    target = _int_list(inputs[1])
    target = [data.array.shape[i] if t == 0 and not _attr(node, "allowzero", 0) else t for i, t in enumerate(target)]
    return [ShapeValue(data.array.reshape(target), data.kind)]


@_evaluator("Expand")
def _expand(node, inputs, dims, ctx):
    data = _need(inputs[0])
    shape = _int_list(inputs[1])
    out = np.broadcast_shapes(data.array.shape, tuple(shape))
    return [ShapeValue(np.broadcast_to(data.array, out).copy(), data.kind)]


@_evaluator("ConstantOfShape")
def _constant_of_shape(node, inputs, dims, ctx):
    shape = _int_list(inputs[0])
    value = _attr(node, "value")
    fill = onnx.numpy_helper.to_array(value).reshape(-1)[0] if value is not None else np.float32(0)
    if int(np.prod(shape)) > MAX_ELEMENTS:
        raise _GiveUp
    array = np.full(shape, fill)
    return [ShapeValue(np.array([_normal(v) for v in array.ravel().tolist()], dtype=object).reshape(shape),
                       _kind_of(array))]


def _elementwise(fn: Callable[..., Any], *values: ShapeValue, kind: str) -> ShapeValue:
    arrays = np.broadcast_arrays(*[v.array for v in values])
    out = np.empty(arrays[0].shape, dtype=object)
    for index in np.ndindex(out.shape):
        out[index] = fn(*[a[index] for a in arrays])
    return ShapeValue(out, kind)


def _int_division(dims: SymbolicDims, a: Any, b: Any) -> Any:
    """ONNX's integer Div truncates toward zero: floor division when both signs are known."""
    if b == 0:
        raise _GiveUp
    if not isinstance(a, sympy.Basic) and not isinstance(b, sympy.Basic):
        q = abs(int(a)) // abs(int(b))
        return q if (int(a) >= 0) == (int(b) > 0) else -q
    if dims.nonnegative(a) and dims.compare(">", b, 0):
        return sympy.floor(sympy.sympify(a) / b)
    raise _GiveUp


def _modulo(dims: SymbolicDims, a: Any, b: Any, fmod: bool) -> Any:
    if b == 0:
        raise _GiveUp
    if not isinstance(a, sympy.Basic) and not isinstance(b, sympy.Basic):
        return int(math.fmod(int(a), int(b))) if fmod else int(a) % int(b)
    if dims.nonnegative(a) and dims.compare(">", b, 0):
        return sympy.Mod(a, b)
    raise _GiveUp


@_evaluator("Add", "Sub", "Mul", "Div", "Mod", "Max", "Min", "Pow")
def _arithmetic(node, inputs, dims, ctx):
    values = _present(node, inputs)
    kind = "float" if any(v.kind == "float" for v in values) else "int"
    op = node.op_type
    if op in ("Max", "Min"):
        fn = sympy.Max if op == "Max" else sympy.Min
        return [_elementwise(lambda *xs: dims.simplify(fn(*xs)), *values, kind=kind)]
    a, b = values
    if op == "Add":
        fn = lambda x, y: x + y  # noqa: E731
    elif op == "Sub":
        fn = lambda x, y: x - y  # noqa: E731
    elif op == "Mul":
        fn = lambda x, y: x * y  # noqa: E731
    elif op == "Pow":
        def fn(x, y):
            if isinstance(y, sympy.Basic) or int(y) != y or y < 0:
                raise _GiveUp
            return sympy.sympify(x) ** int(y)
    elif op == "Div":
        fn = (lambda x, y: sympy.sympify(x) / y) if kind == "float" else (lambda x, y: _int_division(dims, x, y))
    else:
        if kind == "float":
            raise _GiveUp
        fmod = bool(_attr(node, "fmod", 0))
        fn = lambda x, y: _modulo(dims, x, y, fmod)  # noqa: E731
    return [_elementwise(lambda x, y: dims.simplify(fn(x, y)), a, b, kind=kind)]


@_evaluator("Neg", "Abs", "Floor", "Ceil", "Not")
def _unary(node, inputs, dims, ctx):
    x = _need(inputs[0])
    op = node.op_type
    if op == "Not":
        return [ShapeValue(_map(lambda v: not v, x.array), "bool")]
    if op == "Abs":
        def fn(v):
            if dims.nonnegative(v):
                return v
            if dims.compare("<=", v, 0):
                return -v
            raise _GiveUp
    else:
        fn = {"Neg": lambda v: -v, "Floor": sympy.floor, "Ceil": sympy.ceiling}[op]
    return [ShapeValue(_map(lambda v: dims.simplify(fn(v)), x.array), x.kind)]


_COMPARISONS = {"Equal": "==", "Less": "<", "LessOrEqual": "<=", "Greater": ">", "GreaterOrEqual": ">="}


@_evaluator(*_COMPARISONS)
def _comparison(node, inputs, dims, ctx):
    a, b = _need(inputs[0]), _need(inputs[1])
    op = _COMPARISONS[node.op_type]

    def fn(x, y):
        if isinstance(x, bool) or isinstance(y, bool):
            if op != "==":
                raise _GiveUp
            return bool(x) == bool(y)
        return _decided(dims.compare(op, x, y))

    return [_elementwise(fn, a, b, kind="bool")]


@_evaluator("And", "Or", "Xor")
def _logical(node, inputs, dims, ctx):
    a, b = _need(inputs[0]), _need(inputs[1])
    fn = {"And": lambda x, y: bool(x) and bool(y), "Or": lambda x, y: bool(x) or bool(y),
          "Xor": lambda x, y: bool(x) != bool(y)}[node.op_type]
    return [_elementwise(fn, a, b, kind="bool")]


@_evaluator("Where")
def _where(node, inputs, dims, ctx):
    cond, a, b = (_need(v) for v in inputs[:3])
    if cond.kind != "bool":
        raise _GiveUp
    return [_elementwise(lambda c, x, y: x if c else y, cond, a, b, kind=a.kind)]


@_evaluator("ReduceProd", "ReduceSum", "ReduceMax", "ReduceMin")
def _reduce(node, inputs, dims, ctx):
    x = _need(inputs[0])
    axes = _attr(node, "axes")
    if axes is None and _optional(node, inputs, 1) is not None:
        axes = _int_list(inputs[1])
    keepdims = bool(_attr(node, "keepdims", 1))
    if not axes:
        if _attr(node, "noop_with_empty_axes", 0):
            return [x]
        axes = list(range(x.array.ndim))
    axes = tuple(sorted(a + x.array.ndim if a < 0 else a for a in axes))
    combine = {"ReduceProd": lambda vs: sympy.Mul(*vs), "ReduceSum": lambda vs: sympy.Add(*vs),
               "ReduceMax": lambda vs: sympy.Max(*vs), "ReduceMin": lambda vs: sympy.Min(*vs)}[node.op_type]
    moved = np.moveaxis(x.array, axes, list(range(x.array.ndim - len(axes), x.array.ndim)))
    kept_shape = moved.shape[: x.array.ndim - len(axes)]
    flat = moved.reshape(kept_shape + (-1,))
    out = np.empty(kept_shape, dtype=object)
    for index in np.ndindex(kept_shape):
        out[index] = dims.simplify(combine(list(flat[index])))
    if keepdims:
        for axis in axes:
            out = np.expand_dims(out, axis)
    return [ShapeValue(out, x.kind)]


@_evaluator("Range")
def _range(node, inputs, dims, ctx):
    start, limit, delta = (_need(v) for v in inputs[:3])
    if not (start.concrete and limit.concrete and delta.concrete):
        raise _GiveUp
    values = np.arange(start.array.item(), limit.array.item(), delta.array.item())
    if values.size > MAX_ELEMENTS:
        raise _GiveUp
    return [ShapeValue(np.array([_normal(v) for v in values.tolist()], dtype=object), start.kind)]


# ------------------------------------------------------------------------------ output dims of ops


def range_length(dims: SymbolicDims, start: Any, limit: Any, delta: Any) -> Any:
    """Elements of Range(start, limit, delta): max(ceil((limit - start) / delta), 0)."""
    return dims.simplify(sympy.Max(sympy.ceiling((sympy.sympify(limit) - start) / delta), 0))


def broadcast(dims: SymbolicDims, a: Sequence[Any], b: Sequence[Any]) -> list[Any]:
    """Multidirectional broadcasting of two shapes given as expressions."""
    a, b = list(a), list(b)
    rank = max(len(a), len(b))
    a, b = [1] * (rank - len(a)) + a, [1] * (rank - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x == 1:
            out.append(y)
        elif y == 1 or sympy.sympify(x - y) == 0:
            out.append(x)
        else:
            # Valid operands agree or one of them is 1: the larger one is the result.
            out.append(dims.simplify(sympy.Max(x, y)))
    return out


def slice_length(dims: SymbolicDims, size: Any, start: Any, end: Any, step: int) -> Any | None:
    """Elements ONNX's Slice keeps of one axis (negative bounds count from the end, then clamp)."""
    if step <= 0:
        return None

    def clamp(v: Any) -> Any | None:
        if dims.nonnegative(v):
            return dims.simplify(sympy.Min(v, size))
        if dims.compare("<", v, 0):
            return dims.simplify(sympy.Max(sympy.sympify(v) + size, 0))
        return None

    begin, stop = clamp(start), clamp(end)
    if begin is None or stop is None:
        return None
    return dims.simplify(sympy.Max(sympy.ceiling((sympy.sympify(stop) - begin) / step), 0))
