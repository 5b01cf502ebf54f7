"""Shape and data-movement ops: reshape, slicing, gathers, padding, casts, resizing."""

from __future__ import annotations

import onnx
from onnx import numpy_helper

from interop_coreml.onnx2mil.errors import NodeNotConvertible
from interop_coreml.onnx2mil.ops._common import (
    ONNX_TO_MIL_DTYPE, Var, as_var, attr, cast_to, const_axes, int_list, mb, mil_dtype_name,
    norm_axis, np, shape_vector, static_shape, unify,
)
from interop_coreml.onnx2mil.registry import register

_INT32_MAX = 2**31 - 1


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
        training = ctx.const(node, 2)
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
    x = ctx.input(node, 0)
    target = ONNX_TO_MIL_DTYPE[to]
    if to in (onnx.TensorProto.UINT8, onnx.TensorProto.INT8, onnx.TensorProto.UINT16, onnx.TensorProto.INT16, onnx.TensorProto.UINT32):
        raise NodeNotConvertible(f"Cast to {onnx.TensorProto.DataType.Name(to)} would need wrap-around Core ML lacks")
    _out(ctx, node, cast_to(as_var(x), target))


@register("CastLike", since_version=15)
def convert_cast_like(ctx, node):
    target = mil_dtype_name(ctx.input(node, 1))
    _out(ctx, node, cast_to(as_var(ctx.input(node, 0)), target))


@register("Reshape")
def convert_reshape(ctx, node):
    x = as_var(ctx.input(node, 0))
    if ctx.opset < 5:
        shape = np.asarray(attr(node, "shape"))
    else:
        shape = ctx.const(node, 1)
    if shape is None:
        dims = cast_to(ctx.input(node, 1), "int32")
        _out(ctx, node, mb.reshape(x=x, shape=dims, name=ctx.out_name(node)))
        return
    allow_zero = attr(node, "allowzero", 0)
    if allow_zero and 0 in int_list(shape):
        raise NodeNotConvertible("Reshape to a zero-sized dim (allowzero=1): Core ML has no empty tensors")
    entries = [("dim", i) if (d == 0 and not allow_zero) else int(d) for i, d in enumerate(int_list(shape))]
    _out(ctx, node, mb.reshape(x=x, shape=shape_vector(x, entries), name=ctx.out_name(node)))


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


@register("Transpose")
def convert_transpose(ctx, node):
    x = as_var(ctx.input(node, 0))
    perm = attr(node, "perm") or list(reversed(range(x.rank)))
    _out(ctx, node, mb.transpose(x=x, perm=list(perm), name=ctx.out_name(node)))


@register("Concat")
def convert_concat(ctx, node):
    values = [ctx.input(node, i) for i in range(len(node.input)) if node.input[i]]
    values = [v for v in values if not (isinstance(v, np.ndarray) and v.size == 0)] or values[:1]
    reference = next((v for v in values if not isinstance(v, np.ndarray)), values[0])
    values = [unify(reference, v)[1] for v in values]
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
        sizes = ctx.const(node, 1)
        if sizes is None and len(node.input) > 1 and node.input[1]:
            raise NodeNotConvertible("Split sizes must be constant")
    else:
        sizes = attr(node, "split")
    if sizes is None:
        dim = x.shape[axis]
        if isinstance(dim, (int, np.integer)):
            chunk = -(-int(dim) // count)
            sizes = [min(chunk, int(dim) - i * chunk) for i in range(count)]
    names = [ctx.out_name(node, i) for i in range(count)]
    if sizes is None:
        parts = mb.split(x=x, num_splits=count, axis=axis, name=names[0] + "_split")
    else:
        parts = mb.split(x=x, split_sizes=np.array(int_list(sizes), dtype=np.int32), axis=axis, name=names[0] + "_split")
    parts = parts if isinstance(parts, (list, tuple)) else [parts]
    for i, part in enumerate(parts):
        if node.output[i]:
            ctx.output(node, i, mb.identity(x=part, name=names[i]))


@register("Slice")
def convert_slice(ctx, node):
    x = as_var(ctx.input(node, 0))
    if ctx.opset < 10:
        starts, ends, axes, steps = attr(node, "starts"), attr(node, "ends"), attr(node, "axes"), None
    else:
        values = [ctx.const(node, i) for i in range(1, 5)]
        for i, value in enumerate(values):
            if value is None and len(node.input) > i + 1 and node.input[i + 1]:
                raise NodeNotConvertible("Slice starts/ends/axes/steps must be constants")
        starts, ends, axes, steps = values
    starts, ends = int_list(starts), int_list(ends)
    axes = int_list(axes) if axes is not None else list(range(len(starts)))
    steps = int_list(steps) if steps is not None else [1] * len(starts)
    rank = x.rank
    begin, end, stride = [0] * rank, [0] * rank, [1] * rank
    begin_mask, end_mask = [True] * rank, [True] * rank
    for start, stop, axis, step in zip(starts, ends, axes, steps):
        axis = norm_axis(axis, rank)
        dim = x.shape[axis]
        stride[axis] = step
        if isinstance(dim, (int, np.integer)):
            b, e, _ = slice(start, stop, step).indices(int(dim))
            begin[axis], begin_mask[axis] = b, False
            if step < 0 and e < 0:
                end_mask[axis] = True  # run to the front of the axis
            else:
                end[axis], end_mask[axis] = e, False
        else:
            begin[axis], begin_mask[axis] = (start, False) if abs(start) < _INT32_MAX else (0, True)
            big = stop >= _INT32_MAX if step > 0 else stop <= -_INT32_MAX
            end[axis], end_mask[axis] = (0, True) if big else (stop, False)
    _out(ctx, node, mb.slice_by_index(x=x, begin=np.array(begin, dtype=np.int32), end=np.array(end, dtype=np.int32),
                                      stride=np.array(stride, dtype=np.int32), begin_mask=begin_mask, end_mask=end_mask,
                                      name=ctx.out_name(node)))


def _normalized_indices(indices, dim):
    if isinstance(indices, np.ndarray) and isinstance(dim, (int, np.integer)):
        return np.where(indices < 0, indices + int(dim), indices).astype(np.int32)
    return indices


@register("Gather")
def convert_gather(ctx, node):
    x = ctx.input(node, 0)
    x = as_var(x)
    axis = norm_axis(attr(node, "axis", 0), x.rank)
    indices = _normalized_indices(ctx.input(node, 1), x.shape[axis])
    _out(ctx, node, mb.gather(x=x, indices=indices, axis=axis, name=ctx.out_name(node)))


@register("GatherElements", since_version=11)
def convert_gather_elements(ctx, node):
    x = as_var(ctx.input(node, 0))
    axis = norm_axis(attr(node, "axis", 0), x.rank)
    indices = _normalized_indices(ctx.input(node, 1), x.shape[axis])
    _out(ctx, node, mb.gather_along_axis(x=x, indices=indices, axis=axis, name=ctx.out_name(node)))


@register("GatherND", since_version=11)
def convert_gather_nd(ctx, node):
    if attr(node, "batch_dims", 0):
        raise NodeNotConvertible("GatherND with batch_dims > 0")
    x = as_var(ctx.input(node, 0))
    _out(ctx, node, mb.gather_nd(x=x, indices=ctx.input(node, 1), name=ctx.out_name(node)))


@register("Squeeze")
def convert_squeeze(ctx, node):
    x = as_var(ctx.input(node, 0))
    axes = const_axes(ctx, node, 13)
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if isinstance(d, (int, np.integer)) and d == 1]
    if not axes:
        _out(ctx, node, x)
        return
    _out(ctx, node, mb.squeeze(x=x, axes=[norm_axis(a, x.rank) for a in axes], name=ctx.out_name(node)))


@register("Unsqueeze")
def convert_unsqueeze(ctx, node):
    x = as_var(ctx.input(node, 0))
    axes = const_axes(ctx, node, 13)
    out_rank = x.rank + len(axes)
    _out(ctx, node, mb.expand_dims(x=x, axes=sorted(norm_axis(a, out_rank) for a in axes), name=ctx.out_name(node)))


@register("Expand", since_version=8)
def convert_expand(ctx, node):
    x = as_var(ctx.input(node, 0))
    shape = ctx.require_const(node, 1, "Expand shape")
    # Broadcasting against ones of the target shape gives exactly Expand's result.
    dtype = mil_dtype_name(x)
    if dtype == "bool":
        y = mb.logical_and(x=x, y=np.ones(int_list(shape), dtype=np.bool_), name=ctx.out_name(node))
    else:
        ones = np.ones(int_list(shape), dtype={"fp32": np.float32, "fp16": np.float16, "int32": np.int32}[dtype])
        y = mb.mul(x=x, y=ones, name=ctx.out_name(node))
    _out(ctx, node, y)


@register("Tile")
def convert_tile(ctx, node):
    x = as_var(ctx.input(node, 0))
    reps = ctx.require_const(node, 1, "Tile repeats")
    _out(ctx, node, mb.tile(x=x, reps=np.array(int_list(reps), dtype=np.int32), name=ctx.out_name(node)))


@register("Pad")
def convert_pad(ctx, node):
    x = as_var(ctx.input(node, 0))
    if ctx.opset < 11:
        pads, value = int_list(attr(node, "pads") or attr(node, "paddings")), attr(node, "value", 0.0)
        axes = None
    else:
        pads = int_list(ctx.require_const(node, 1, "Pad pads"))
        value = ctx.const(node, 2, np.array(0))
        value = float(np.asarray(value).reshape(-1)[0]) if np.asarray(value).size else 0.0
        axes = ctx.const(node, 3)
    mode = attr(node, "mode", "constant")
    rank = x.rank
    axes = list(range(rank)) if axes is None else [norm_axis(a, rank) for a in int_list(axes)]
    n = len(axes)
    per_axis = [[0, 0] for _ in range(rank)]
    for i, axis in enumerate(axes):
        per_axis[axis] = [pads[i], pads[i + n]]
    if any(p < 0 for pair in per_axis for p in pair):
        raise NodeNotConvertible("negative pads (cropping)")
    mil_mode = {"constant": "constant", "reflect": "reflect", "edge": "replicate"}.get(mode)
    if mil_mode is None:
        raise NodeNotConvertible(f"Pad mode {mode!r}")
    if mil_mode != "constant" and mil_dtype_name(x) not in ("fp32", "fp16"):
        raise NodeNotConvertible(f"Pad mode {mode!r} on integer tensors: Core ML pads floats only in that mode")
    if mil_mode != "constant" and any(p for pair in per_axis[: max(rank - 2, 0)] for p in pair):
        raise NodeNotConvertible(f"Pad mode {mode!r} on other than the last two axes")
    flat = [p for pair in per_axis for p in pair]
    if mil_mode != "constant":
        flat = flat[-4:] if rank >= 2 else flat
    kwargs = {"constant_val": np.float32(value)} if mil_mode == "constant" else {}
    if mil_dtype_name(x) != "fp32" and mil_mode == "constant":
        kwargs["constant_val"] = np.array(value).astype({"fp16": np.float16, "int32": np.int32, "bool": np.bool_}[mil_dtype_name(x)])
    _out(ctx, node, mb.pad(x=x, pad=np.array(flat, dtype=np.int32), mode=mil_mode, name=ctx.out_name(node), **kwargs))


@register("Shape")
def convert_shape(ctx, node):
    x = as_var(ctx.input(node, 0))
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
    shape = ctx.const(node, 0)
    if shape is not None:
        ctx.output(node, 0, np.full(int_list(shape), fill))
        return
    fill = np.asarray(fill)
    fill = fill.astype(np.float32) if fill.dtype.kind == "f" else fill.astype(np.int32) if fill.dtype != np.bool_ else fill
    _out(ctx, node, mb.fill(shape=cast_to(ctx.input(node, 0), "int32"), value=fill, name=ctx.out_name(node)))


@register("Range", since_version=11)
def convert_range(ctx, node):
    start, limit, delta = (ctx.input(node, i) for i in range(3))
    start, limit = unify(start, limit)
    start, delta = unify(start, delta)
    limit, delta = unify(limit, delta)
    _out(ctx, node, mb.range_1d(start=start, end=limit, step=delta, name=ctx.out_name(node)))


def _resize_scales(ctx, node, x, scales, sizes):
    spatial = list(x.shape[2:])
    if sizes is not None:
        sizes = int_list(sizes)
        if not all(isinstance(d, (int, np.integer)) for d in spatial):
            raise NodeNotConvertible("Resize by sizes needs static spatial dims")
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
        scales, sizes = ctx.require_const(node, 1, "Resize scales"), None
        coordinate_mode, nearest_mode = "asymmetric", "floor"
    else:
        scales, sizes = ctx.const(node, 2), ctx.const(node, 3)
        if sizes is None and len(node.input) > 3 and node.input[3] in ctx.symbolic:
            # sizes like [N, C, 6, 9] built from the input's own shape: only H and W matter.
            symbolic = ctx.symbolic[node.input[3]].tolist()
            if len(symbolic) == 4 and all(isinstance(v, (int, np.integer)) for v in symbolic[2:]):
                sizes = np.array([1, 1, *symbolic[2:]], dtype=np.int64)
        if (scales is None or np.asarray(scales).size == 0) and sizes is None:
            raise NodeNotConvertible("Resize scales/sizes must be constants")
        if scales is not None and np.asarray(scales).size == 0:
            scales = None
        coordinate_mode = attr(node, "coordinate_transformation_mode", "half_pixel")
        nearest_mode = attr(node, "nearest_mode", "round_prefer_floor")
        if attr(node, "antialias", 0) or attr(node, "axes") is not None or attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
            raise NodeNotConvertible("Resize antialias/axes/keep_aspect_ratio_policy")
    _resize(ctx, node, ctx.input(node, 0), scales, sizes, attr(node, "mode", "nearest"), coordinate_mode, nearest_mode)


@register("Upsample", since_version=7)
def convert_upsample(ctx, node):
    scales = attr(node, "scales") if ctx.opset < 9 else ctx.require_const(node, 1, "Upsample scales")
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
    k = attr(node, "k") if ctx.opset < 10 else int(ctx.require_const(node, 1, "TopK k").reshape(-1)[0])
    axis = norm_axis(attr(node, "axis", -1), x.rank)
    largest = bool(attr(node, "largest", 1))
    values, indices = mb.topk(x=x, k=k, axis=axis, ascending=not largest)
    ctx.output(node, 0, mb.identity(x=values, name=ctx.out_name(node, 0)))
    ctx.output(node, 1, mb.identity(x=indices, name=ctx.out_name(node, 1)))


@register("CumSum", since_version=11)
def convert_cumsum(ctx, node):
    x = as_var(ctx.input(node, 0))
    axis = int(ctx.require_const(node, 1, "CumSum axis").reshape(-1)[0])
    _out(ctx, node, mb.cumsum(x=x, axis=norm_axis(axis, x.rank), exclusive=bool(attr(node, "exclusive", 0)),
                              reverse=bool(attr(node, "reverse", 0)), name=ctx.out_name(node)))


@register("OneHot", since_version=9)
def convert_one_hot(ctx, node):
    indices = cast_to(as_var(ctx.input(node, 0)), "int32")
    depth = int(np.asarray(ctx.require_const(node, 1, "OneHot depth")).reshape(-1)[0])
    values = ctx.require_const(node, 2, "OneHot values")
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
    rows, cols = x.shape[-2:]
    if not all(isinstance(d, (int, np.integer)) for d in (rows, cols)):
        raise NodeNotConvertible("Trilu needs static matrix dims")
    # Keep element (i, j) when j - i >= k (upper) or j - i <= k (lower); k may be a run-time scalar.
    offset = (np.arange(int(cols))[None, :] - np.arange(int(rows))[:, None]).astype(np.int32)
    k = ctx.input(node, 1, np.array(0, dtype=np.int32))
    k = cast_to(k, "int32")
    if not isinstance(k, np.ndarray) and k.rank > 0:
        k = mb.squeeze(x=k)
    compare = mb.greater_equal if attr(node, "upper", 1) else mb.less_equal
    mask = compare(x=offset, y=k.reshape(()) if isinstance(k, np.ndarray) else k)
    zero = np.zeros((), dtype={"fp32": np.float32, "fp16": np.float16, "int32": np.int32, "bool": np.bool_}[mil_dtype_name(x)])
    _out(ctx, node, mb.select(cond=mask, a=x, b=zero, name=ctx.out_name(node)))


@register("EyeLike", since_version=9)
def convert_eye_like(ctx, node):
    shape = static_shape(ctx.input(node, 0))
    if shape is None:
        raise NodeNotConvertible("EyeLike needs a static shape")
    dtype = attr(node, "dtype")
    numpy_type = onnx.helper.tensor_dtype_to_np_dtype(dtype) if dtype is not None else (
        np.asarray(ctx.input(node, 0)).dtype if isinstance(ctx.input(node, 0), np.ndarray) else np.float32)
    ctx.output(node, 0, np.eye(shape[0], shape[1], k=attr(node, "k", 0), dtype=numpy_type))


_SCATTER_MODES = {"none": "update", "add": "add", "mul": "mul", "max": "max", "min": "min"}


@register("ScatterElements", since_version=11)
def convert_scatter_elements(ctx, node):
    data = as_var(ctx.input(node, 0))
    axis = norm_axis(attr(node, "axis", 0), data.rank)
    indices = _normalized_indices(ctx.input(node, 1), data.shape[axis])
    updates = unify(data, ctx.input(node, 2))[1]
    mode = _SCATTER_MODES[attr(node, "reduction", "none")]
    _out(ctx, node, mb.scatter_along_axis(data=data, indices=indices, updates=updates, axis=axis, mode=mode,
                                          name=ctx.out_name(node)))


@register("ScatterND", since_version=11)
def convert_scatter_nd(ctx, node):
    data = as_var(ctx.input(node, 0))
    updates = unify(data, ctx.input(node, 2))[1]
    mode = _SCATTER_MODES[attr(node, "reduction", "none")]
    _out(ctx, node, mb.scatter_nd(data=data, indices=ctx.input(node, 1), updates=updates, mode=mode, name=ctx.out_name(node)))


__all__ = ["Var"]
