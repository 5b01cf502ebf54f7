"""Reductions (ReduceSum, ReduceMean, ...) and ArgMax/ArgMin."""

from __future__ import annotations

from interop_coreml.onnx2mil.errors import NodeNotConvertible
from interop_coreml.onnx2mil.ops._common import (
    ConversionContext, as_var, attr, const_axes, mb, mil_dtype_name, np, scalar_like,
)
from interop_coreml.onnx2mil.op_converters import register

_REDUCE = {
    "ReduceSum": (mb.reduce_sum, 13),
    "ReduceMean": (mb.reduce_mean, 18),
    "ReduceMax": (mb.reduce_max, 18),
    "ReduceMin": (mb.reduce_min, 18),
    "ReduceProd": (mb.reduce_prod, 18),
    "ReduceL1": (mb.reduce_l1_norm, 18),
    "ReduceL2": (mb.reduce_l2_norm, 18),
    "ReduceLogSum": (mb.reduce_log_sum, 18),
    "ReduceLogSumExp": (mb.reduce_log_sum_exp, 18),
    "ReduceSumSquare": (mb.reduce_sum_square, 18),
}


def _over_no_axes(op_type: str, x, name: str):
    """A reduction over an empty set of axes: the element-wise part of the op alone.

    ONNX's reference reduces over ``axes=()`` (noop_with_empty_axes=1, or a rank-0
    input), which leaves each element to itself: ReduceSumSquare gives x², ReduceL1
    |x|, ReduceL2 sqrt(x²) (so it underflows like the real reduction), ReduceLogSum
    log(x), and the others x unchanged (LogSumExp: log(exp(x - x)) + x).
    """
    if op_type == "ReduceSumSquare":
        return mb.mul(x=x, y=x, name=name)
    if op_type == "ReduceL1":
        return mb.abs(x=x, name=name)
    if op_type == "ReduceL2":
        if mil_dtype_name(x) == "int32":
            return mb.abs(x=x, name=name)  # sqrt(x²) of an integer is |x| (what ONNX's reference gives)
        return mb.sqrt(x=mb.mul(x=x, y=x), name=name)
    if op_type == "ReduceLogSum":
        return mb.log(x=x, epsilon=scalar_like(x, 0), name=name)
    return mb.identity(x=x, name=name)


def _reduce(ctx: ConversionContext, node, fn, axes_from_input_since: int) -> None:
    x = as_var(ctx.input(node, 0))
    keep = bool(attr(node, "keepdims", 1))
    axes = const_axes(ctx, node, axes_from_input_since)
    if mil_dtype_name(x) == "bool":
        raise NodeNotConvertible("reductions over bool tensors")
    if not axes:
        if attr(node, "noop_with_empty_axes", 0) and ctx.opset >= axes_from_input_since:
            ctx.output(node, 0, _over_no_axes(node.op_type, x, ctx.out_name(node)))
            return
        axes = list(range(x.rank))
    if x.rank == 0:
        ctx.output(node, 0, _over_no_axes(node.op_type, x, ctx.out_name(node)))
        return
    ctx.output(node, 0, fn(x=x, axes=axes, keep_dims=keep, name=ctx.out_name(node)))


for _op, (_fn, _since) in _REDUCE.items():
    register(_op)(lambda ctx, node, _fn=_fn, _since=_since: _reduce(ctx, node, _fn, _since))


def _arg(ctx: ConversionContext, node, fn) -> None:
    x = as_var(ctx.input(node, 0))
    axis = attr(node, "axis", 0)
    keep = bool(attr(node, "keepdims", 1))
    if attr(node, "select_last_index", 0):
        # Reverse along the axis so the first hit is the last one, then map back.
        size = x.shape[axis]
        if not isinstance(size, (int, np.integer)):
            raise NodeNotConvertible("select_last_index needs a static axis length")
        flipped = mb.reverse(x=x, axes=[axis])
        idx = fn(x=flipped, axis=axis, keep_dims=keep)
        ctx.output(node, 0, mb.sub(x=np.int32(int(size) - 1), y=idx, name=ctx.out_name(node)))
        return
    ctx.output(node, 0, fn(x=x, axis=axis, keep_dims=keep, name=ctx.out_name(node)))


register("ArgMax")(lambda ctx, node: _arg(ctx, node, mb.reduce_argmax))
register("ArgMin")(lambda ctx, node: _arg(ctx, node, mb.reduce_argmin))
