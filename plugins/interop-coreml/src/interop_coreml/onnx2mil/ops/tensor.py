"""Shape and data-movement ops: reshape, slicing, gathers, padding, casts, resizing."""

from __future__ import annotations

import onnx
import sympy
from onnx import numpy_helper

from interop_coreml.onnx2mil import high_rank, symbolic
from interop_coreml.onnx2mil.errors import NeedsStaticDims, NodeNotConvertible
from interop_coreml.onnx2mil.ops._common import (
    ONNX_TO_MIL_DTYPE, Var, as_array, as_var, attr, cast_to, common_dtype, const_axes, const_input, int_list, is_bool, mb,
    mil_dtype_name, norm_axis, np, scalar_like, shape_vector, static_shape, unify,
)
from interop_coreml.onnx2mil.op_converters import register

_INT32_MAX = 2**31 - 1


def _require_const(ctx, node, index: int, what: str) -> np.ndarray:
    value = const_input(ctx, node, index)
    if value is None:
        raise NodeNotConvertible(f"{what} (input {index}) must be a constant known at conversion time")
    return value


def _is_int(dim) -> bool:
    return isinstance(dim, (int, np.integer))


def _out(ctx, node, value, index: int = 0):
    """Bind an output, giving it the ONNX-derived name whether it is a Var or constant."""
    if isinstance(value, np.ndarray):
        ctx.output(node, index, value)
    else:
        ctx.output(node, index, mb.identity(x=value, name=ctx.out_name(node, index)) if value.op is None or value.name != ctx.out_name(node, index) else value)


@register("Identity")
def convert_identity(ctx, node):
    _out(ctx, node, as_var(ctx.input(node, 0)))


@register("Dropout")
def convert_dropout(ctx, node):
    if len(node.input) > 2 and node.input[2]:
        training = const_input(ctx, node, 2)
        if training is None or bool(training):
            raise NodeNotConvertible("Dropout in training mode is random; only inference graphs convert")
    x = as_var(ctx.input(node, 0))
    _out(ctx, node, x)
    if len(node.output) > 1 and node.output[1]:
        shape = static_shape(x)
        if shape is None:
            raise NodeNotConvertible("Dropout mask output needs a static shape")
        ctx.output(node, 1, np.ones(shape, dtype=np.bool_))


@register("Constant")
def convert_constant(ctx, node):
    attribute = node.attribute[0]
    if attribute.name == "value":
        value = numpy_helper.to_array(attribute.t)
    elif attribute.name in ("value_float", "value_int"):
        value = np.array(onnx.helper.get_attribute_value(attribute))
    elif attribute.name in ("value_floats", "value_ints"):
        value = np.array(list(onnx.helper.get_attribute_value(attribute)))
    else:
        raise NodeNotConvertible(f"Constant with {attribute.name}")
    ctx.output(node, 0, value)


@register("Cast")
def convert_cast(ctx, node):
    to = attr(node, "to")
    if to not in ONNX_TO_MIL_DTYPE:
        raise NodeNotConvertible(f"Cast to {onnx.TensorProto.DataType.Name(to)}: Core ML has no such type")
    x = as_array(ctx.input(node, 0))
    target = ONNX_TO_MIL_DTYPE[to]
    if to in (onnx.TensorProto.UINT8, onnx.TensorProto.INT8, onnx.TensorProto.UINT16, onnx.TensorProto.INT16, onnx.TensorProto.UINT32):
        raise NodeNotConvertible(f"Cast to {onnx.TensorProto.DataType.Name(to)} would need wrap-around Core ML lacks")
    truncated = _truncated_floats(ctx)
    if target in ("fp32", "fp16") and node.input[0] in truncated:
        # Cast(Cast(x, INT64), FLOAT): int64 holds whole numbers far past int32's range,
        # which Core ML's int32 stand-in would overflow; the float trunc(x) is the value.
        _out(ctx, node, cast_to(truncated[node.input[0]], target))
        return
    result = cast_to(as_var(x), target)
    if to == onnx.TensorProto.INT64 and isinstance(x, Var) and mil_dtype_name(x) in ("fp32", "fp16"):
        truncated[node.output[0]] = mb.mul(x=mb.sign(x=x), y=mb.floor(x=mb.abs(x=x)))
    _out(ctx, node, result)


def _truncated_floats(ctx) -> dict:
    """ONNX names of float→INT64 casts → trunc(x) kept in float (see convert_cast)."""
    table = getattr(ctx, "_onnx2mil_truncated_floats", None)
    if table is None:
        table = {}
        ctx._onnx2mil_truncated_floats = table
    return table


@register("CastLike", since_version=15)
def convert_cast_like(ctx, node):
    target = mil_dtype_name(ctx.input(node, 1))
    _out(ctx, node, cast_to(as_var(ctx.input(node, 0)), target))


@register("Reshape")
def convert_reshape(ctx, node):
    if ctx.opset >= 5 and _high_rank_reshape(ctx, node):
        return
    x = as_var(ctx.input(node, 0))
    if ctx.opset < 5:
        shape = np.asarray(attr(node, "shape"))
    else:
        shape = const_input(ctx, node, 1)
    allow_zero = attr(node, "allowzero", 0)
    if shape is None:
        _reshape_at_run_time(ctx, node, x, allow_zero)
        return
    if allow_zero and 0 in int_list(shape):
        raise NodeNotConvertible("Reshape to a zero-sized dim (allowzero=1): Core ML has no empty tensors")
    entries = [("dim", i) if (d == 0 and not allow_zero) else int(d) for i, d in enumerate(int_list(shape))]
    _out(ctx, node, mb.reshape(x=x, shape=shape_vector(x, entries), name=ctx.out_name(node)))


def _reshape_at_run_time(ctx, node, x, allow_zero) -> None:
    """Reshape to a shape computed in the program; its symbolic value (when tracked) gives the output
    dims, turns known entries into constants and ONNX's 0 (copy) into the input's dim."""
    runtime = cast_to(ctx.input(node, 1), "int32")
    value = ctx.shape_value(node, 1)
    if value is None or value.array.ndim != 1:
        _out(ctx, node, mb.reshape(x=x, shape=runtime, name=ctx.out_name(node)))
        return
    dims = ctx.dims
    x_dims = dims.shape(x)
    entries = value.array.tolist()
    out: list = []
    pieces: list = []
    for i, entry in enumerate(entries):
        if _is_int(entry) and entry == 0 and not allow_zero:
            if i >= len(x_dims):
                raise NodeNotConvertible(f"Reshape copies dim {i} of a rank-{len(x_dims)} tensor")
            out.append(x_dims[i])
            pieces.append(np.array([x.shape[i]], dtype=np.int32) if _is_int(x.shape[i])
                          else mb.gather(x=mb.shape(x=x), indices=np.array([i], dtype=np.int32), axis=0))
        elif _is_int(entry):
            if entry == 0 or entry < -1:
                raise NodeNotConvertible(f"Reshape to a dim of {entry}: Core ML has no empty tensors")
            out.append(None if entry == -1 else int(entry))
            pieces.append(np.array([entry], dtype=np.int32))
        else:
            if not dims.compare(">=", entry, 1):
                # Possibly 0 (ONNX: copy or empty) or -1 (infer) at run time: no static reading.
                _out(ctx, node, mb.reshape(x=x, shape=runtime, name=ctx.out_name(node)))
                return
            out.append(entry)
            pieces.append(mb.gather(x=runtime, indices=np.array([i], dtype=np.int32), axis=0))
    if None in out:
        known = sympy.Mul(*[entry for entry in out if entry is not None])
        inferred = dims.simplify(sympy.Mul(*x_dims) / known)
        out[out.index(None)] = inferred if _integer_valued(inferred) else None
    symbolic = [i for i, entry in enumerate(out) if entry is None or not _is_int(entry)]
    if len(symbolic) <= 1:
        # At most one dim unknown before run time: a constant target with -1 there.
        target = np.array([-1 if i in symbolic else int(entry) for i, entry in enumerate(out)], dtype=np.int32)
    elif all(isinstance(p, np.ndarray) for p in pieces):
        target = np.concatenate(pieces).astype(np.int32)
    else:
        target = mb.concat(values=pieces, axis=0)
    y = mb.reshape(x=x, shape=target, name=ctx.out_name(node))
    _out(ctx, node, dims.refine(y, out))


def _integer_valued(expr) -> bool:
    return _is_int(expr) or bool(getattr(expr, "is_integer", False))


@register("Flatten")
def convert_flatten(ctx, node):
    x = as_var(ctx.input(node, 0))
    axis = norm_axis(attr(node, "axis", 1), x.rank)
    dims = list(x.shape)
    outer, inner = dims[:axis], dims[axis:]
    static = lambda ds: all(isinstance(d, (int, np.integer)) for d in ds)  # noqa: E731
    if static(inner):
        target = np.array([-1, int(np.prod(inner))], dtype=np.int32)
    elif static(outer):
        target = np.array([int(np.prod(outer)), -1], dtype=np.int32)
    else:
        runtime = mb.shape(x=x)
        head = mb.reduce_prod(x=mb.slice_by_index(x=runtime, begin=[0], end=[axis]), axes=[0], keep_dims=True)
        target = mb.concat(values=[head, np.array([-1], dtype=np.int32)], axis=0)
    _out(ctx, node, mb.reshape(x=x, shape=target, name=ctx.out_name(node)))


def _sizes(x) -> list:
    """Each dim of ``x`` as a 1-element int32 value: a constant when static, else read from its shape."""
    runtime = None
    sizes = []
    for i, dim in enumerate(x.shape):
        if _is_int(dim):
            sizes.append(np.array([int(dim)], dtype=np.int32))
        else:
            runtime = mb.shape(x=x) if runtime is None else runtime
            sizes.append(mb.gather(x=runtime, indices=np.array([i], dtype=np.int32), axis=0))
    return sizes


def _logical(ctx, value) -> tuple:
    """(data, dims, sizes) of a tensor of any rank (HighRank or a Var)."""
    if isinstance(value, high_rank.HighRank):
        return value.data, list(value.dims), list(value.sizes)
    value = as_var(value)
    return value, ctx.dims.shape(value), _sizes(value)


def _bind_any_rank(ctx, node, data, dims: list, sizes: list) -> None:
    """Bind a tensor given by its logical dims: a HighRank above rank 5, else a reshaped Var."""
    if len(dims) > high_rank.MAX_RANK:
        ctx.output(node, 0, high_rank.HighRank(data, dims, sizes, f"{node.op_type} {node.name or node.output[0]!r}"))
        return
    target = high_rank.shape_vector(mb, sizes) if dims else np.zeros(0, dtype=np.int32)
    y = mb.reshape(x=data, shape=target, name=ctx.out_name(node))
    _out(ctx, node, ctx.dims.refine(y, dims))


def _high_rank_reshape(ctx, node) -> bool:
    """Reshape from or to rank > 5 (window partitioning); False when neither side is (the usual path)."""
    x = ctx.input_any(node, 0)
    target = ctx.input(node, 1)
    length = np.size(target) if isinstance(target, np.ndarray) else target.shape[0]
    if not isinstance(x, high_rank.HighRank) and not (_is_int(length) and int(length) > high_rank.MAX_RANK):
        return False
    value = ctx.shape_value(node, 1)
    if value is None or value.array.ndim != 1:
        raise NodeNotConvertible(f"Reshape to rank {length} with a target not known even symbolically")
    allow_zero = attr(node, "allowzero", 0)
    data, in_dims, in_sizes = _logical(ctx, x)
    runtime = None if isinstance(target, np.ndarray) else cast_to(target, "int32")
    dims, sizes = [], []
    for i, entry in enumerate(value.array.tolist()):
        if _is_int(entry) and entry == 0 and not allow_zero:
            dims.append(in_dims[i])
            sizes.append(in_sizes[i])
        elif _is_int(entry) and entry == -1:
            dims.append(None)
            sizes.append(None)
        elif _is_int(entry):
            if entry <= 0:
                raise NodeNotConvertible(f"Reshape to a dim of {entry}: Core ML has no empty tensors")
            dims.append(int(entry))
            sizes.append(np.array([entry], dtype=np.int32))
        else:
            dims.append(entry)
            sizes.append(mb.gather(x=runtime, indices=np.array([i], dtype=np.int32), axis=0))
    if None in dims:
        index = dims.index(None)
        known = [d for d in dims if d is not None]
        dims[index] = ctx.dims.simplify(sympy.Mul(*in_dims) / sympy.Mul(*known))
        total, rest = high_rank.product(mb, in_sizes), high_rank.product(mb, [s for s in sizes if s is not None])
        sizes[index] = (total // rest).astype(np.int32) if isinstance(total, np.ndarray) and isinstance(rest, np.ndarray) \
            else mb.floor_div(x=as_var(total), y=rest)
    _bind_any_rank(ctx, node, data, dims, sizes)
    return True


@register("Transpose")
def convert_transpose(ctx, node):
    x = ctx.input_any(node, 0)
    if isinstance(x, high_rank.HighRank):
        perm = list(attr(node, "perm") or reversed(range(x.rank)))
        ctx.output(node, 0, high_rank.transpose(x, [norm_axis(p, x.rank) for p in perm], mb, ctx.dims,
                                                ctx.out_name(node)))
        return
    x = as_var(x)
    perm = attr(node, "perm") or list(reversed(range(x.rank)))
    _out(ctx, node, mb.transpose(x=x, perm=list(perm), name=ctx.out_name(node)))


@register("ReverseSequence", since_version=10)
def convert_reverse_sequence(ctx, node):
    """Reverse the first sequence_lens[b] steps of each batch entry (what tf2onnx writes for Keras
    go_backwards layers); MIL's reverse_sequence is the same operation with int32 lengths."""
    x = as_var(ctx.input(node, 0))
    lengths = cast_to(ctx.input(node, 1), "int32")
    batch_axis, time_axis = int(attr(node, "batch_axis", 1)), int(attr(node, "time_axis", 0))
    _out(ctx, node, mb.reverse_sequence(x=x, lengths=lengths, seq_axis=time_axis, batch_axis=batch_axis,
                                        name=ctx.out_name(node)))


@register("Concat")
def convert_concat(ctx, node):
    values = [ctx.input(node, i) for i in range(len(node.input)) if node.input[i]]
    values = [v for v in values if not (isinstance(v, np.ndarray) and v.size == 0)] or values[:1]
    dtype = common_dtype(*values)
    values = [cast_to(v, dtype) for v in values]
    rank = len(values[0].shape)
    axis = norm_axis(attr(node, "axis"), rank)
    if len(values) == 1:
        _out(ctx, node, as_var(values[0]))
        return
    _out(ctx, node, mb.concat(values=values, axis=axis, name=ctx.out_name(node)))


@register("Split")
def convert_split(ctx, node):
    x = as_var(ctx.input(node, 0))
    axis = norm_axis(attr(node, "axis", 0), x.rank)
    count = len(node.output)
    if ctx.opset >= 13:
        sizes = const_input(ctx, node, 1)
        if sizes is None and len(node.input) > 1 and node.input[1]:
            raise NodeNotConvertible("Split sizes must be constant")
        if sizes is not None and np.asarray(sizes).size == 0:
            sizes = None
    else:
        sizes = attr(node, "split")
    count = attr(node, "num_outputs", count) if sizes is None else count
    names = [ctx.out_name(node, i) for i in range(len(node.output))]
    dim = x.shape[axis]
    if sizes is None:
        if not _is_int(dim):
            _split_at_run_time(ctx, node, x, axis, count, names)
            return
        # ONNX (and its reference) cut ceil(dim / n) per chunk; the last one is smaller.
        chunk = -(-int(dim) // count)
        sizes = [max(min(chunk, int(dim) - i * chunk), 0) for i in range(count)]
    sizes = int_list(sizes)
    if any(s <= 0 for s in sizes):
        raise NodeNotConvertible(f"Split into an empty part (sizes {sizes}): Core ML has no empty tensors")
    if len(sizes) == 1:
        parts = [x]
    else:
        parts = mb.split(x=x, split_sizes=np.array(sizes, dtype=np.int32), axis=axis, name=names[0] + "_split")
    parts = parts if isinstance(parts, (list, tuple)) else [parts]
    for i, part in enumerate(parts):
        if i < len(node.output) and node.output[i]:
            ctx.output(node, i, mb.identity(x=part, name=names[i]))


def _split_at_run_time(ctx, node, x, axis, count, names):
    """Split a dynamic axis into ``count`` chunks of ceil(dim / count), computed in the program."""
    rank = x.rank
    size = mb.gather(x=mb.shape(x=x), indices=np.array([axis], dtype=np.int32), axis=0)
    chunk = mb.floor_div(x=mb.add(x=size, y=np.int32(count - 1)), y=np.int32(count))
    mask = [i != axis for i in range(rank)]
    zeros = np.zeros(rank, dtype=np.int32)
    for i in range(count):
        if not (i < len(node.output) and node.output[i]):
            continue
        start = mb.minimum(x=mb.mul(x=chunk, y=np.int32(i)), y=size)
        stop = mb.minimum(x=mb.mul(x=chunk, y=np.int32(i + 1)), y=size)
        begin = mb.concat(values=[p for p in (zeros[:axis], start, zeros[axis + 1:]) if np.size(p)], axis=0)
        end = mb.concat(values=[p for p in (zeros[:axis], stop, zeros[axis + 1:]) if np.size(p)], axis=0)
        ctx.output(node, i, mb.slice_by_index(x=x, begin=begin, end=end, begin_mask=mask, end_mask=mask, name=names[i]))


def _onnx_slice_bounds(start: int, stop: int, step: int, dim: int) -> tuple[int, int]:
    """ONNX's clamping of one axis' start and end (op_slice): negative values count from
    the end, then step > 0 clamps both to [0, dim], step < 0 clamps start to
    [0, dim - 1] and end to [-1, dim - 1] (-1: run through index 0)."""
    if start < 0:
        start += dim
    if stop < 0:
        stop += dim
    if step > 0:
        return min(max(start, 0), dim), min(max(stop, 0), dim)
    return min(max(start, 0), dim - 1), min(max(stop, -1), dim - 1)


def _runtime_bound(value, dim, low_offset: int, high_offset: int):
    """ONNX's clamping of a run-time bound (1-element int32 Var or array) against a run-time dim:
    add dim when negative, then clamp to [low_offset, dim + high_offset]."""
    value = as_var(value) if not isinstance(value, np.ndarray) else value
    # Clip first so adding dim cannot overflow int32 (INT64_MAX arrives as INT32_MAX).
    value = mb.maximum(x=mb.minimum(x=value, y=mb.add(x=dim, y=np.int32(1))),
                       y=mb.sub(x=np.int32(-1), y=dim))
    value = mb.select(cond=mb.less(x=value, y=np.int32(0)), a=mb.add(x=value, y=dim), b=value)
    return mb.maximum(x=mb.minimum(x=value, y=mb.add(x=dim, y=np.int32(high_offset))), y=np.int32(low_offset))


@register("Slice")
def convert_slice(ctx, node):
    x = as_var(ctx.input(node, 0))
    rank = x.rank
    if ctx.opset < 10:
        starts, ends, axes, steps = attr(node, "starts"), attr(node, "ends"), attr(node, "axes"), None
        count = len(starts)
    else:
        starts, ends = ctx.input(node, 1), ctx.input(node, 2)
        axes, steps = const_input(ctx, node, 3), const_input(ctx, node, 4)
        for i, value in ((3, axes), (4, steps)):
            if value is None and len(node.input) > i and node.input[i]:
                raise NodeNotConvertible("Slice axes and steps must be constants")
        starts, ends = const_input(ctx, node, 1, starts), const_input(ctx, node, 2, ends)
        count = int(np.asarray(starts).size) if isinstance(starts, np.ndarray) else starts.shape[0]
        if not _is_int(count):
            raise NodeNotConvertible("Slice starts of unknown length")
    axes = [norm_axis(a, rank) for a in int_list(axes)] if axes is not None else list(range(count))
    steps = int_list(steps) if steps is not None else [1] * count
    if any(step == 0 for step in steps):
        raise NodeNotConvertible("Slice step 0")
    steps = [max(min(step, _INT32_MAX), -_INT32_MAX) for step in steps]
    static_bounds = not isinstance(starts, Var) and not isinstance(ends, Var)
    begin = [np.array([0], dtype=np.int32)] * rank
    end = [np.array([0], dtype=np.int32)] * rank
    stride = [1] * rank
    begin_mask, end_mask = [True] * rank, [True] * rank
    reversed_axes = []
    runtime_shape = None
    for i, (axis, step) in enumerate(zip(axes, steps)):
        dim = x.shape[axis]
        if static_bounds and _is_int(dim):
            start, stop = (int_list(starts)[i], int_list(ends)[i])
            b, e = _onnx_slice_bounds(start, stop, step, int(dim))
            begin[axis], begin_mask[axis], stride[axis] = np.array([b], dtype=np.int32), False, step
            if step < 0 and e < 0:
                end_mask[axis] = True  # run through index 0
            else:
                end[axis], end_mask[axis] = np.array([e], dtype=np.int32), False
            continue
        # Bounds or dim known only at run time: clamp in the program, as ONNX does.
        if runtime_shape is None:
            runtime_shape = mb.shape(x=x)
        size = mb.gather(x=runtime_shape, indices=np.array([axis], dtype=np.int32), axis=0)
        pick = lambda v: (np.asarray(int_list(v)[i:i + 1], dtype=np.int32) if isinstance(v, np.ndarray)  # noqa: E731
                          else mb.gather(x=cast_to(v, "int32"), indices=np.array([i], dtype=np.int32), axis=0))
        if step > 0:
            b = _runtime_bound(pick(starts), size, 0, 0)
            e = _runtime_bound(pick(ends), size, 0, 0)
            stride[axis] = step
        else:
            b = _runtime_bound(pick(starts), size, 0, -1)
            e = _runtime_bound(pick(ends), size, -1, -1)
            # On the reversed axis index j is dim - 1 - j: the same elements, a positive step,
            # and bounds in [0, dim], so no negative end has to mean "through index 0".
            last = mb.sub(x=size, y=np.int32(1))
            b, e = mb.sub(x=last, y=b), mb.sub(x=last, y=e)
            reversed_axes.append(axis)
            stride[axis] = -step
        begin[axis], end[axis] = b, e
        begin_mask[axis], end_mask[axis] = False, False
    if reversed_axes:
        x = mb.reverse(x=x, axes=reversed_axes)
    if all(isinstance(v, np.ndarray) for v in begin + end):
        begin_vec = np.concatenate(begin).astype(np.int32)
        end_vec = np.concatenate(end).astype(np.int32)
    else:
        begin_vec = mb.concat(values=begin, axis=0)
        end_vec = mb.concat(values=end, axis=0)
    y = mb.slice_by_index(x=x, begin=begin_vec, end=end_vec, stride=np.array(stride, dtype=np.int32),
                          begin_mask=begin_mask, end_mask=end_mask, name=ctx.out_name(node))
    if runtime_shape is not None and ctx.opset >= 10:
        _refine_slice(ctx, node, x, y, axes, steps)
    _out(ctx, node, y)


def _refine_slice(ctx, node, x, y, axes, steps) -> None:
    """Output dims of a slice whose bounds or dims are known only symbolically."""
    starts, ends = ctx.shape_value(node, 1), ctx.shape_value(node, 2)
    if starts is None or ends is None:
        return
    out = ctx.dims.shape(x)
    for i, (axis, step) in enumerate(zip(axes, steps)):
        length = symbolic.slice_length(ctx.dims, out[axis], starts.array.reshape(-1)[i], ends.array.reshape(-1)[i], step)
        out[axis] = length
    ctx.dims.refine(y, out)


def _normalized_indices(indices, dim):
    if isinstance(indices, np.ndarray) and isinstance(dim, (int, np.integer)):
        return np.where(indices < 0, indices + int(dim), indices).astype(np.int32)
    return indices


def _check_index_range(op_type: str, indices, sizes) -> None:
    """Constant ``indices`` whose last axis holds one coordinate per entry of ``sizes`` (the data dims
    they index) must lie in [-size, size): onnxruntime fails on any other at run time, and the
    interpreter would too, so the model is refused instead."""
    if not isinstance(indices, np.ndarray) or indices.size == 0:
        return
    for column, size in zip(range(indices.shape[-1]), sizes):
        if not _is_int(size):
            continue
        values = indices[..., column]
        bad = values[(values < -int(size)) | (values >= int(size))]
        if bad.size:
            raise NodeNotConvertible(f"{op_type} index {int(bad.flat[0])} is out of range for a dim of size {int(size)}")


@register("Gather")
def convert_gather(ctx, node):
    x = ctx.input(node, 0)
    x = as_var(x)
    axis = norm_axis(attr(node, "axis", 0), x.rank)
    _check_index_range("Gather", _index_column(ctx.input(node, 1)), [x.shape[axis]])
    indices = _normalized_indices(ctx.input(node, 1), x.shape[axis])
    index_rank = np.ndim(indices) if isinstance(indices, np.ndarray) else indices.rank
    if x.rank + index_rank - 1 > high_rank.MAX_RANK and not is_bool(x):
        _gather_to_high_rank(ctx, node, x, indices, axis)
        return
    if is_bool(x):  # MIL's gather takes numbers only (a Keras mask read per time step)
        _out(ctx, node, cast_to(mb.gather(x=cast_to(x, "int32"), indices=indices, axis=axis), "bool",
                                name=ctx.out_name(node)))
        return
    _out(ctx, node, mb.gather(x=x, indices=indices, axis=axis, name=ctx.out_name(node)))


def _gather_to_high_rank(ctx, node, x, indices, axis: int) -> None:
    """A Gather whose output has rank > 5 (torch.onnx's im2col for nn.Unfold: ConvBERT's span convolution).

    The indices are gathered flattened, which gives the same elements in the same row-major order
    in a tensor of x's rank; the output is that tensor with its logical dims (a HighRank), for the
    Transpose/Reshape that follow to bring back to rank <= 5.
    """
    if isinstance(indices, np.ndarray):
        index_dims = [int(d) for d in indices.shape]
        index_sizes = [np.array([d], dtype=np.int32) for d in index_dims]
        flat = indices.reshape(-1)
    else:
        _, index_dims, index_sizes = _logical(ctx, indices)
        flat = mb.reshape(x=indices, shape=np.array([-1], dtype=np.int32))
    data = mb.gather(x=x, indices=flat, axis=axis)
    _, x_dims, x_sizes = _logical(ctx, x)
    _bind_any_rank(ctx, node, data, x_dims[:axis] + index_dims + x_dims[axis + 1:],
                   x_sizes[:axis] + index_sizes + x_sizes[axis + 1:])


@register("GatherElements", since_version=11)
def convert_gather_elements(ctx, node):
    x = as_var(ctx.input(node, 0))
    axis = norm_axis(attr(node, "axis", 0), x.rank)
    indices = as_array(ctx.input(node, 1))
    _check_index_range("GatherElements", _index_column(indices), [x.shape[axis]])
    # ONNX lets indices be shorter than data on the other axes (only those leading
    # elements are read); MIL wants them equal, so cut data down to the indices.
    x = _crop_to(x, indices, skip_axis=axis)
    indices = _normalized_indices(indices, x.shape[axis])
    _out(ctx, node, mb.gather_along_axis(x=x, indices=indices, axis=axis, name=ctx.out_name(node)))


def _index_column(indices):
    """Constant indices with a trailing axis of one coordinate (what ``_check_index_range`` reads)."""
    return indices[..., None] if isinstance(indices, np.ndarray) else indices


def _crop_to(x, like, skip_axis: int):
    """``x`` sliced to ``like``'s length on every axis but ``skip_axis`` (ends from the run-time shape if needed)."""
    rank = x.rank
    like_shape = tuple(np.shape(like)) if isinstance(like, np.ndarray) else tuple(like.shape)
    if len(like_shape) != rank:
        raise NodeNotConvertible(f"indices of rank {len(like_shape)} for data of rank {rank}")
    if all(i == skip_axis or x.shape[i] == like_shape[i] for i in range(rank)):
        return x
    end_mask = [i == skip_axis for i in range(rank)]
    if all(_is_int(d) or i == skip_axis for i, d in enumerate(like_shape)):
        end = np.array([int(d) if i != skip_axis else 0 for i, d in enumerate(like_shape)], dtype=np.int32)
    else:
        end = mb.shape(x=like)
    return mb.slice_by_index(x=x, begin=np.zeros(rank, dtype=np.int32), end=end, end_mask=end_mask)


@register("GatherND", since_version=11)
def convert_gather_nd(ctx, node):
    if attr(node, "batch_dims", 0):
        raise NodeNotConvertible("GatherND with batch_dims > 0")
    x = as_var(ctx.input(node, 0))
    _check_index_range("GatherND", ctx.input(node, 1), x.shape)
    if mil_dtype_name(x) == "bool":
        # MIL gathers numbers only: gather the mask as int32 and compare back.
        picked = mb.gather_nd(x=mb.cast(x=x, dtype="int32"), indices=ctx.input(node, 1))
        _out(ctx, node, mb.not_equal(x=picked, y=np.int32(0), name=ctx.out_name(node)))
        return
    _out(ctx, node, mb.gather_nd(x=x, indices=ctx.input(node, 1), name=ctx.out_name(node)))


@register("Squeeze")
def convert_squeeze(ctx, node):
    x = ctx.input_any(node, 0)
    axes = const_axes(ctx, node, 13)
    if isinstance(x, high_rank.HighRank):
        if not axes:
            raise NodeNotConvertible(f"Squeeze without axes of a rank-{x.rank} tensor")
        data, dims, sizes = _logical(ctx, x)
        drop = {norm_axis(a, x.rank) for a in axes}
        if any(_is_int(x.dims[a]) and x.dims[a] != 1 for a in drop):
            raise NodeNotConvertible(f"Squeeze of axes {sorted(drop)} of dims {x.dims}: a squeezed dim must be 1")
        _bind_any_rank(ctx, node, data, [d for i, d in enumerate(dims) if i not in drop],
                       [s for i, s in enumerate(sizes) if i not in drop])
        return
    x = as_var(x)
    if axes is None:
        if not all(_is_int(d) for d in x.shape):
            # ONNX drops every dim that is 1 at run time: the output rank is not known here.
            raise NodeNotConvertible("Squeeze without axes of a tensor with dynamic dims")
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    if not axes:
        _out(ctx, node, x)
        return
    axes = [norm_axis(a, x.rank) for a in axes]
    if any(not _is_int(d) for d in x.shape):
        # coremltools' squeeze drops only dims it knows to be 1 and keeps a symbolic one in the
        # declared type (rank too high for everything downstream). And a dim the translator worked
        # out to be 1 (x[-1:] of a dynamic axis, symbolic.py) is a symbol again to a reader of the
        # saved program, which infers every op's type anew without the symbolic bounds: its squeeze
        # keeps the axis and coremltools' loader refuses the program. A reshape to the remaining
        # dims (ONNX requires a squeezed dim to be 1) gives every reader the same type.
        target = shape_vector(x, [("dim", i) for i in range(x.rank) if i not in axes])
        _out(ctx, node, mb.reshape(x=x, shape=target, name=ctx.out_name(node)))
        return
    _out(ctx, node, mb.squeeze(x=x, axes=axes, name=ctx.out_name(node)))


@register("Unsqueeze")
def convert_unsqueeze(ctx, node):
    x = ctx.input_any(node, 0)
    axes = const_axes(ctx, node, 13)
    out_rank = (x.rank if hasattr(x, "rank") else np.ndim(x)) + len(axes)  # x may be a numpy constant
    if isinstance(x, high_rank.HighRank) or out_rank > high_rank.MAX_RANK:
        data, dims, sizes = _logical(ctx, x)
        for axis in sorted(norm_axis(a, out_rank) for a in axes):
            dims.insert(axis, 1)
            sizes.insert(axis, np.array([1], dtype=np.int32))
        _bind_any_rank(ctx, node, data, dims, sizes)
        return
    x = as_var(x)
    _out(ctx, node, mb.expand_dims(x=x, axes=sorted(norm_axis(a, out_rank) for a in axes), name=ctx.out_name(node)))


@register("Expand", since_version=8)
def convert_expand(ctx, node):
    x = as_var(ctx.input(node, 0))
    shape = const_input(ctx, node, 1)
    dtype = mil_dtype_name(x)
    if shape is not None:
        ones = np.ones(int_list(shape), dtype=_NUMPY_TYPES[dtype])
    else:
        # A shape computed in the program: ones of that shape, and the output dims from its value.
        value = ctx.shape_value(node, 1)
        out = symbolic.broadcast(ctx.dims, ctx.dims.shape(x), value.array.tolist()) if value is not None else None
        if out is not None and out == ctx.dims.shape(x):
            _out(ctx, node, x)  # the shape adds nothing: x already has it
            return
        one = np.array(True) if dtype == "bool" else np.array(1, dtype=_NUMPY_TYPES[dtype])
        ones = mb.fill(shape=cast_to(ctx.input(node, 1), "int32"), value=one)
        if value is not None:
            ctx.dims.refine(ones, value.array.tolist())
    # Broadcasting against ones of the target shape gives exactly Expand's result.
    combine = mb.logical_and if dtype == "bool" else mb.mul
    y = combine(x=x, y=ones, name=ctx.out_name(node))
    if shape is None and out is not None:
        ctx.dims.refine(y, out)
    _out(ctx, node, y)


@register("Tile")
def convert_tile(ctx, node):
    x = as_var(ctx.input(node, 0))
    reps = const_input(ctx, node, 1)
    if reps is not None:
        _out(ctx, node, mb.tile(x=x, reps=np.array(int_list(reps), dtype=np.int32), name=ctx.out_name(node)))
        return
    y = mb.tile(x=x, reps=cast_to(ctx.input(node, 1), "int32"), name=ctx.out_name(node))
    value = ctx.shape_value(node, 1)
    if value is not None and value.array.ndim == 1 and len(value.array) == x.rank:
        ctx.dims.refine(y, [d * r for d, r in zip(ctx.dims.shape(x), value.array.tolist())])
    _out(ctx, node, y)


@register("Pad")
def convert_pad(ctx, node):
    x = as_var(ctx.input(node, 0))
    if ctx.opset < 11:
        pads, value = int_list(attr(node, "pads") or attr(node, "paddings")), attr(node, "value", 0.0)
        axes = None
    else:
        if const_input(ctx, node, 1) is None:
            _pad_at_run_time(ctx, node, x)
            return
        pads = int_list(_require_const(ctx, node, 1, "Pad pads"))
        value = const_input(ctx, node, 2, np.array(0))
        value = float(np.asarray(value).reshape(-1)[0]) if np.asarray(value).size else 0.0
        axes = const_input(ctx, node, 3)
    mode = attr(node, "mode", "constant")
    rank = x.rank
    axes = list(range(rank)) if axes is None else [norm_axis(a, rank) for a in int_list(axes)]
    n = len(axes)
    per_axis = [[0, 0] for _ in range(rank)]
    for i, axis in enumerate(axes):
        per_axis[axis] = [pads[i], pads[i + n]]
    crops = [[max(-b, 0), max(-e, 0)] for b, e in per_axis]
    if any(c for pair in crops for c in pair):
        if mode != "constant":
            raise NodeNotConvertible(f"negative pads (cropping) in Pad mode {mode!r}")
        # A negative pad removes that many elements; with constant padding the order does not matter.
        x = mb.slice_by_index(x=x, begin=np.array([b for b, _ in crops], dtype=np.int32),
                              end=np.array([-e for _, e in crops], dtype=np.int32),
                              end_mask=[e == 0 for _, e in crops])
        per_axis = [[max(b, 0), max(e, 0)] for b, e in per_axis]
        if not any(p for pair in per_axis for p in pair):
            _out(ctx, node, x)
            return
    mil_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}.get(mode)
    if mil_mode is None:
        raise NodeNotConvertible(f"Pad mode {mode!r}")
    if mil_mode != "constant" and mil_dtype_name(x) not in ("fp32", "fp16"):
        raise NodeNotConvertible(f"Pad mode {mode!r} on integer tensors: Core ML pads floats only in that mode")
    if mil_mode != "constant" and any(p for pair in per_axis[: max(rank - 2, 0)] for p in pair):
        _out(ctx, node, _pad_axis_by_axis(x, per_axis, mil_mode))
        return
    flat = [p for pair in per_axis for p in pair]
    if mil_mode != "constant":
        flat = flat[-4:] if rank >= 2 else flat
    # constant_val also in the other modes, which ignore it: MIL's default is float32, rejected beside float16
    _out(ctx, node, mb.pad(x=x, pad=np.array(flat, dtype=np.int32), mode=mil_mode, name=ctx.out_name(node),
                           constant_val=scalar_like(x, value if mil_mode == "constant" else 0)))


def _pad_at_run_time(ctx, node, x) -> None:
    """Constant padding by amounts computed in the program (torchvision's Swin pads H and W up to
    whole windows). MIL takes per-axis (begin, end) pairs where ONNX lists all begins, then all ends;
    the amounts must be known not to be negative (a negative pad crops)."""
    if attr(node, "mode", "constant") != "constant":
        raise NodeNotConvertible(f"Pad mode {attr(node, 'mode')!r} needs pads (input 1) that are a constant "
                                 "known at conversion time")
    rank = x.rank
    axes = const_input(ctx, node, 3)
    if axes is None and len(node.input) > 3 and node.input[3]:
        raise NodeNotConvertible("Pad axes must be a constant")
    axes = list(range(rank)) if axes is None else [norm_axis(a, rank) for a in int_list(axes)]
    amounts = ctx.shape_value(node, 1)
    if amounts is None or any(not ctx.dims.compare(">=", v, 0) for v in amounts.array.reshape(-1).tolist()):
        raise NodeNotConvertible("Pad pads (input 1) computed at run time must be known to be >= 0 (a negative "
                                 "pad crops, which Core ML's pad cannot do), else a constant known at conversion time")
    pads = cast_to(ctx.input(node, 1), "int32")
    n = len(axes)
    zero = np.zeros(1, dtype=np.int32)
    pieces = []
    for axis in range(rank):
        if axis in axes:
            i = axes.index(axis)
            pieces.append(mb.gather(x=pads, indices=np.array([i, i + n], dtype=np.int32), axis=0))
        else:
            pieces.extend([zero, zero])
    value = const_input(ctx, node, 2, np.array(0))
    value = np.asarray(value).reshape(-1)[:1].astype(_NUMPY_TYPES[mil_dtype_name(x)])
    y = mb.pad(x=x, pad=mb.concat(values=pieces, axis=0), mode="constant",
               constant_val=value.reshape(()) if value.size else _NUMPY_TYPES[mil_dtype_name(x)](0),
               name=ctx.out_name(node))
    flat = amounts.array.reshape(-1).tolist()
    out = ctx.dims.shape(x)
    for i, axis in enumerate(axes):
        out[axis] = out[axis] + flat[i] + flat[i + n]
    _out(ctx, node, ctx.dims.refine(y, out))


def _pad_axis_by_axis(x, per_axis: list, mil_mode: str):
    """Reflect/edge padding of any axes: Core ML pads only the last two, and both modes
    are separable, so move each padded axis last, pad it there, and move it back."""
    rank = x.rank
    for axis, (begin, end) in enumerate(per_axis):
        if not (begin or end):
            continue
        perm = [i for i in range(rank) if i != axis] + [axis]
        inverse = list(np.argsort(perm))
        moved = mb.transpose(x=x, perm=perm) if axis != rank - 1 else x
        pad = np.array([0, 0, begin, end] if rank >= 2 else [begin, end], dtype=np.int32)
        padded = mb.pad(x=moved, pad=pad, mode=mil_mode, constant_val=scalar_like(x, 0))
        x = mb.transpose(x=padded, perm=[int(i) for i in inverse]) if axis != rank - 1 else padded
    return x


@register("Shape")
def convert_shape(ctx, node):
    x = ctx.input_any(node, 0)
    if isinstance(x, high_rank.HighRank):
        start, end = attr(node, "start", 0), attr(node, "end")
        picked = x.sizes[slice(start, end)]
        _out(ctx, node, as_var(high_rank.shape_vector(mb, picked)) if picked else np.zeros(0, dtype=np.int64))
        return
    x = as_var(x)
    shape = mb.shape(x=x)
    start, end = attr(node, "start", 0), attr(node, "end")
    if start != 0 or end is not None:
        rank = x.rank
        start = max(min(norm_axis(start, rank), rank), 0)
        end = rank if end is None else max(min(norm_axis(end, rank), rank), 0)
        shape = mb.slice_by_index(x=shape, begin=[start], end=[end])
    _out(ctx, node, shape)


@register("Size")
def convert_size(ctx, node):
    x = as_var(ctx.input(node, 0))
    _out(ctx, node, mb.reduce_prod(x=mb.shape(x=x), axes=[0], keep_dims=False))


@register("ConstantOfShape", since_version=9)
def convert_constant_of_shape(ctx, node):
    value_attr = attr(node, "value")
    fill = numpy_helper.to_array(value_attr).reshape(-1)[0] if value_attr is not None else np.float32(0)
    shape = const_input(ctx, node, 0)
    if shape is not None:
        ctx.output(node, 0, np.full(int_list(shape), fill))
        return
    fill = np.asarray(fill)
    fill = fill.astype(np.float32) if fill.dtype.kind == "f" else fill.astype(np.int32) if fill.dtype != np.bool_ else fill
    y = mb.fill(shape=cast_to(ctx.input(node, 0), "int32"), value=fill, name=ctx.out_name(node))
    value = ctx.shape_value(node, 0)
    if value is not None and value.array.ndim == 1:
        ctx.dims.refine(y, value.array.tolist())
    _out(ctx, node, y)


@register("Range", since_version=11)
def convert_range(ctx, node):
    start, limit, delta = (ctx.input(node, i) for i in range(3))
    start, limit = unify(start, limit)
    start, delta = unify(start, delta)
    limit, delta = unify(limit, delta)
    y = mb.range_1d(start=start, end=limit, step=delta, name=ctx.out_name(node))
    values = [ctx.shape_value(node, i) for i in range(3)]
    if all(v is not None and v.array.size == 1 for v in values):
        ends = [v.array.reshape(-1)[0] for v in values]
        if not (_is_int(ends[2]) and ends[2] == 0):
            ctx.dims.refine(y, [symbolic.range_length(ctx.dims, *ends)])
    _out(ctx, node, y)


def _resize_scales(ctx, node, x, scales, sizes):
    spatial = list(x.shape[2:])
    if sizes is not None:
        sizes = int_list(sizes)
        if not all(isinstance(d, (int, np.integer)) for d in spatial):
            raise NeedsStaticDims("Resize by sizes needs static spatial dims")
        return [s / int(d) for s, d in zip(sizes[2:], spatial)], sizes[2:]
    scales = [float(s) for s in np.asarray(scales).reshape(-1)]
    if scales[:2] != [1.0, 1.0]:
        raise NodeNotConvertible("Resize of batch or channel axes")
    out = [int(np.floor(int(d) * s)) if isinstance(d, (int, np.integer)) else None for d, s in zip(spatial, scales[2:])]
    return scales[2:], out


def _resize(ctx, node, x, scales, sizes, mode, coordinate_mode, nearest_mode):
    x = as_var(x)
    if x.rank != 4:
        raise NodeNotConvertible(f"Resize of rank-{x.rank} tensors (Core ML resizes H and W of 4-D tensors)")
    factors, out_size = _resize_scales(ctx, node, x, scales, sizes)
    if len(factors) != 2:
        raise NodeNotConvertible("Resize must scale exactly the last two axes")
    if sizes is None:
        # MIL recomputes the scale from the output size (in / out); ONNX given
        # scales use 1 / scale, and the two agree only when in * scale is whole.
        for dim, factor in zip(x.shape[2:], factors):
            whole = float(int(dim) * factor).is_integer() if isinstance(dim, (int, np.integer)) else float(factor).is_integer()
            if not whole:
                raise NodeNotConvertible(f"Resize scale {factor} does not give a whole output size; pass sizes instead")
    name = ctx.out_name(node)
    if mode == "nearest":
        if coordinate_mode != "asymmetric" or nearest_mode not in ("floor",):
            raise NodeNotConvertible(f"nearest Resize with {coordinate_mode}/{nearest_mode} (Core ML does asymmetric/floor)")
        _out(ctx, node, mb.upsample_nearest_neighbor(x=x, scale_factor_height=np.float32(factors[0]),
                                                     scale_factor_width=np.float32(factors[1]), name=name))
        return
    if mode == "linear":
        if any(f < 1 for f in factors):
            raise NodeNotConvertible("linear Resize that shrinks an axis (Core ML's bilinear upsample only enlarges)")
        if coordinate_mode in ("half_pixel", "pytorch_half_pixel", "align_corners"):
            if coordinate_mode == "pytorch_half_pixel" and any(o == 1 for o in out_size if o is not None):
                raise NodeNotConvertible("pytorch_half_pixel Resize to size 1")
            _out(ctx, node, mb.upsample_bilinear(x=x, scale_factor_height=np.float32(factors[0]),
                                                 scale_factor_width=np.float32(factors[1]),
                                                 align_corners=coordinate_mode == "align_corners", name=name))
            return
        raise NodeNotConvertible(f"linear Resize with coordinate_transformation_mode={coordinate_mode}")
    raise NodeNotConvertible(f"Resize mode {mode!r}")


@register("Resize", since_version=10)
def convert_resize(ctx, node):
    if ctx.opset < 11:
        scales = _require_const(ctx, node, 1, "Resize scales")
        _resize(ctx, node, ctx.input(node, 0), scales, None, attr(node, "mode", "nearest"), "asymmetric", "floor")
        return
    x = as_var(ctx.input(node, 0))
    rank = x.rank
    scales, sizes = const_input(ctx, node, 2), const_input(ctx, node, 3)
    if scales is not None and np.asarray(scales).size == 0:
        scales = None
    wanted = None  # per axis: the output length, or None for "the input's own length"
    if sizes is None and len(node.input) > 3 and node.input[3] in ctx.symbolic:
        # sizes like [N, C, 6, 9] built from a shape: a symbolic entry keeps that dim.
        wanted = [int(v) if _is_int(v) else None for v in ctx.symbolic[node.input[3]].tolist()]
    elif sizes is not None and np.asarray(sizes).size:
        wanted = int_list(sizes)
    if scales is None and wanted is None:
        raise NodeNotConvertible("Resize scales/sizes must be constants")
    mode = attr(node, "mode", "nearest")
    coordinate_mode = attr(node, "coordinate_transformation_mode", "half_pixel")
    nearest_mode = attr(node, "nearest_mode", "round_prefer_floor")
    if attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        raise NodeNotConvertible("Resize keep_aspect_ratio_policy other than stretch")
    if coordinate_mode == "tf_crop_and_resize":
        raise NodeNotConvertible("Resize with coordinate_transformation_mode=tf_crop_and_resize")
    axes = attr(node, "axes")
    axes = list(range(rank)) if axes is None else [norm_axis(a, rank) for a in axes]
    factors = [1.0] * rank
    lengths: list = list(x.shape)
    if wanted is not None:
        if len(wanted) != len(axes):
            raise NodeNotConvertible(f"Resize sizes of length {len(wanted)} for {len(axes)} axes")
        for axis, size in zip(axes, wanted):
            lengths[axis] = x.shape[axis] if size is None else size
    else:
        values = [float(v) for v in np.asarray(scales).reshape(-1)]
        if len(values) != len(axes):
            raise NodeNotConvertible(f"Resize scales of length {len(values)} for {len(axes)} axes")
        for axis, factor in zip(axes, values):
            factors[axis] = factor
            dim = x.shape[axis]
            lengths[axis] = int(np.floor(int(dim) * factor)) if _is_int(dim) else (dim if factor == 1.0 else None)
    if any(_is_int(n) and n <= 0 for n in lengths):
        raise NodeNotConvertible("Resize to an empty axis: Core ML has no empty tensors")
    if _native_resize_exact(x, wanted, factors, lengths):
        try:
            # _resize reads only the spatial entries; N and C were checked unchanged above.
            native_sizes = np.array([1, 1, *lengths[2:]], dtype=np.int64) if wanted is not None else None
            _resize(ctx, node, x, None if wanted is not None else np.array(factors), native_sizes, mode,
                    coordinate_mode, nearest_mode)
            return
        except NodeNotConvertible:
            pass
    _resize_by_taps(ctx, node, x, wanted is not None, factors, lengths, mode)


def _native_resize_exact(x, by_sizes: bool, factors: list, lengths: list) -> bool:
    """Whether Core ML's upsample ops give exactly ONNX's shape: 4-D, N and C untouched,
    and (for sizes) whole factors, since upsample sizes its output as floor(in * factor)."""
    if x.rank != 4 or any(lengths[i] is None for i in range(4)):
        return False
    for i in (0, 1):
        if lengths[i] != x.shape[i] or factors[i] != 1.0:
            return False
    if by_sizes:
        return all(_is_int(x.shape[i]) and _is_int(lengths[i]) and int(lengths[i]) % int(x.shape[i]) == 0
                   for i in (2, 3))
    return True


def _resize_by_taps(ctx, node, x, by_sizes: bool, factors: list, lengths: list, mode: str):
    """Resize as, per axis, a weighted sum of gathered input rows.

    Every ONNX Resize mode is separable and linear in the input: along one axis,
    output j is sum_k W[k, j] * input k. W is computed at conversion time by
    running onnx's reference Resize on an identity matrix with this node's
    attributes, so the sampling grid (coordinate mode, rounding, cubic
    coefficients, antialias) is ONNX's own; the program then gathers the few
    inputs with non-zero weight for each output.
    """
    dtype = mil_dtype_name(x)
    if mode != "nearest" and dtype not in ("fp32", "fp16"):
        raise NodeNotConvertible(f"{mode} Resize of {dtype} tensors")
    name = ctx.out_name(node)
    result = x
    for axis in range(x.rank):
        dim, length = x.shape[axis], lengths[axis]
        if (by_sizes and length is dim) or (not by_sizes and factors[axis] == 1.0) or (
                by_sizes and _is_int(dim) and _is_int(length) and int(dim) == int(length)):
            continue  # a scale of exactly 1 samples every input index at itself
        if by_sizes and not _is_int(dim) and _is_int(length):
            result = _resize_dynamic_axis(node, result, axis, int(length), mode)
            continue
        if not _is_int(dim) or not _is_int(length):
            raise NeedsStaticDims(f"Resize of dynamic axis {axis} (its length must be known to size the output)")
        weights = _resize_weights(node, int(dim), int(length), factors[axis], by_sizes)
        result = _apply_taps(result, axis, weights, dtype)
    _out(ctx, node, mb.identity(x=as_var(result), name=name))


_ROUNDING = {"round_prefer_floor": lambda v: mb.ceil(x=mb.sub(x=v, y=np.float32(0.5))),
             "round_prefer_ceil": lambda v: mb.floor(x=mb.add(x=v, y=np.float32(0.5))),
             "floor": lambda v: mb.floor(x=v), "ceil": lambda v: mb.ceil(x=v)}


def _resize_dynamic_axis(node, x, axis: int, length: int, mode: str):
    """Resize a dynamic axis to a fixed ``length`` with the sampling grid computed in the program.

    The input length is known only at run time, so the weights cannot be tabulated;
    this follows the spec's formulas in float32 (scale = length / in, as runtimes
    compute it) for nearest and linear with the common coordinate modes.
    """
    coordinate_mode = attr(node, "coordinate_transformation_mode", "half_pixel")
    nearest_mode = attr(node, "nearest_mode", "round_prefer_floor")
    if mode not in ("nearest", "linear") or attr(node, "antialias", 0) or coordinate_mode not in (
            "half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"):
        raise NodeNotConvertible(f"{mode} Resize ({coordinate_mode}) of dynamic axis {axis} to a fixed size")
    size = mb.cast(x=mb.gather(x=mb.shape(x=x), indices=np.array([axis], dtype=np.int32), axis=0), dtype="fp32")
    last = mb.sub(x=size, y=np.float32(1))
    j = np.arange(length, dtype=np.float32)
    scale = mb.real_div(x=np.float32(length), y=size)
    if coordinate_mode == "asymmetric":
        where = mb.real_div(x=j, y=scale)
    elif coordinate_mode == "align_corners" and length > 1:
        where = mb.real_div(x=mb.mul(x=j, y=last), y=np.float32(length - 1))
    elif coordinate_mode in ("align_corners", "pytorch_half_pixel") and length == 1:
        where = mb.mul(x=last, y=np.zeros(1, dtype=np.float32))
    else:
        where = mb.sub(x=mb.real_div(x=j + np.float32(0.5), y=scale), y=np.float32(0.5))
    if mode == "nearest":
        if nearest_mode not in _ROUNDING:
            raise NodeNotConvertible(f"Resize nearest_mode {nearest_mode!r}")
        picked = mb.minimum(x=mb.maximum(x=_ROUNDING[nearest_mode](where), y=np.float32(0)), y=last)
        return mb.gather(x=as_var(x), indices=mb.cast(x=picked, dtype="int32"), axis=axis)
    where = mb.minimum(x=mb.maximum(x=where, y=np.float32(0)), y=last)
    low = mb.floor(x=where)
    high = mb.minimum(x=mb.add(x=low, y=np.float32(1)), y=last)
    weight = mb.sub(x=where, y=low)
    shape = np.ones(x.rank, dtype=np.int32)
    shape[axis] = length
    weight = mb.reshape(x=weight, shape=shape)
    if mil_dtype_name(x) == "fp16":
        weight = mb.cast(x=weight, dtype="fp16")
    below = mb.gather(x=as_var(x), indices=mb.cast(x=low, dtype="int32"), axis=axis)
    above = mb.gather(x=as_var(x), indices=mb.cast(x=high, dtype="int32"), axis=axis)
    keep = mb.sub(x=np.array(1, dtype=_NUMPY_TYPES[mil_dtype_name(x)]), y=weight)
    return mb.add(x=mb.mul(x=below, y=keep), y=mb.mul(x=above, y=weight))


_ROUND = {"round_prefer_floor": lambda v: np.ceil(v - np.float32(0.5)),
          "round_prefer_ceil": lambda v: np.floor(v + np.float32(0.5)), "floor": np.floor, "ceil": np.ceil}


def _spec_resize_weights(attributes: dict, dim: int, length: int, scale: np.float32) -> np.ndarray:
    """The [dim, length] matrix of a non-antialiased Resize, from the spec's formulas.

    Coordinates are computed in float32 as runtimes do (an output landing exactly on a
    pixel or half-way between two must round as theirs do); ``length_resized`` is the
    whole output length, except for align_corners, where the spec makes it
    ``scale * dim``; linear and cubic read clamped (edge) neighbours.
    """
    f32 = np.float32
    mode = attributes.get("mode", "nearest")
    coordinate_mode = attributes.get("coordinate_transformation_mode", "half_pixel")
    j = np.arange(length, dtype=f32)
    if coordinate_mode == "asymmetric":
        x = j / scale
    elif coordinate_mode == "align_corners":
        # The spec's length_resized is scale * length_original (scale = length_resized /
        # length_original), fractional when a scale does not give a whole length; the ONNX
        # conformance cases (resize_downsample_scales_*_align_corners) follow it.
        # onnxruntime uses the rounded output length instead (docs/coreml.md).
        resized = f32(dim) * scale
        x = np.zeros(length, f32) if resized <= 1 else j * f32(dim - 1) / (resized - f32(1))
    elif coordinate_mode == "pytorch_half_pixel":
        x = np.zeros(length, f32) if length == 1 else (j + f32(0.5)) / scale - f32(0.5)
    elif coordinate_mode == "half_pixel":
        x = (j + f32(0.5)) / scale - f32(0.5)
    elif coordinate_mode == "half_pixel_symmetric":
        adjustment = f32(length) / (scale * f32(dim))
        offset = f32(dim) / f32(2) * (f32(1) - adjustment)
        x = offset + (j + f32(0.5)) / scale - f32(0.5)
    else:
        raise NodeNotConvertible(f"Resize with coordinate_transformation_mode={coordinate_mode}")
    weights = np.zeros((dim, length), dtype=np.float64)
    columns = np.arange(length)
    if mode == "nearest":
        rounding = _ROUND.get(attributes.get("nearest_mode", "round_prefer_floor"))
        if rounding is None:
            raise NodeNotConvertible(f"Resize nearest_mode {attributes.get('nearest_mode')!r}")
        weights[np.clip(rounding(x), 0, dim - 1).astype(np.int64), columns] = 1.0
        return weights
    x = x.astype(np.float64)
    low = np.floor(x)
    t = x - low
    if mode == "linear":
        taps = [(low, 1.0 - t), (low + 1, t)]
    elif mode == "cubic":
        a = float(attributes.get("cubic_coeff_a", -0.75))

        def kernel(d):
            d = np.abs(d)
            return np.where(d <= 1, ((a + 2) * d - (a + 3)) * d * d + 1,
                            np.where(d < 2, ((a * d - 5 * a) * d + 8 * a) * d - 4 * a, 0.0))

        taps = [(low + k, kernel(t - k)) for k in (-1, 0, 1, 2)]
    else:
        raise NodeNotConvertible(f"Resize mode {mode!r}")
    exclude = bool(attributes.get("exclude_outside", 0)) and mode == "cubic"
    for index, weight in taps:
        inside = (index >= 0) & (index <= dim - 1)
        if exclude:
            weight = np.where(inside, weight, 0.0)
        np.add.at(weights, (np.clip(index, 0, dim - 1).astype(np.int64), columns), weight)
    if exclude:
        weights /= weights.sum(axis=0, keepdims=True)
    return weights


def _resize_weights(node, dim: int, length: int, factor: float, by_sizes: bool) -> np.ndarray:
    """The [dim, length] matrix of ONNX's Resize along one axis.

    Without antialias, from the spec's formulas (:func:`_spec_resize_weights`): onnx's
    reference evaluator departs from the spec there (it takes ``length_resized`` as the
    unrounded ``dim * scale`` for pytorch_half_pixel, samples -0.5
    for a pytorch_half_pixel output of length 1, and picks the wrong pixel when a
    coordinate falls on a whole number in float64 rounding); onnxruntime follows the
    spec. Antialiasing changes only shrinking; an antialiased shrink is tabulated by the
    reference evaluator, and refused where that departs from the spec (pytorch_half_pixel
    to one sample; align_corners and half_pixel_symmetric by a scale that does not give a
    whole length). Nearest half_pixel_symmetric by such a scale is refused too: its
    samples fall on exact halves, where float32 evaluation order picks the pixel.
    """
    import warnings

    from onnx import helper
    from onnx.reference import ReferenceEvaluator

    if dim * length > 4_000_000:
        raise NodeNotConvertible(f"Resize of an axis from {dim} to {length} is too large to tabulate")
    keep = ("mode", "coordinate_transformation_mode", "nearest_mode", "cubic_coeff_a", "exclude_outside",
            "antialias", "extrapolation_value")
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute if a.name in keep}
    attributes = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attributes.items()}
    coordinate_mode = attributes.get("coordinate_transformation_mode", "half_pixel")
    scale = np.float32(length) / np.float32(dim) if by_sizes else np.float32(factor)
    whole = by_sizes or float(np.float32(factor)) * dim == length
    if coordinate_mode == "half_pixel_symmetric" and not whole and attributes.get("mode", "nearest") == "nearest":
        # samples fall on exact halves, where float32 evaluation order decides the pixel
        raise NodeNotConvertible("nearest half_pixel_symmetric Resize by a scale that does not give a whole "
                                 "output length")
    if not attributes.get("antialias", 0) or scale >= 1:  # antialiasing changes only shrinking
        return _spec_resize_weights(attributes, dim, length, scale)
    if (coordinate_mode == "pytorch_half_pixel" and length == 1) or (
            coordinate_mode in ("align_corners", "half_pixel_symmetric") and not whole):
        raise NodeNotConvertible(f"antialiased Resize ({coordinate_mode}) to {length} samples from {dim}")
    probe = helper.make_node("Resize", ["x", "roi", "scales", "sizes"] if by_sizes else ["x", "roi", "scales"],
                             ["y"], **attributes)
    feeds = {"x": np.eye(dim, dtype=np.float32), "roi": np.array([], dtype=np.float32)}
    if by_sizes:
        feeds["scales"] = np.array([], dtype=np.float32)
        feeds["sizes"] = np.array([dim, length], dtype=np.int64)
    else:
        feeds["scales"] = np.array([1.0, factor], dtype=np.float32)
    opset = max(node_opset_for_probe(node), 11)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (weights,) = ReferenceEvaluator(probe, opsets={"": opset}).run(None, feeds)
    except Exception as error:  # noqa: BLE001 - the reference cannot evaluate this combination
        raise NodeNotConvertible(f"Resize with these attributes ({type(error).__name__}: {error})") from None
    weights = np.asarray(weights)
    if weights.shape != (dim, length):
        raise NodeNotConvertible(f"Resize along an axis of {dim} gives {weights.shape[1]} samples, not {length}")
    return weights


def node_opset_for_probe(node) -> int:
    """The Resize version whose attributes the node uses (antialias and friends came with 18)."""
    names = {a.name for a in node.attribute}
    return 19 if names & {"antialias", "keep_aspect_ratio_policy", "axes"} else 13


def _apply_taps(x, axis: int, weights: np.ndarray, dtype: str):
    numpy_type = {"fp32": np.float32, "fp16": np.float16, "int32": np.int32, "bool": np.bool_}[dtype]
    taps = [np.flatnonzero(weights[:, j]) for j in range(weights.shape[1])]
    count = max(len(t) for t in taps)
    if count == 1 and all(weights[t[0], j] == 1 for j, t in enumerate(taps)):
        return mb.gather(x=as_var(x), indices=np.array([t[0] for t in taps], dtype=np.int32), axis=axis)
    shape = [1] * x.rank
    shape[axis] = weights.shape[1]
    total = None
    for k in range(count):
        rows = np.array([t[k] if k < len(t) else t[0] for t in taps], dtype=np.int32)
        factor = np.array([weights[t[k], j] if k < len(t) else 0.0 for j, t in enumerate(taps)]).astype(numpy_type)
        term = mb.mul(x=mb.gather(x=as_var(x), indices=rows, axis=axis), y=factor.reshape(shape))
        total = term if total is None else mb.add(x=total, y=term)
    return total


@register("Upsample", since_version=7)
def convert_upsample(ctx, node):
    scales = attr(node, "scales") if ctx.opset < 9 else _require_const(ctx, node, 1, "Upsample scales")
    mode = attr(node, "mode", "nearest")
    # Upsample's linear mode is asymmetric; only exact integer factors match Core ML's align-free bilinear.
    coordinate = "asymmetric" if mode == "nearest" else "half_pixel_unsupported"
    _resize(ctx, node, ctx.input(node, 0), np.asarray(scales), None, mode, coordinate, "floor")


@register("DepthToSpace")
def convert_depth_to_space(ctx, node):
    x = as_var(ctx.input(node, 0))
    block = attr(node, "blocksize")
    if attr(node, "mode", "DCR") == "CRD":
        _out(ctx, node, mb.pixel_shuffle(x=x, upscale_factor=block, name=ctx.out_name(node)))
    else:
        _out(ctx, node, mb.depth_to_space(x=x, block_size=block, name=ctx.out_name(node)))


@register("SpaceToDepth")
def convert_space_to_depth(ctx, node):
    x = as_var(ctx.input(node, 0))
    if attr(node, "mode", "DCR") == "CRD":
        import coremltools as ct

        if ctx.target < ct.target.iOS16:
            raise NodeNotConvertible("SpaceToDepth CRD mode needs pixel_unshuffle (minimum_deployment_target iOS16)")
        _out(ctx, node, mb.pixel_unshuffle(x=x, downscale_factor=np.uint32(attr(node, "blocksize")), name=ctx.out_name(node)))
        return
    _out(ctx, node, mb.space_to_depth(x=x, block_size=attr(node, "blocksize"), name=ctx.out_name(node)))


@register("TopK")
def convert_topk(ctx, node):
    x = as_var(ctx.input(node, 0))
    k = attr(node, "k") if ctx.opset < 10 else int(_require_const(ctx, node, 1, "TopK k").reshape(-1)[0])
    axis = norm_axis(attr(node, "axis", -1), x.rank)
    largest = bool(attr(node, "largest", 1))
    values, indices = mb.topk(x=x, k=k, axis=axis, ascending=not largest)
    ctx.output(node, 0, mb.identity(x=values, name=ctx.out_name(node, 0)))
    ctx.output(node, 1, mb.identity(x=indices, name=ctx.out_name(node, 1)))


@register("CumSum", since_version=11)
def convert_cumsum(ctx, node):
    axis = int(np.asarray(_require_const(ctx, node, 1, "CumSum axis")).reshape(-1)[0])
    exclusive, reverse = bool(attr(node, "exclusive", 0)), bool(attr(node, "reverse", 0))
    known = const_input(ctx, node, 0)
    if known is not None:
        # coremltools' constant folding of an exclusive cumsum raises; sum in numpy instead.
        ctx.output(node, 0, _cumsum_constant(np.asarray(known), norm_axis(axis, known.ndim), exclusive, reverse))
        return
    x = as_var(ctx.input(node, 0))
    _out(ctx, node, mb.cumsum(x=x, axis=norm_axis(axis, x.rank), exclusive=bool(attr(node, "exclusive", 0)),
                              reverse=bool(attr(node, "reverse", 0)), name=ctx.out_name(node)))


def _cumsum_constant(x: np.ndarray, axis: int, exclusive: bool, reverse: bool) -> np.ndarray:
    if reverse:
        x = np.flip(x, axis)
    total = np.cumsum(x, axis=axis, dtype=x.dtype)
    if exclusive:
        total = total - x
    return np.flip(total, axis) if reverse else total


@register("OneHot", since_version=9)
def convert_one_hot(ctx, node):
    indices = cast_to(as_var(ctx.input(node, 0)), "int32")
    depth = int(np.asarray(_require_const(ctx, node, 1, "OneHot depth")).reshape(-1)[0])
    values = _require_const(ctx, node, 2, "OneHot values")
    off, on = values.reshape(-1)[:2]
    # Negative indices count from the end in ONNX.
    indices = mb.select(cond=mb.less(x=indices, y=np.int32(0)), a=mb.add(x=indices, y=np.int32(depth)), b=indices)
    axis = attr(node, "axis", -1)
    _out(ctx, node, mb.one_hot(indices=indices, one_hot_vector_size=depth, axis=axis, on_value=on, off_value=off,
                               name=ctx.out_name(node)))


@register("NonZero", since_version=9)
def convert_non_zero(ctx, node):
    x = as_var(ctx.input(node, 0))
    coords = mb.non_zero(x=x)
    _out(ctx, node, mb.transpose(x=coords, perm=[1, 0], name=ctx.out_name(node)))


@register("Trilu", since_version=14)
def convert_trilu(ctx, node):
    x = as_var(ctx.input(node, 0))
    # Keep element (i, j) when j - i >= k (upper) or j - i <= k (lower); k may be a run-time scalar.
    offset = _diagonal_offsets(x)
    k = as_array(ctx.input(node, 1, np.array(0, dtype=np.int32)))
    k = cast_to(k, "int32")
    if not isinstance(k, np.ndarray) and k.rank > 0:
        k = mb.squeeze(x=k)
    compare = mb.greater_equal if attr(node, "upper", 1) else mb.less_equal
    mask = compare(x=offset, y=k.reshape(()) if isinstance(k, np.ndarray) else k)
    zero = np.zeros((), dtype={"fp32": np.float32, "fp16": np.float16, "int32": np.int32, "bool": np.bool_}[mil_dtype_name(x)])
    _out(ctx, node, mb.select(cond=mask, a=x, b=zero, name=ctx.out_name(node)))


@register("EyeLike", since_version=9)
def convert_eye_like(ctx, node):
    x = as_array(ctx.input(node, 0))
    dtype = attr(node, "dtype")
    if dtype is not None and dtype not in ONNX_TO_MIL_DTYPE:
        raise NodeNotConvertible(f"EyeLike of {onnx.TensorProto.DataType.Name(dtype)}: Core ML has no such type")
    # Without a dtype attribute the output has the input's type, whatever produced it.
    target = ONNX_TO_MIL_DTYPE[dtype] if dtype is not None else mil_dtype_name(x)
    k = int(attr(node, "k", 0))
    shape = static_shape(x)
    if shape is not None:
        ctx.output(node, 0, np.eye(shape[0], shape[1], k=k).astype(_NUMPY_TYPES[target]))
        return
    ones = mb.equal(x=_diagonal_offsets(x), y=np.int32(k))
    _out(ctx, node, ones if target == "bool" else mb.cast(x=ones, dtype=target, name=ctx.out_name(node)))


_NUMPY_TYPES = {"fp32": np.float32, "fp16": np.float16, "int32": np.int32, "bool": np.bool_}


def _diagonal_offsets(x):
    """j - i for every (i, j) of x's last two axes: a constant when they are static, else built from x's shape."""
    rows, cols = x.shape[-2:]
    if _is_int(rows) and _is_int(cols):
        return (np.arange(int(cols))[None, :] - np.arange(int(rows))[:, None]).astype(np.int32)
    shape = mb.shape(x=x)
    count = lambda axis: mb.range_1d(  # noqa: E731
        start=np.int32(0), end=mb.gather(x=shape, indices=np.int32(x.rank + axis), axis=0), step=np.int32(1))
    return mb.sub(x=mb.expand_dims(x=count(-1), axes=[0]), y=mb.expand_dims(x=count(-2), axes=[1]))


_SCATTER_MODES = {"none": "update", "add": "add", "mul": "mul", "max": "max", "min": "min"}


@register("ScatterElements", since_version=11)
def convert_scatter_elements(ctx, node):
    data, updates = unify(ctx.input(node, 0), ctx.input(node, 2))
    data = as_var(data)
    rank = data.rank
    axis = norm_axis(attr(node, "axis", 0), rank)
    indices = as_array(ctx.input(node, 1))
    mode = _SCATTER_MODES[attr(node, "reduction", "none")]
    index_shape = tuple(np.shape(indices)) if isinstance(indices, np.ndarray) else tuple(indices.shape)
    for i, (count, size) in enumerate(zip(index_shape, data.shape)):
        if i != axis and _is_int(count) and _is_int(size) and int(count) > int(size):
            raise NodeNotConvertible(f"ScatterElements indices have {int(count)} entries on axis {i}, data only {int(size)}")
    _check_index_range("ScatterElements", _index_column(indices), [data.shape[axis]])
    known = [const_input(ctx, node, i) for i in range(3)]
    if all(value is not None for value in known):
        # coremltools folds a constant scatter_along_axis as a plain update whatever the
        # reduction: compute the constant here with ONNX's semantics instead.
        ctx.output(node, 0, _scatter_elements_constant(*known, axis, attr(node, "reduction", "none")))
        return
    if all(i == axis or data.shape[i] == index_shape[i] for i in range(rank)):
        indices = _normalized_indices(indices, data.shape[axis])
        _out(ctx, node, mb.scatter_along_axis(data=data, indices=indices, updates=updates, axis=axis, mode=mode,
                                              name=ctx.out_name(node)))
        return
    # Indices shorter than data on other axes (ONNX allows it): MIL's scatter_along_axis
    # does not, so write the same elements with scatter_nd and full coordinates.
    if not all(_is_int(d) for d in index_shape):
        raise NodeNotConvertible("ScatterElements with indices smaller than data needs static indices dims")
    if isinstance(indices, np.ndarray) and _is_int(data.shape[axis]):
        along = _normalized_indices(indices, data.shape[axis])
    else:
        along = cast_to(as_var(indices), "int32")
        size = mb.gather(x=mb.shape(x=data), indices=np.array([axis], dtype=np.int32), axis=0)
        along = mb.select(cond=mb.less(x=along, y=np.int32(0)), a=mb.add(x=along, y=size), b=along)
    grid = np.indices(index_shape, dtype=np.int32)
    columns = []
    for i in range(rank):
        if i == axis:
            columns.append(along[..., None] if isinstance(along, np.ndarray) else mb.expand_dims(x=along, axes=[-1]))
        else:
            columns.append(grid[i][..., None])
    if all(isinstance(c, np.ndarray) for c in columns):
        coordinates = np.concatenate(columns, axis=-1).astype(np.int32)
    else:
        coordinates = mb.concat(values=columns, axis=-1)
    _out(ctx, node, mb.scatter_nd(data=data, indices=coordinates, updates=updates, mode=mode, name=ctx.out_name(node)))


_ONNX_REDUCTIONS = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter_elements_constant(data, indices, updates, axis: int, reduction: str) -> np.ndarray:
    out = np.array(data, copy=True)
    indices = np.asarray(indices).astype(np.int64)
    indices = np.where(indices < 0, indices + out.shape[axis], indices)
    grid = list(np.indices(indices.shape, sparse=True))
    grid[axis] = indices
    updates = np.asarray(updates).astype(out.dtype)
    if reduction == "none":
        out[tuple(grid)] = updates
    else:
        _ONNX_REDUCTIONS[reduction].at(out, tuple(grid), updates)
    return out


@register("ScatterND", since_version=11)
def convert_scatter_nd(ctx, node):
    data, updates = unify(ctx.input(node, 0), ctx.input(node, 2))
    data = as_var(data)
    mode = _SCATTER_MODES[attr(node, "reduction", "none")]
    _check_index_range("ScatterND", ctx.input(node, 1), data.shape)
    _out(ctx, node, mb.scatter_nd(data=data, indices=ctx.input(node, 1), updates=updates, mode=mode, name=ctx.out_name(node)))


__all__ = ["Var"]
