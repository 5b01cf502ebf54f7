"""Tensor manipulation: shapes, reshaping, indexing, padding, concatenation, and friends."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from interop_torch.onnx_import.context import (
    ImportContext,
    NodeNotConvertible,
    Value,
    literal,
    np_dtype,
    scalar,
    torch_dtype,
)
from interop_torch.onnx_import.ops._common import norm_axis, torch_pads
from interop_torch.onnx_import.ops.elementwise import python_level
from interop_torch.onnx_import.module_table import converter

_BIG = 1 << 31


def shape_list(ctx: ImportContext, value: Value | None, what: str) -> tuple[str, list[Any] | None]:
    """A 1-D integer operand (a shape, axes, repeats) as a Python list expression, with what is known now."""
    if value is None:
        raise NodeNotConvertible(f"its {what} is missing")
    known = ctx.ints(value)
    if known is not None:
        return literal(known), known
    if value.kind == "shape":
        return value.expr, value.elems
    return f"{ctx.t(value)}.tolist()", None


def _axes(ctx: ImportContext, node: onnx.NodeProto, input_index: int, since_input: int) -> list[int] | None:
    """Axes from the attribute (before ``since_input``) or from input ``input_index`` (a constant)."""
    if ctx.since < since_input:
        axes = ctx.attr(node, "axes")
        return None if axes is None else [int(a) for a in axes]
    value = ctx.input(node, input_index)
    return None if value is None else ctx.require_ints(value, "axes")


# ------------------------------------------------------------------ shapes


@converter("Shape", 1, 13, 15, 19, 21, 23, 24, 25)
def shape(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    start, end = int(ctx.attr(node, "start", 0)), ctx.attr(node, "end")
    if x.kind == "shape" and (x.scalar or x.elems is not None):
        dims = [] if x.scalar else [len(x.elems or [])]
        ctx.set_const(node.output[0], np.array(dims[start:end], dtype=np.int64))
        return
    static = ctx.static_shape(x)
    elems = None
    if static is not None:
        elems = [d if isinstance(d, int) else None for d in static][start:end]
        if all(e is not None for e in elems):
            ctx.set_const(node.output[0], np.array(elems, dtype=np.int64))
            return
    bounds = "" if start == 0 and end is None else f"[{start or ''}:{'' if end is None else end}]"
    ctx.emit(node.output[0], f"list({ctx.t(x)}.shape{bounds})", kind="shape", elems=elems)


@converter("Size", 1, 13, 19, 21, 23, 24, 25)
def size(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    static = ctx.static_shape(x)
    if static is not None and all(isinstance(d, int) for d in static):
        ctx.set_const(node.output[0], np.array(int(np.prod(static)), dtype=np.int64))
        return
    ctx.emit(node.output[0], f"{ctx.t(x)}.numel()", kind="shape", scalar=True)


@converter("ConstantOfShape", 9, 20, 21, 23, 24, 25)
def constant_of_shape(ctx: ImportContext, node: onnx.NodeProto) -> None:
    expr, _ = shape_list(ctx, ctx.input(node, 0), "shape")
    value = ctx.attr(node, "value")
    array = np.zeros(1, dtype=np.float32) if value is None else np.asarray(value)
    ctx.emit(node.output[0], f"torch.full({expr}, {literal(scalar(array))}, dtype={torch_dtype(array.dtype)})",
             dtype=array.dtype)


@converter("Range", 11, 27)
def range_(ctx: ImportContext, node: onnx.NodeProto) -> None:
    parts = []
    dtype = None
    for value in ctx.inputs(node):
        assert value is not None
        level = python_level(ctx, value)
        if level is not None and level[2]:
            parts.append(level[0])
        elif value.kind == "const":
            parts.append(literal(scalar(value.array)))
        else:
            parts.append(f"{ctx.t(value)}.item()")
        dtype = value.dtype if value.dtype is not None else dtype
    ctx.emit(node.output[0], f"torch.arange({', '.join(parts)}, dtype={torch_dtype(dtype)})")


# ------------------------------------------------------------------ reshaping


@converter("Reshape", 1, 5, 13, 14, 19, 21, 23, 24, 25)
def reshape(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    allowzero = ctx.since >= 14 and int(ctx.attr(node, "allowzero", 0))
    if ctx.since < 5:
        target: Value | None = None
        known: list[Any] | None = [int(d) for d in ctx.attr(node, "shape")]
        expr = literal(known)
    else:
        target = ctx.input(node, 1)
        expr, known = shape_list(ctx, target, "shape")
    if x.kind == "shape" and known is not None:
        # A Python size reshaped stays in Python: a scalar to [1] becomes a one-element list
        # (torch.onnx writes Reshape(sym_size * 4, [1]) before a Concat of sizes), a one-element
        # list to [] becomes a scalar, and a reshape that keeps the rank keeps the value.
        if x.scalar and known in ([1], [-1]):
            ctx.emit(node.output[0], f"[{x.expr}]", kind="shape", elems=[None])
            return
        if x.scalar and known == []:
            ctx.alias(node.output[0], x)
            return
        if not x.scalar and x.elems is not None and len(x.elems) == 1 and known == []:
            ctx.emit(node.output[0], f"{x.expr}[0]", kind="shape", scalar=True)
            return
        if not x.scalar and x.elems is not None and len(known) == 1 and known[0] in (-1, len(x.elems)):
            ctx.alias(node.output[0], x)
            return
    x_expr = ctx.t(x)
    static = ctx.static_shape(x)
    if known is not None:
        parts = []
        for i, d in enumerate(known):
            if d == 0 and not allowzero:
                dim = static[i] if static is not None and i < len(static) else None
                parts.append(str(dim) if isinstance(dim, int) else f"{x_expr}.shape[{i}]")
            elif d is None:
                parts.append(f"{expr}[{i}]")
            else:
                parts.append(str(d))
        ctx.emit(node.output[0], f"{x_expr}.reshape({', '.join(parts) if parts else '()'})")
        return
    if allowzero:
        ctx.emit(node.output[0], f"{x_expr}.reshape({expr})")
        return
    helper = ctx.helper("_reshape", '''
def _reshape(x, shape):
    """ONNX Reshape: a 0 in the target copies the input's size at that position."""
    return x.reshape([x.shape[i] if d == 0 else d for i, d in enumerate(shape)])
''')
    ctx.emit(node.output[0], f"{helper}({x_expr}, {expr})")


@converter("Flatten", 1, 9, 11, 13, 21, 23, 24, 25)
def flatten(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    rank = ctx.rank(x)
    axis = norm_axis(int(ctx.attr(node, "axis", 1)), rank)
    x_expr = ctx.t(x)
    if axis == 0:
        expr = f"{x_expr}.reshape(1, -1)"
    elif rank is not None and axis == rank:
        expr = f"{x_expr}.reshape(-1, 1)"
    elif axis == 1:
        expr = f"{x_expr}.flatten(1)"
    else:
        expr = f"{x_expr}.flatten({axis}).flatten(0, {axis - 1})"
    ctx.emit(node.output[0], expr)


@converter("Transpose", 1, 13, 21, 23, 24, 25)
def transpose(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    perm = ctx.attr(node, "perm")
    if perm is None:
        perm = list(reversed(range(ctx.require_rank(x))))
    perm = [int(p) for p in perm]
    if perm == sorted(perm) and x.kind != "shape":
        ctx.alias(node.output[0], x)
        return
    if x.kind == "shape":
        ctx.alias(node.output[0], x)
        return
    ctx.emit(node.output[0], f"{ctx.t(x)}.permute({', '.join(map(str, perm))})")


@converter("Squeeze", 1, 11, 13, 21, 23, 24, 25)
def squeeze(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    axes = _axes(ctx, node, 1, 13)
    if x.kind == "shape" and x.elems is not None and len(x.elems) == 1:
        ctx.emit(node.output[0], f"{x.expr}[0]", kind="shape", scalar=True)
        if x.elems[0] is not None:
            ctx.set_const(node.output[0], np.array(x.elems[0], dtype=np.int64))
        return
    x_expr = ctx.t(x)
    if axes is None:
        ctx.emit(node.output[0], f"{x_expr}.squeeze()")
    elif len(axes) == 1:
        ctx.emit(node.output[0], f"{x_expr}.squeeze({axes[0]})")
    else:
        ctx.emit(node.output[0], f"{x_expr}.squeeze({literal(tuple(axes))})")


@converter("Unsqueeze", 1, 11, 13, 21, 23, 24, 25)
def unsqueeze(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    axes = _axes(ctx, node, 1, 13)
    if axes is None:
        raise NodeNotConvertible("no axes")
    if x.kind == "shape" and x.scalar and len(axes) == 1:
        ctx.emit(node.output[0], f"[{x.expr}]", kind="shape", elems=[None])
        return
    rank = ctx.rank(x)
    out_rank = None if rank is None else rank + len(axes)
    axes = sorted(norm_axis(a, out_rank) for a in axes)
    expr = ctx.t(x)
    for axis in axes:
        expr = f"{expr}.unsqueeze({axis})"
    ctx.emit(node.output[0], expr)


@converter("Expand", 8, 13)
def expand(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    expr, known = shape_list(ctx, ctx.input(node, 1), "shape")
    x_expr = ctx.t(x)
    rank = ctx.rank(x)
    if known is not None and rank is not None and all(isinstance(d, int) for d in known):
        width = max(rank, len(known))
        target = [1] * (width - len(known)) + list(known)
        sizes = [(-1 if i >= width - rank else 1) if d == 1 else d for i, d in enumerate(target)]
        if all(s == -1 for s in sizes) and width == rank:
            ctx.alias(node.output[0], x)
            return
        ctx.emit(node.output[0], f"{x_expr}.expand({', '.join(map(str, sizes))})")
        return
    helper = ctx.helper("_expand", '''
def _expand(x, shape):
    """ONNX Expand: broadcast x and the shape against each other (either may hold the 1s)."""
    return x.expand(torch.broadcast_shapes(x.shape, tuple(shape)))
''')
    ctx.emit(node.output[0], f"{helper}({x_expr}, {expr})")


@converter("Tile", 1, 6, 13)
def tile(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    expr, known = shape_list(ctx, ctx.input(node, 1), "repeats")
    if known is not None and all(k == 1 for k in known):
        ctx.alias(node.output[0], x)
        return
    ctx.emit(node.output[0], f"{ctx.t(x)}.repeat({expr if known is None else ', '.join(map(str, known))})")


# ------------------------------------------------------------------ joining and splitting


@converter("Concat", 1, 4, 11, 13)
def concat(ctx: ImportContext, node: onnx.NodeProto) -> None:
    values = [v for v in ctx.inputs(node) if v is not None]
    axis = int(ctx.attr(node, "axis", 1 if ctx.since < 4 else 0))
    levels = [python_level(ctx, v) for v in values]
    if any(v.kind == "shape" for v in values) and all(lv is not None and not lv[2] for lv in levels):
        parts, elems = [], []
        for value, level in zip(values, levels):
            assert level is not None
            if value.kind == "const":
                parts += [literal(int(i)) for i in value.array.reshape(-1)]
            else:
                parts.append(f"*{level[0]}")
            elems += list(level[1] or [])
        ctx.emit(node.output[0], f"[{', '.join(parts)}]", kind="shape", elems=elems)
        return
    if len(values) == 1:
        ctx.alias(node.output[0], values[0])
        return
    ctx.emit(node.output[0], f"torch.cat([{', '.join(ctx.t(v) for v in values)}], dim={axis})")


@converter("Split", 1, 2, 11, 13, 18)
def split(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    axis = int(ctx.attr(node, "axis", 0))
    outputs = list(node.output)
    if ctx.since >= 13:
        sizes = None if ctx.input(node, 1) is None else ctx.require_ints(ctx.input(node, 1), "split")
    else:
        sizes = ctx.attr(node, "split")
        if ctx.since == 1 and sizes is None and ctx.input(node, 1) is not None:
            sizes = ctx.require_ints(ctx.input(node, 1), "split")
    x_expr = ctx.t(x)
    if sizes:
        ctx.emit(outputs, f"torch.split({x_expr}, {literal([int(s) for s in sizes])}, dim={axis})")
        return
    count = int(ctx.attr(node, "num_outputs", len(outputs)))
    static = ctx.static_shape(x)
    rank = ctx.rank(x)
    dim = static[norm_axis(axis, rank)] if static is not None and rank is not None else None
    if isinstance(dim, int):
        chunk = -(-dim // count)
        ctx.emit(outputs, f"torch.split({x_expr}, {chunk}, dim={axis})")
        return
    ctx.emit(outputs, f"torch.split({x_expr}, -(-{x_expr}.shape[{axis}] // {count}), dim={axis})")


SLICE_HELPER = '''
def _slice(x, starts, ends, axes, steps):
    """ONNX Slice, negative steps included (torch slices forwards only: flip, then slice)."""
    index = [slice(None)] * x.dim()
    flips = []
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = axis + x.dim() if axis < 0 else axis
        size = x.shape[axis]
        if step > 0:
            index[axis] = slice(start, end, step)
            continue
        start = min(max(start + size if start < 0 else start, 0), size - 1)
        end = min(max(end + size if end < 0 else end, -1), size - 1)
        flips.append(axis)
        index[axis] = slice(size - 1 - start, size - 1 - end, -step)
    return (x.flip(flips) if flips else x)[tuple(index)]
'''


def _start(value: int) -> str:
    """A slice start: beyond either end, Python clamps it as ONNX does ("" for "from the beginning")."""
    return "" if value == 0 or value <= -_BIG else str(value)


def _end(value: int) -> str:
    """A slice end: "" runs to the end; far below -size the slice is empty (end 0 with a forward step)."""
    return "" if value >= _BIG else ("0" if value <= -_BIG else str(value))


@converter("Slice", 1, 10, 11, 13)
def slice_(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    if ctx.since < 10:
        starts, ends = ctx.attr(node, "starts"), ctx.attr(node, "ends")
        axes, steps = ctx.attr(node, "axes"), None
        exprs = None
    else:
        values = [ctx.input(node, i) for i in range(1, 5)]
        known = [None if v is None else ctx.ints(v) for v in values]
        starts, ends, axes, steps = known
        exprs = [None if v is None else shape_list(ctx, v, "slice bounds")[0] for v in values]
        if (starts is None or ends is None) and exprs[0] is not None and exprs[1] is not None:
            if values[2] is not None and axes is None or values[3] is not None and steps is None:
                raise NodeNotConvertible("its axes and steps must be constants")
            count = len(axes) if axes is not None else ctx.require_rank(x)
            axes_expr = literal(axes if axes is not None else list(range(count)))
            steps_expr = literal(steps if steps is not None else [1] * count)
            ctx.helper("_slice", SLICE_HELPER)
            ctx.emit(node.output[0], f"_slice({ctx.t(x)}, {exprs[0]}, {exprs[1]}, {axes_expr}, {steps_expr})")
            return
    starts, ends = [int(s) for s in starts], [int(e) for e in ends]
    axes = [int(a) for a in axes] if axes is not None else list(range(len(starts)))
    steps = [int(s) for s in steps] if steps is not None else [1] * len(starts)
    if x.kind == "shape" and x.elems is not None and axes in ([0], [-1]):
        python_slice = slice(starts[0], ends[0], steps[0])
        # Python slices lists exactly as ONNX slices a 1-D tensor (clamping included, in both directions).
        bounds = f"{_start(starts[0])}:{_end(ends[0])}" if steps[0] > 0 else f"{starts[0]}:{ends[0]}"
        ctx.emit(node.output[0], f"{x.expr}[{bounds}{'' if steps[0] == 1 else ':' + str(steps[0])}]",
                 kind="shape", elems=list(x.elems)[python_slice])
        return
    if any(step < 0 for step in steps):
        ctx.helper("_slice", SLICE_HELPER)
        ctx.emit(node.output[0], f"_slice({ctx.t(x)}, {literal(starts)}, {literal(ends)}, {literal(axes)}, "
                                 f"{literal(steps)})")
        return
    rank = ctx.rank(x)
    axes = [norm_axis(a, rank) for a in axes]
    index = [":"] * (max(axes) + 1)
    for start, end, axis, step in zip(starts, ends, axes, steps):
        part = f"{_start(start)}:{_end(end)}"
        index[axis] = part + (f":{step}" if step != 1 else "")
    if all(part == ":" for part in index):
        ctx.alias(node.output[0], x)
        return
    ctx.emit(node.output[0], f"{ctx.t(x)}[{', '.join(index)}]")


# ------------------------------------------------------------------ indexing


@converter("Gather", 1, 11, 13)
def gather(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x, indices = ctx.input(node, 0), ctx.input(node, 1)
    assert x is not None and indices is not None
    axis = int(ctx.attr(node, "axis", 0))
    known = ctx.const(indices)
    if x.kind == "shape" and x.elems is not None and known is not None and axis in (0, -1):
        flat = [int(i) for i in known.reshape(-1)]
        if known.ndim == 0:
            elem = x.elems[flat[0]]
            if elem is not None:
                ctx.set_const(node.output[0], np.array(elem, dtype=np.int64))
            else:
                ctx.emit(node.output[0], f"{x.expr}[{flat[0]}]", kind="shape", scalar=True)
            return
        if known.ndim == 1:
            ctx.emit(node.output[0], "[" + ", ".join(f"{x.expr}[{i}]" for i in flat) + "]", kind="shape",
                     elems=[x.elems[i] for i in flat])
            return
    rank = ctx.rank(x)
    axis = norm_axis(axis, rank)
    if (axis == 0 and x.kind == "const" and x.role == "weight" and ctx.owns(x) and x.array.ndim == 2
            and indices.kind == "tensor"):
        layer = ctx.add_layer(f"nn.Embedding({x.array.shape[0]}, {x.array.shape[1]})",
                              {"weight": (x.array, x, True)})
        ctx.emit(node.output[0], f"self.{layer}({ctx.t(indices)})")
        return
    if known is not None and known.ndim <= 1 and known.size <= 16:
        index = literal(int(known)) if known.ndim == 0 else literal([int(i) for i in known])
    else:
        index = ctx.t(indices)
    ctx.emit(node.output[0], f"{ctx.t(x)}[{':, ' * axis}{index}]")


def _normalised_index(ctx: ImportContext, indices: Value, x_expr: str, axis: int) -> str:
    known = ctx.const(indices)
    idx = ctx.t(indices)
    if known is not None and (known >= 0).all():
        return idx
    return f"torch.where({idx} < 0, {idx} + {x_expr}.shape[{axis}], {idx})"


@converter("GatherElements", 11, 13)
def gather_elements(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x, indices = ctx.input(node, 0), ctx.input(node, 1)
    assert x is not None and indices is not None
    axis = int(ctx.attr(node, "axis", 0))
    x_expr = ctx.t(x)
    ctx.emit(node.output[0], f"torch.gather({x_expr}, {axis}, {_normalised_index(ctx, indices, x_expr, axis)})")


@converter("GatherND", 11, 12, 13)
def gather_nd(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x, indices = ctx.input(node, 0), ctx.input(node, 1)
    assert x is not None and indices is not None
    batch_dims = int(ctx.attr(node, "batch_dims", 0))
    helper = ctx.helper("_gather_nd", '''
def _gather_nd(x, indices, batch_dims):
    """ONNX GatherND: the last dim of indices addresses the leading dims of x after batch_dims."""
    depth = indices.shape[-1]
    flat = x.reshape((-1,) + tuple(x.shape[batch_dims:]))
    idx = indices.reshape(flat.shape[0], -1, depth)
    sizes = torch.tensor(flat.shape[1:depth + 1], dtype=idx.dtype)
    idx = torch.where(idx < 0, idx + sizes, idx)
    batch = torch.arange(flat.shape[0]).reshape(-1, 1).expand(idx.shape[:2])
    out = flat[(batch,) + tuple(idx[..., i] for i in range(depth))]
    return out.reshape(tuple(indices.shape[:-1]) + tuple(x.shape[batch_dims + depth:]))
''')
    ctx.emit(node.output[0], f"{helper}({ctx.t(x)}, {ctx.t(indices)}, {batch_dims})")


_SCATTER_REDUCE = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}


@converter("ScatterElements", 11, 13, 16, 18)
def scatter_elements(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x, indices, updates = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    assert x is not None and indices is not None and updates is not None
    axis = int(ctx.attr(node, "axis", 0))
    reduction = ctx.attr(node, "reduction", "none")
    x_expr = ctx.t(x)
    idx = _normalised_index(ctx, indices, x_expr, axis)
    if reduction == "none":
        ctx.emit(node.output[0], f"{x_expr}.scatter({axis}, {idx}, {ctx.t(updates)})")
        return
    ctx.emit(node.output[0], f"{x_expr}.scatter_reduce({axis}, {idx}, {ctx.t(updates)}, "
                             f"{_SCATTER_REDUCE[reduction]!r}, include_self=True)")


converter("Scatter", 9, 11)(scatter_elements)


@converter("ScatterND", 11, 13, 16, 18)
def scatter_nd(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x, indices, updates = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    assert x is not None and indices is not None and updates is not None
    reduction = ctx.attr(node, "reduction", "none")
    helper = ctx.helper("_scatter_nd", '''
def _scatter_nd(x, indices, updates, reduction):
    """ONNX ScatterND: write (or combine) updates at the positions indices address."""
    out = x.clone()
    depth = indices.shape[-1]
    idx = indices.reshape(-1, depth)
    idx = torch.where(idx < 0, idx + torch.tensor(x.shape[:depth], dtype=idx.dtype), idx)
    rows = updates.reshape((-1,) + tuple(updates.shape[indices.dim() - 1:]))
    if reduction == "none":
        out[tuple(idx.unbind(-1))] = rows
        return out
    if reduction == "add":
        return out.index_put_(tuple(idx.unbind(-1)), rows, accumulate=True)
    combine = {"mul": torch.mul, "max": torch.maximum, "min": torch.minimum}[reduction]
    for position, row in zip(idx.tolist(), rows):
        out[tuple(position)] = combine(out[tuple(position)], row)
    return out
''')
    ctx.emit(node.output[0], f"{helper}({ctx.t(x)}, {ctx.t(indices)}, {ctx.t(updates)}, {reduction!r})")


@converter("NonZero", 9, 13)
def non_zero(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    ctx.emit(node.output[0], f"torch.nonzero({ctx.t(x)}).t()")


@converter("TopK", 1, 10, 11, 24)
def top_k(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    if ctx.since < 10:
        k = str(int(ctx.attr(node, "k")))
    else:
        k_value = ctx.input(node, 1)
        known = ctx.ints(k_value)
        if known is not None:
            k = str(known[0])
        elif k_value is not None and k_value.kind == "shape":
            k = k_value.expr if k_value.scalar else f"{k_value.expr}[0]"
        else:
            k = f"int({ctx.t(k_value)})"  # type: ignore[arg-type]
    axis = int(ctx.attr(node, "axis", -1))
    largest = bool(int(ctx.attr(node, "largest", 1)))
    # ONNX orders equal values by index; torch.topk does not promise an order, a stable sort does.
    helper = ctx.helper("_top_k", '''
def _top_k(x, k, axis, largest):
    """ONNX TopK: the k largest (or smallest) along axis, equal values in index order."""
    values, indices = torch.sort(x, dim=axis, descending=largest, stable=True)
    return values.narrow(axis, 0, k), indices.narrow(axis, 0, k)
''')
    ctx.emit(list(node.output), f"{helper}({ctx.t(x)}, {k}, {axis}, {largest})")


@converter("CumSum", 11, 14)
def cum_sum(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    (axis,) = ctx.require_ints(ctx.input(node, 1), "axis")
    exclusive, reverse = int(ctx.attr(node, "exclusive", 0)), int(ctx.attr(node, "reverse", 0))
    x_expr = ctx.t(x)
    if not exclusive and not reverse:
        ctx.emit(node.output[0], f"torch.cumsum({x_expr}, dim={axis})")
        return
    helper = ctx.helper("_cumsum", '''
def _cumsum(x, axis, exclusive, reverse):
    """ONNX CumSum with exclusive (each sum leaves its own element out) and reverse (from the end)."""
    if reverse:
        x = x.flip(axis)
    y = torch.cumsum(x, dim=axis)
    if exclusive:
        y = torch.cat([torch.zeros_like(y.narrow(axis, 0, 1)), y.narrow(axis, 0, y.shape[axis] - 1)], dim=axis)
    return y.flip(axis) if reverse else y
''')
    ctx.emit(node.output[0], f"{helper}({x_expr}, {axis}, {bool(exclusive)}, {bool(reverse)})")


@converter("OneHot", 9, 11, 28)
def one_hot(ctx: ImportContext, node: onnx.NodeProto) -> None:
    indices, depth, values = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    assert indices is not None and depth is not None and values is not None
    axis = int(ctx.attr(node, "axis", -1))
    known = ctx.const(depth)
    depth_expr = literal(int(known.reshape(-1)[0])) if known is not None else f"int({ctx.t(depth)})"
    helper = ctx.helper("_one_hot", '''
def _one_hot(indices, depth, values, axis):
    """ONNX OneHot: values[1] where the (possibly negative) index points, values[0] elsewhere."""
    idx = torch.where(indices < 0, indices + depth, indices).long()
    valid = (idx >= 0) & (idx < depth)
    hot = F.one_hot(idx.clamp(0, depth - 1), depth).bool() & valid.unsqueeze(-1)
    out = torch.where(hot, values[1], values[0])
    return out if axis == -1 else out.movedim(-1, axis)
''')
    ctx.emit(node.output[0], f"{helper}({ctx.t(indices)}, {depth_expr}, {ctx.t(values)}, {axis})")


@converter("Trilu", 14)
def trilu(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x, k_value = ctx.input(node, 0), ctx.input(node, 1)
    assert x is not None
    k = 0 if k_value is None else ctx.require_ints(k_value, "k")[0]
    function = "triu" if int(ctx.attr(node, "upper", 1)) else "tril"
    ctx.emit(node.output[0], f"torch.{function}({ctx.t(x)}{'' if k == 0 else f', {k}'})")


@converter("EyeLike", 9, 22)
def eye_like(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    dtype = ctx.attr(node, "dtype")
    target = np_dtype(int(dtype)) if dtype is not None else x.dtype
    k = int(ctx.attr(node, "k", 0))
    ctx.emit(node.output[0], f"torch.ones({ctx.t(x)}.shape, dtype={torch_dtype(target)}).triu({k}).tril({k})",
             dtype=target)


# ------------------------------------------------------------------ padding and rearranging


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


@converter("Pad", 1, 2, 11, 13, 18, 19, 21, 23, 24, 25)
def pad(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    mode = ctx.attr(node, "mode", "constant")
    if mode not in _PAD_MODES:
        raise NodeNotConvertible(f"mode {mode!r}")
    rank = ctx.require_rank(x)
    if ctx.since < 11:
        pads = [int(p) for p in (ctx.attr(node, "pads") if ctx.since >= 2 else ctx.attr(node, "paddings"))]
        value = float(ctx.attr(node, "value", 0.0))
    else:
        pads = ctx.require_ints(ctx.input(node, 1), "pads")
        value_input = ctx.input(node, 2)
        known = ctx.const(value_input)
        if value_input is not None and known is None:
            raise NodeNotConvertible("its constant_value is computed at run time")
        value = 0 if known is None or known.size == 0 else scalar(known)
        axes_input = ctx.input(node, 3)
        if axes_input is not None:
            axes = [norm_axis(a, rank) for a in ctx.require_ints(axes_input, "axes")]
            full = [0] * (2 * rank)
            for i, axis in enumerate(axes):
                full[axis], full[axis + rank] = pads[i], pads[i + len(axes)]
            pads = full
    amounts = torch_pads(pads)
    while len(amounts) > 2 and amounts[-1] == 0 and amounts[-2] == 0:
        amounts = amounts[:-2]
    if not any(amounts):
        ctx.alias(node.output[0], x)
        return
    torch_mode = _PAD_MODES[mode]
    if torch_mode != "constant":
        if len(amounts) // 2 > 3 or len(amounts) // 2 > rank - 1:
            raise NodeNotConvertible(f"mode {mode!r} padding more than the last 3 dims (or the batch dim)")
        if any(a < 0 for a in amounts):
            raise NodeNotConvertible(f"negative pads in mode {mode!r}")
        ctx.emit(node.output[0], f"F.pad({ctx.t(x)}, {literal(amounts)}, mode={torch_mode!r})")
        return
    fill = "" if value == 0 else f", value={literal(value)}"
    ctx.emit(node.output[0], f"F.pad({ctx.t(x)}, {literal(amounts)}{fill})")


@converter("DepthToSpace", 1, 11, 13, 28)
def depth_to_space(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    block = int(ctx.attr(node, "blocksize"))
    if ctx.attr(node, "mode", "DCR") == "CRD":
        ctx.emit(node.output[0], f"F.pixel_shuffle({ctx.t(x)}, {block})")
        return
    helper = ctx.helper("_depth_to_space", '''
def _depth_to_space(x, block):
    """ONNX DepthToSpace in DCR order (depth, then column, then row; pixel_shuffle is CRD)."""
    n, c, h, w = x.shape
    y = x.reshape(n, block, block, c // (block * block), h, w).permute(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (block * block), h * block, w * block)
''')
    ctx.emit(node.output[0], f"{helper}({ctx.t(x)}, {block})")


@converter("SpaceToDepth", 1, 13, 28)
def space_to_depth(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    block = int(ctx.attr(node, "blocksize"))
    if ctx.attr(node, "mode", "DCR") == "CRD":
        ctx.emit(node.output[0], f"F.pixel_unshuffle({ctx.t(x)}, {block})")
        return
    helper = ctx.helper("_space_to_depth", '''
def _space_to_depth(x, block):
    """ONNX SpaceToDepth: blocks of the image become channels, block position first."""
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // block, block, w // block, block).permute(0, 3, 5, 1, 2, 4)
    return y.reshape(n, c * block * block, h // block, w // block)
''')
    ctx.emit(node.output[0], f"{helper}({ctx.t(x)}, {block})")
