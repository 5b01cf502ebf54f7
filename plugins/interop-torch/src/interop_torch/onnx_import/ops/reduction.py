"""Reductions (axes from an attribute or, in newer opsets, an input) and ArgMax/ArgMin."""

from __future__ import annotations

import numpy as np
import onnx

from interop_torch.onnx_import.context import ImportContext, Value, literal
from interop_torch.onnx_import.module_table import converter

#: op -> (the opset from which axes is an input, expression over {x}, {dims}, {keep})
_REDUCE = {
    "ReduceSum": (13, "{x}.sum(dim={dims}, keepdim={keep})"),
    "ReduceMean": (18, "{x}.mean(dim={dims}, keepdim={keep})"),
    "ReduceMax": (18, "{x}.amax(dim={dims}, keepdim={keep})"),
    "ReduceMin": (18, "{x}.amin(dim={dims}, keepdim={keep})"),
    "ReduceL1": (18, "{x}.abs().sum(dim={dims}, keepdim={keep})"),
    "ReduceL2": (18, "torch.linalg.vector_norm({x}, 2, dim={dims}, keepdim={keep})"),
    "ReduceLogSum": (18, "{x}.sum(dim={dims}, keepdim={keep}).log()"),
    "ReduceLogSumExp": (18, "torch.logsumexp({x}, dim={dims}, keepdim={keep})"),
    "ReduceSumSquare": (18, "({x} * {x}).sum(dim={dims}, keepdim={keep})"),
    "ReduceProd": (18, None),
}
#: What a reduction computes over no axis (noop_with_empty_axes=1): its element-wise part.
_OVER_NO_AXIS = {"ReduceL1": "torch.abs({x})", "ReduceL2": "torch.abs({x})", "ReduceSumSquare": "{x} * {x}",
                 "ReduceLogSum": "torch.log({x})"}
_VERSIONS = {
    "ReduceSum": (1, 11, 13), "ReduceMean": (1, 11, 13, 18), "ReduceMax": (1, 11, 12, 13, 18, 20),
    "ReduceMin": (1, 11, 12, 13, 18, 20), "ReduceL1": (1, 11, 13, 18), "ReduceL2": (1, 11, 13, 18),
    "ReduceLogSum": (1, 11, 13, 18, 28), "ReduceLogSumExp": (1, 11, 13, 18, 28), "ReduceSumSquare": (1, 11, 13, 18),
    "ReduceProd": (1, 11, 13, 18),
}


def _reduce(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    axes_from_input, template = _REDUCE[node.op_type]
    keep = bool(int(ctx.attr(node, "keepdims", 1)))
    if ctx.since >= axes_from_input:
        axes_value = ctx.input(node, 1)
        axes = None if axes_value is None else ctx.require_ints(axes_value, "axes")
        if not axes and int(ctx.attr(node, "noop_with_empty_axes", 0)):
            # A reduction over no axis: only its element-wise part remains (torch would reduce all dims).
            elementwise = _OVER_NO_AXIS.get(node.op_type)
            if elementwise is None:
                ctx.alias(node.output[0], x)
            else:
                ctx.emit(node.output[0], elementwise.format(x=ctx.t(x)))
            return
    else:
        axes = ctx.attr(node, "axes")
    if not axes:
        axes = list(range(ctx.require_rank(x)))
    if x.kind == "shape" and _reduce_shape(ctx, node, x, keep):
        return
    dims = literal(axes[0]) if len(axes) == 1 else literal(tuple(int(a) for a in axes))
    x_expr = ctx.t(x)
    if x.rank == 0:
        ctx.alias(node.output[0], x)
        return
    if template is None:  # torch.prod reduces one dim at a time
        rank = ctx.require_rank(x)
        expr = x_expr
        for axis in sorted(((a + rank) % rank for a in axes), reverse=True):
            expr = f"{expr}.prod(dim={axis}, keepdim={keep})"
        ctx.emit(node.output[0], expr)
        return
    ctx.emit(node.output[0], template.format(x=x_expr, dims=dims, keep=keep))


#: Reductions of a shape (a Python list of sizes, some symbolic), computed in Python like the shape itself.
_ON_SHAPES = {"ReduceProd": "_prod", "ReduceSum": "sum", "ReduceMax": "max", "ReduceMin": "min"}
_PROD = """
def _prod(sizes):
    product = 1
    for size in sizes:
        product = product * size
    return product
"""


def _reduce_shape(ctx: ImportContext, node: onnx.NodeProto, x: Value, keep: bool) -> bool:
    """``ReduceProd(Shape(x)[a:b])`` (tf2onnx's flattening of leading dims) stays a Python size.

    As a tensor its value would reach a Reshape through ``.tolist()``, a data-dependent size
    torch.export cannot trace. The only axis of a shape is 0, so the whole list is reduced.
    """
    function = _ON_SHAPES.get(node.op_type)
    if function is None or x.scalar or x.elems is None or (not x.elems and function in ("max", "min")):
        return False
    if function == "_prod":
        function = ctx.helper("_prod", _PROD)
    known = None
    if all(isinstance(e, int) for e in x.elems):
        known = {"_prod": int(np.prod(x.elems, dtype=np.int64)), "sum": sum(x.elems),
                 "max": max(x.elems, default=0), "min": min(x.elems, default=0)}[_ON_SHAPES[node.op_type]]
    expr = f"{function}({x.expr})"
    if keep:
        ctx.emit(node.output[0], f"[{expr}]", kind="shape", elems=[known])
    else:
        ctx.emit(node.output[0], expr, kind="shape", scalar=True)
    return True


for _op, _versions in _VERSIONS.items():
    converter(_op, *_versions)(_reduce)


def _arg(ctx: ImportContext, node: onnx.NodeProto, function: str) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    axis = int(ctx.attr(node, "axis", 0))
    keep = bool(int(ctx.attr(node, "keepdims", 1)))
    x_expr = ctx.t(x)
    if int(ctx.attr(node, "select_last_index", 0)):
        # torch returns the first of equal values; flipping finds the last one.
        ctx.emit(node.output[0], f"{x_expr}.shape[{axis}] - 1 - {x_expr}.flip({axis}).{function}(dim={axis}, "
                                 f"keepdim={keep})")
        return
    ctx.emit(node.output[0], f"{x_expr}.{function}(dim={axis}, keepdim={keep})")


@converter("ArgMax", 1, 11, 12, 13)
def arg_max(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _arg(ctx, node, "argmax")


@converter("ArgMin", 1, 11, 12, 13)
def arg_min(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _arg(ctx, node, "argmin")

