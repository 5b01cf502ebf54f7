"""Control flow: ONNX Loop as a MIL ``while_loop``.

ONNX ``Loop(M, cond, v_initial...)`` runs its body graph ``(iteration_num, cond, v...) ->
(cond, v..., scan...)`` while ``iteration_num < M`` and ``cond`` hold (either may be absent:
a for loop, a while loop; both absent never ends and is refused). It becomes one
``while_loop`` whose loop variables are the iteration number, the condition (only when
the node has one: without it the body's condition output is ignored, as the spec says),
the loop-carried values, and one buffer per scan output.

- **Loop-carried values** the body passes through unchanged (its output is its input: the
  weights tf2onnx threads through a Keras RNN's loop) are not loop variables: the body reads
  the outer value itself, so a constant stays a constant that MIL can fold into ``linear``.
- **The body** is translated by the same op converters as the graph, in a child table of
  names whose misses fall through to the enclosing graph, so the body reads outer values
  (tf2onnx's transposed input sequence, initializers) by name as ONNX allows. MIL may
  translate the body twice: once more when a loop variable's shape changes across an
  iteration, to relax it to a symbolic dim.
- **Scan outputs** are written into a tensor of ``M`` rows allocated before the loop
  (``scatter`` at row ``iteration_num``) and cut to the iterations that ran. The per-iteration
  shape comes from a first translation of the body that is then discarded; a dim of it is static,
  a dim of a value that exists before the loop (the batch of the input), or else taken from the
  first iteration's row (a ``cond`` in the body sizes the buffer then).

Refused, by name (exit 3): no M and no condition (the loop never ends); scan outputs without
M (their row count is known only when the loop ends; ``while_loop`` variables keep one
rank and MIL's list ops are not used); a scan output with a dim computed inside the loop while
a loop-carried value's static dim changes in an iteration (its rows may differ); a scan output
of rank > 4 (its stack would pass Core ML's rank 5); sequence or optional values (Core ML has
no such types).
"""

from __future__ import annotations

import collections

import onnx
from coremltools.converters.mil.mil import Var, types
from onnx import numpy_helper

from interop_coreml.onnx2mil.errors import NodeNotConvertible
from interop_coreml.onnx2mil.ops._common import (
    ConversionContext, as_var, attr, cast_to, mb, np,
)
from interop_coreml.onnx2mil.op_converters import converter_for, register

# A trip count at int32's limit (int64's clipped) bounds nothing a model reaches: treated as absent.
_UNBOUNDED = np.iinfo(np.int32).max
_MAX_SCAN_RANK = 4


def _tensor_only(body: onnx.GraphProto) -> None:
    for value in [*body.input, *body.output]:
        if not value.type.HasField("tensor_type"):
            kind = value.type.WhichOneof("value") or "untyped"
            raise NodeNotConvertible(f"the body's {value.name!r} is a {kind.replace('_type', '')} value; Core ML "
                                     f"loops carry tensors only")


def _scalar(value, dtype: str):
    """A rank-0 value of ``dtype`` from a rank-0 or one-element tensor."""
    value = cast_to(value, dtype)
    if isinstance(value, np.ndarray):
        return value.reshape(())
    return value if value.rank == 0 else mb.squeeze(x=mb.reshape(x=value, shape=[1]), axes=[0])


def _as_declared(value, declared: onnx.ValueInfoProto):
    """A scalar the body declares as a one-element vector gets that shape."""
    shape = declared.type.tensor_type.shape
    if declared.type.tensor_type.HasField("shape") and len(shape.dim) == 1:
        return mb.expand_dims(x=value, axes=[0])
    return value


def _child(parent: ConversionContext) -> ConversionContext:
    """A name table for one translation of a body: new names stay in it, misses read the enclosing graph's.

    MIL names and symbolic dims stay shared with the parent (names must be unique in the program);
    the body's values are not recorded for --locate (they change every iteration).
    """
    child = ConversionContext.__new__(ConversionContext)
    child.__dict__.update(parent.__dict__)
    child._values = collections.ChainMap({}, parent._values)
    child.produced = {}
    return child


def _elem_types(body: onnx.GraphProto) -> dict[str, int]:
    return {value.name: value.type.tensor_type.elem_type
            for value in [*body.input, *body.value_info, *body.output] if value.type.HasField("tensor_type")}


def _translate_body(parent: ConversionContext, body: onnx.GraphProto, bound: dict[str, object]) -> list:
    """The body's output values, with its inputs bound to ``bound``."""
    from interop_coreml.onnx2mil.driver import convert_node  # the driver imports the op families

    ctx = _child(parent)
    for init in body.initializer:
        ctx.set(init.name, numpy_helper.to_array(init))
    for name, value in bound.items():
        ctx.set(name, value)
    elem_types = _elem_types(body)
    for node in body.node:
        label = f"body node {node.op_type} {node.name or node.output[0]!r}"
        fn = converter_for(node.domain, node.op_type, parent.opset)
        if fn is None:  # find_unsupported lists these before anything is built
            raise NodeNotConvertible(f"{label} has no converter")
        try:
            convert_node(ctx, node, fn, elem_types)
        except NodeNotConvertible as error:
            raise type(error)(f"{label}: {error.reason}") from None
    return [ctx.get(value.name) for value in body.output]


class _Plan:
    """What one Loop node carries, decided before anything is built."""

    def __init__(self, ctx: ConversionContext, node: onnx.NodeProto, body: onnx.GraphProto):
        self.body = body
        self.carried = len(node.input) - 2
        self.scans = len(body.output) - 1 - self.carried
        if len(body.input) != self.carried + 2 or self.scans < 0:
            raise NodeNotConvertible(f"the body takes {len(body.input)} inputs and returns {len(body.output)} "
                                     f"outputs for {self.carried} loop-carried value(s)")
        self.trip = self._trip_count(ctx, node)
        self.cond = None if len(node.input) < 2 or not node.input[1] else _scalar(ctx.input(node, 1), "bool")
        if self.trip is None and self.cond is None:
            raise NodeNotConvertible("no condition and no trip count M (or one at int64's maximum): the loop never "
                                     "ends")
        if self.scans and self.trip is None:
            raise NodeNotConvertible(
                f"{self.scans} scan output(s) without a trip count M: their length is known only when the loop "
                f"ends, and Core ML's while_loop carries tensors of one rank")
        self.initial = [ctx.input(node, 2 + k) for k in range(self.carried)]
        # A value the body returns as it received it is the same in every iteration.
        self.invariant = [body.output[1 + k].name == body.input[2 + k].name for k in range(self.carried)]
        self.looped = [k for k in range(self.carried) if not self.invariant[k]]
        self.scalar = [v.rank == 0 if isinstance(v, Var) else np.ndim(v) == 0 for v in self.initial]

    @staticmethod
    def _trip_count(ctx: ConversionContext, node: onnx.NodeProto):
        if not node.input or not node.input[0]:
            return None
        known = ctx.const(node, 0)
        if known is not None:
            count = int(np.asarray(known).reshape(()))
            return None if count >= _UNBOUNDED else np.int32(max(count, 0))
        # A negative M runs no iteration, and sizes the scan buffers: 0 rows.
        return mb.maximum(x=_scalar(ctx.input(node, 0), "int32"), y=np.int32(0))

    def loop_vars(self, buffers: list) -> list:
        values = [np.int32(0)] + ([_carry(self.cond)] if self.cond is not None else [])
        values += [_carry(self.initial[k]) if self.scalar[k] else self.initial[k] for k in self.looped] + buffers
        return [as_var(v) for v in values]

    def unpack(self, values):
        """(iteration, cond or None, {carried index: value}, buffers) from the loop variables."""
        values = list(values)
        step = values.pop(0)
        cond = _uncarry(values.pop(0)) if self.cond is not None else None
        carried = {k: _uncarry(values.pop(0)) if self.scalar[k] else values.pop(0) for k in self.looped}
        return step, cond, carried, values

    def bindings(self, step, cond, carried: dict) -> dict[str, object]:
        body = self.body
        bound = {body.input[0].name: _as_declared(step, body.input[0]),
                 body.input[1].name: _as_declared(cond if cond is not None else as_var(np.bool_(True)), body.input[1])}
        for k in range(self.carried):
            bound[body.input[2 + k].name] = carried[k] if k in carried else self.initial[k]
        return bound

    def condition(self, *values):
        """The cond block: iteration < M and/or the condition."""
        _varying(values)
        step, cond, _, _ = self.unpack(values)
        below = None if self.trip is None else mb.less(x=step, y=self.trip)
        if cond is None:
            return below
        return cond if below is None else mb.logical_and(x=below, y=cond)

    def translate(self, ctx: ConversionContext, values) -> tuple:
        """One translation of the body on a block's loop variables: (iteration, body outputs, scan buffers)."""
        _varying(values)
        step, cond, carried, buffers = self.unpack(values)
        return step, _translate_body(ctx, self.body, self.bindings(step, cond, carried)), buffers


class _Scan:
    """One scan output: its per-iteration shape and dtype, and that shape as a value computed before the loop
    (``element_shape``), or None when only the first iteration tells it (``sized_in_loop``)."""

    def __init__(self, name: str, shape: tuple, dtype):
        self.name, self.shape, self.dtype = name, shape, dtype
        self.element_shape = None  # np.ndarray or a [rank] int32 Var, set by _buffers
        self.sized_in_loop = False

    def row(self, value):
        """The iteration's value as one row of the buffer (bool is buffered as int32)."""
        value = as_var(value)
        if types.is_bool(value.dtype):
            value = mb.cast(x=value, dtype="int32")
        if tuple(value.shape) != self.shape and self.shape and not self.sized_in_loop:
            # A dim MIL computes in the body that the model declares static (Slice(x, [i], [i + 1]) is
            # [1]): the reshape holds it to that, and fails at run time rather than stacking a wrong size.
            value = mb.reshape(x=value, shape=self.element_shape)
        return mb.expand_dims(x=value, axes=[0])


def _declared_dims(value: onnx.ValueInfoProto) -> list:
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return []
    return [int(d.dim_value) if d.HasField("dim_value") else None for d in tensor.shape.dim]


def _scans(ctx: ConversionContext, plan: _Plan, node: onnx.NodeProto) -> tuple[list[_Scan], bool]:
    """Every scan output's per-iteration shape and dtype, from a translation of the body that is discarded,
    and whether a loop-carried value's static dim changes in an iteration (then so may the scans').

    A dim MIL leaves symbolic where the body's declared output type has a number takes the number.
    """
    seen: list[_Scan] = []
    resized = []

    def body(*values):
        step, outputs, _ = plan.translate(ctx, values)
        carried_in = plan.unpack(values)[2]
        for k in plan.looped:
            before, after = carried_in[k].shape, as_var(outputs[1 + k]).shape
            if len(before) != len(after) or any(
                    isinstance(a, (int, np.integer)) and isinstance(b, (int, np.integer)) and a != b
                    for a, b in zip(before, after)):
                resized.append(k)
        seen.clear()  # MIL translates the body again when a loop variable's shape changes
        for index, value in enumerate(outputs[1 + plan.carried:]):
            value = as_var(value)
            declared = _declared_dims(plan.body.output[1 + plan.carried + index])
            shape = tuple(d if isinstance(d, (int, np.integer)) or len(declared) != value.rank or declared[axis] is None
                          else declared[axis] for axis, d in enumerate(value.shape))
            name = node.output[plan.carried + index] if len(node.output) > plan.carried + index else ""
            seen.append(_Scan(name or f"scan output {index}", shape, value.dtype))
        return _next(plan, step, outputs, [], [])  # the scans are not stacked in this translation

    results = mb.while_loop(_cond=plan.condition, _body=body, loop_vars=tuple(plan.loop_vars([])))
    op = results[0].op
    op.enclosing_block.remove_ops([op])
    return list(seen), bool(resized)


def _carry(value) -> Var:
    """A rank-0 loop variable is carried as a one-element vector: MIL types a rank-0 value as a scalar
    or as a rank-0 tensor depending on the op that made it, and a loop variable must keep its type."""
    value = as_var(value)
    return mb.expand_dims(x=value, axes=[0]) if value.rank == 0 else value


def _uncarry(value) -> Var:
    return mb.squeeze(x=value, axes=[0])


def _varying(values) -> None:
    """Forget what MIL knows of the loop variables' values in this translation of a block.

    A loop variable starts as a constant (the iteration number 0, a condition True) but changes:
    folding it would bake the first iteration into the body. MIL compares each variable's known
    value with the body's result and translates the body once more when they differ, only
    once, so a body whose folding cascades (the condition known while the count is) fails.
    """
    for value in values:
        value._sym_val = None


def _unknown(value) -> Var:
    """A loop variable's next value, with no value known at conversion time (see :func:`_varying`)."""
    value = as_var(value)
    if value.sym_val is not None:
        value = mb.identity(x=value)
        value._sym_val = None
    return value


def _next(plan: _Plan, step, outputs: list, scans: list[_Scan], buffers: list) -> tuple:
    """The loop variables after one iteration."""
    values = [mb.add(x=step, y=np.int32(1))]
    if plan.cond is not None:
        values.append(_carry(_scalar(outputs[0], "bool")))
    values += [_carry(outputs[1 + k]) if plan.scalar[k] else outputs[1 + k] for k in plan.looped]
    for scan, buffer, value in zip(scans, buffers, outputs[1 + plan.carried:]):
        row = scan.row(value)
        if scan.sized_in_loop:
            buffer = _sized_at_first_iteration(plan, step, buffer, row)
        values.append(mb.scatter(data=buffer, indices=mb.expand_dims(x=step, axes=[0]), updates=row,
                                 axis=0, mode="update"))
    return tuple(_unknown(v) for v in values)


def _sized_at_first_iteration(plan: _Plan, step, buffer, row):
    """The buffer, replaced in the first iteration by zeros of M rows shaped like that iteration's row."""
    def first():
        rows = np.reshape(plan.trip, [1]) if isinstance(plan.trip, np.integer) else mb.expand_dims(x=plan.trip,
                                                                                                   axes=[0])
        shape = mb.concat(values=[rows, mb.slice_by_index(x=mb.shape(x=row), begin=[1], end=[row.rank])], axis=0)
        return mb.fill(shape=shape, value=types.nptype_from_builtin(buffer.dtype)(0))

    return mb.cond(pred=mb.equal(x=step, y=np.int32(0)), _true_fn=first, _false_fn=lambda: mb.identity(x=buffer))


def _dim_before_loop(ctx: ConversionContext, dim):
    """A [1] int32 value of a per-iteration dim: a constant, or the same dim of a value that exists before the
    loop; None when neither is known."""
    if isinstance(dim, (int, np.integer)):
        return np.array([int(dim)], dtype=np.int32)
    for value in ctx._values.values():
        if isinstance(value, Var) and value.rank > 0:
            for axis, candidate in enumerate(value.shape):
                if not isinstance(candidate, (int, np.integer)) and candidate == dim:
                    return mb.slice_by_index(x=mb.shape(x=value), begin=[axis], end=[axis + 1])
    return None


def _buffers(ctx: ConversionContext, plan: _Plan, scans: list[_Scan], carried_resized: bool) -> list:
    """A zero tensor of M rows per scan output (bool as int32), its element shape computed before the loop.

    A per-iteration dim that no value before the loop has (the translator lost that two dims are the same
    batch, as in a Keras LSTM after a masked Bidirectional one) is taken from the first iteration's row:
    the buffer starts with ones there and is replaced in that iteration. Unless a loop-carried value's
    static dim changes in an iteration (a value grown by Concat): then the scans' shape may change too,
    which ONNX cannot stack, and the node is refused.
    """
    if not scans:
        return []
    buffers = []
    rows = np.reshape(plan.trip, [1]) if isinstance(plan.trip, np.integer) else mb.expand_dims(x=plan.trip, axes=[0])
    for scan in scans:
        if len(scan.shape) > _MAX_SCAN_RANK:
            raise NodeNotConvertible(f"scan output {scan.name!r} stacks rank-{len(scan.shape)} values; Core ML "
                                     f"tensors have rank <= 5")
        dims = [_dim_before_loop(ctx, dim) for dim in scan.shape]
        if any(d is None for d in dims):
            if carried_resized:
                raise NodeNotConvertible(
                    f"scan output {scan.name!r} has a per-iteration dim that is computed inside the loop, and a "
                    f"loop-carried value changes shape between iterations: the rows may differ, and Core ML needs "
                    f"one row shape to stack them")
            scan.sized_in_loop = True
            dims = [np.ones(1, np.int32) if d is None else d for d in dims]
        if all(isinstance(d, np.ndarray) for d in dims):
            scan.element_shape = np.concatenate(dims) if dims else np.zeros(0, dtype=np.int32)
        else:
            scan.element_shape = mb.concat(values=dims, axis=0)
        full = (np.concatenate([rows, scan.element_shape]) if isinstance(rows, np.ndarray)
                and isinstance(scan.element_shape, np.ndarray) else mb.concat(values=[rows, scan.element_shape], axis=0))
        zero = np.int32(0) if types.is_bool(scan.dtype) else types.nptype_from_builtin(scan.dtype)(0)
        buffers.append(mb.fill(shape=full, value=zero))
    return buffers


@register("Loop", since_version=1)
def convert_loop(ctx: ConversionContext, node) -> None:
    body = attr(node, "body")
    _tensor_only(body)
    plan = _Plan(ctx, node, body)
    scans, carried_resized = _scans(ctx, plan, node) if plan.scans else ([], False)
    buffers = _buffers(ctx, plan, scans, carried_resized)

    def loop_body(*values):
        step, outputs, current = plan.translate(ctx, values)
        return _next(plan, step, outputs, scans, current)

    results = mb.while_loop(_cond=plan.condition, _body=loop_body, loop_vars=tuple(plan.loop_vars(buffers)))
    steps, _, carried, stacked = plan.unpack(results)
    for k in range(plan.carried):
        ctx.output(node, k, carried[k] if k in carried else plan.initial[k])
    for index, (scan, buffer) in enumerate(zip(scans, stacked)):
        if plan.cond is not None or not isinstance(plan.trip, np.integer):
            # The condition may end the loop before M (or M was negative): keep the rows of the iterations that ran.
            rank = buffer.rank
            end = mb.concat(values=[mb.expand_dims(x=steps, axes=[0]), np.zeros(rank - 1, dtype=np.int32)], axis=0)
            buffer = mb.slice_by_index(x=buffer, begin=[0] * rank, end=end, end_mask=[False] + [True] * (rank - 1))
        if types.is_bool(scan.dtype):
            buffer = cast_to(buffer, "bool")
        ctx.output(node, plan.carried + index, buffer)
