"""Convolution, pooling and normalisation ops."""

from __future__ import annotations


from interop_coreml.onnx2mil.errors import NeedsStaticDims, NodeNotConvertible
from interop_coreml.onnx2mil.ops._common import (
    ConversionContext, as_var, attr, channel_shaped, mb, mil_dtype_name, np,
    scalar_like, shape_vector, unify,
)
from interop_coreml.onnx2mil.prepass import pool_geometry
from interop_coreml.onnx2mil.op_converters import register


def _spatial(x) -> list:
    return list(x.shape[2:])


def _explicit_pads(node, x, kernel, strides, dilations) -> tuple[str, list[int] | None]:
    """MIL (pad_type, pad) from ONNX auto_pad/pads; MIL orders pads per axis (begin, end)."""
    auto_pad = attr(node, "auto_pad", "NOTSET")
    n = len(kernel)
    if auto_pad == "VALID":
        return "valid", None
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        spatial = _spatial(x)
        if not all(isinstance(d, (int, np.integer)) for d in spatial):
            if auto_pad == "SAME_UPPER":
                return "same", None
            raise NeedsStaticDims("auto_pad SAME_LOWER needs static spatial dims")
        pads = []
        for size, k, s, d in zip(spatial, kernel, strides, dilations):
            out = -(-int(size) // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - int(size), 0)
            small, large = total // 2, total - total // 2
            pads += [small, large] if auto_pad == "SAME_UPPER" else [large, small]
        return "custom", pads
    onnx_pads = attr(node, "pads", [0] * (2 * n))
    return "custom", [p for i in range(n) for p in (onnx_pads[i], onnx_pads[i + n])]


def _conv_params(node, x, weight_shape=None):
    kernel = attr(node, "kernel_shape") or list(weight_shape[2:])
    n = len(kernel)
    strides = attr(node, "strides", [1] * n)
    dilations = attr(node, "dilations", [1] * n)
    return list(kernel), list(strides), list(dilations)


@register("Conv")
def convert_conv(ctx: ConversionContext, node) -> None:
    x = as_var(ctx.input(node, 0))
    weight = ctx.input(node, 1)
    x, weight = unify(x, weight)
    bias = ctx.input(node, 2)
    kernel, strides, dilations = _conv_params(node, x, weight.shape)
    pad_type, pad = _explicit_pads(node, x, kernel, strides, dilations)
    kwargs = dict(x=x, weight=weight, strides=strides, dilations=dilations, groups=attr(node, "group", 1), pad_type=pad_type)
    if pad is not None:
        kwargs["pad"] = pad
    if bias is not None:
        kwargs["bias"] = unify(x, bias)[1]
    ctx.output(node, 0, mb.conv(**kwargs, name=ctx.out_name(node)))


@register("ConvTranspose")
def convert_conv_transpose(ctx: ConversionContext, node) -> None:
    x = as_var(ctx.input(node, 0))
    weight = ctx.require_const(node, 1, "ConvTranspose weight")
    weight = unify(x, weight)[1]
    bias = ctx.input(node, 2)
    kernel, strides, dilations = _conv_params(node, x, weight.shape)
    n = len(kernel)
    spatial = _spatial(x)
    output_padding = attr(node, "output_padding", [0] * n)
    output_shape = attr(node, "output_shape")
    auto_pad = attr(node, "auto_pad", "NOTSET")
    if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if not all(isinstance(d, (int, np.integer)) for d in spatial):
            raise NeedsStaticDims("ConvTranspose with output_shape/auto_pad needs static spatial dims")
        wanted = list(output_shape)[-n:] if output_shape is not None else [int(s) * st for s, st in zip(spatial, strides)]
        begins, ends = [], []
        for size, k, s, d, op, out in zip(spatial, kernel, strides, dilations, output_padding, wanted):
            total = s * (int(size) - 1) + op + (k - 1) * d + 1 - out
            if auto_pad == "SAME_UPPER":
                begins.append(total // 2)
                ends.append(total - total // 2)
            elif auto_pad != "SAME_LOWER" and total < 0:
                # An output_shape past the natural size: the spec's split would give negative pads
                # on both sides; onnx's reference and onnxruntime both grow the end only.
                begins.append(0)
                ends.append(total)
            else:
                begins.append(total - total // 2)
                ends.append(total // 2)
    elif auto_pad == "VALID":
        begins, ends = [0] * n, [0] * n
    else:
        pads = attr(node, "pads", [0] * (2 * n))
        begins, ends = list(pads[:n]), list(pads[n:])
    # output_padding extends the end; MIL lacks it, so shrink the end pad by it. Pads that come
    # out negative (output_padding past the end pad, an output_shape larger than the natural
    # size, SAME with a negative total) grow the output: positions no input reaches, zero
    # before the bias, which MIL's own negative pads do not give.
    ends = [e - op for e, op in zip(ends, output_padding)]
    for axis, (size, k, st, d, b, e) in enumerate(zip(spatial, kernel, strides, dilations, begins, ends)):
        if _is_static(size) and st * (int(size) - 1) + (k - 1) * d + 1 - b - e <= 0:
            raise NodeNotConvertible(f"the output would be empty along axis {axis + 2} (pads {b} and {e + output_padding[axis]} "
                                     f"remove every row); Core ML has no empty tensors")
    grow = [p for b, e in zip(begins, ends) for p in (max(-b, 0), max(-e, 0))]
    mil_pad = [p for b, e in zip(begins, ends) for p in (max(b, 0), max(e, 0))]
    y = mb.conv_transpose(x=x, weight=weight, strides=strides, dilations=dilations, groups=attr(node, "group", 1),
                          pad_type="custom", pad=mil_pad)
    if any(grow):
        y = mb.pad(x=y, pad=np.array([0, 0, 0, 0] + grow, dtype=np.int32), constant_val=scalar_like(y, 0))
    if bias is not None:
        y = mb.add(x=y, y=channel_shaped(unify(x, bias)[1], x.rank))
    ctx.output(node, 0, mb.identity(x=y, name=ctx.out_name(node)))


def _is_static(dim) -> bool:
    return isinstance(dim, (int, np.integer))


def _window_counts(sizes, geometry, kernel, strides, dilations, include_pad: bool) -> np.ndarray:
    """Per output position, how many window cells lie inside the input (or inside the declared padding)."""
    per_axis = []
    for size, (out, begin, end), k, s, d in zip(sizes, geometry, kernel, strides, dilations):
        low, high = (-begin, size + end) if include_pad else (0, size)
        starts = np.arange(out) * s - begin
        taps = starts[:, None] + np.arange(k)[None, :] * d
        per_axis.append(((taps >= low) & (taps < high)).sum(axis=1))
    counts = per_axis[0]
    for axis_counts in per_axis[1:]:
        counts = np.multiply.outer(counts, axis_counts)
    return counts.astype(np.float64)


_MAX_TAPS = 256


def _pool_by_taps(x, kind, kernel, strides, dilations, geometry, sizes):
    """Pooling as a max/sum over strided slices, one per kernel tap: dilations, which MIL pools lack."""
    if int(np.prod(kernel)) > _MAX_TAPS:
        raise NodeNotConvertible(f"dilated pooling with {int(np.prod(kernel))} kernel taps (at most {_MAX_TAPS})")
    dtype = np.float16 if mil_dtype_name(x) == "fp16" else np.float32
    fill = dtype(-np.inf) if kind == "max" else dtype(0)
    widths = [0, 0, 0, 0]
    for size, (out, begin, _), k, s, d in zip(sizes, geometry, kernel, strides, dilations):
        widths += [begin, max((out - 1) * s + (k - 1) * d + 1 - size - begin, 0)]
    padded = mb.pad(x=x, pad=np.array(widths, dtype=np.int32), mode="constant", constant_val=fill) if any(widths) else x
    rank = x.rank
    result = None
    for tap in np.ndindex(*kernel):
        begin = [0, 0] + [t * d for t, d in zip(tap, dilations)]
        end = [0, 0] + [b + (g[0] - 1) * s + 1 for b, g, s in zip(begin[2:], geometry, strides)]
        part = mb.slice_by_index(x=padded, begin=np.array(begin, dtype=np.int32), end=np.array(end, dtype=np.int32),
                                 stride=np.array([1, 1] + list(strides), dtype=np.int32),
                                 begin_mask=[True, True] + [False] * (rank - 2),
                                 end_mask=[True, True] + [False] * (rank - 2))
        if result is None:
            result = part
        else:
            result = mb.maximum(x=result, y=part) if kind == "max" else mb.add(x=result, y=part)
    return result


def _pool(ctx: ConversionContext, node, kind: str) -> None:
    x = as_var(ctx.input(node, 0))
    if mil_dtype_name(x) not in ("fp32", "fp16"):
        raise NodeNotConvertible(f"pooling of {mil_dtype_name(x)} tensors: Core ML pools float tensors only")
    if len(node.output) > 1 and node.output[1]:
        raise NodeNotConvertible("MaxPool's Indices output has no Core ML equivalent")
    if attr(node, "storage_order", 0):
        raise NodeNotConvertible("MaxPool storage_order=1 is not supported")
    kernel = list(attr(node, "kernel_shape"))
    n = len(kernel)
    if x.rank != n + 2 or n > 3:
        raise NodeNotConvertible(f"pooling over {n} spatial axes of a rank-{x.rank} tensor (Core ML pools 1 to 3 axes)")
    strides = list(attr(node, "strides", [1] * n))
    dilations = list(attr(node, "dilations", [1] * n))
    auto_pad = attr(node, "auto_pad", "NOTSET")
    ceil_mode = bool(attr(node, "ceil_mode", 0))
    pads = list(attr(node, "pads", [0] * (2 * n)))
    include_pad = bool(attr(node, "count_include_pad", 0))
    sizes = _spatial(x)
    if all(_is_static(size) for size in sizes):
        _static_pool(ctx, node, x, kind, kernel, strides, dilations, auto_pad, ceil_mode, pads, include_pad,
                     [int(size) for size in sizes])
        return
    # Symbolic spatial dims: only what MIL's pools compute on their own, for every size.
    for i, size in enumerate(sizes):
        if _is_static(size):
            _check_output_size(i, pool_geometry(int(size), kernel[i], strides[i], dilations[i], pads[i], pads[i + n],
                                                auto_pad, ceil_mode)[0], int(size), kernel, strides, dilations)
    if any(d != 1 for d in dilations):
        raise NeedsStaticDims("dilated pooling needs static spatial dims")
    if auto_pad in ("SAME_UPPER", "SAME_LOWER") and any(k < s for k, s in zip(kernel, strides)):
        # ONNX's SAME padding goes negative for some sizes when the kernel is smaller than the
        # stride (the windows shift); MIL's "same" clamps it at 0.
        raise NeedsStaticDims("pooling with auto_pad SAME and a kernel smaller than the stride needs static "
                                 "spatial dims")
    if ceil_mode and auto_pad in ("NOTSET", "VALID") and any(s != 1 for s in strides):
        raise NeedsStaticDims("pooling with ceil_mode and strides > 1 needs static spatial dims")
    pad_type, pad = _explicit_pads(node, x, kernel, strides, dilations)
    kwargs = dict(x=x, kernel_sizes=kernel, strides=strides, pad_type=pad_type)
    if pad is not None:
        kwargs["pad"] = pad
    if kind == "max":
        y = mb.max_pool(**kwargs, name=ctx.out_name(node))
    else:
        y = mb.avg_pool(**kwargs, exclude_padding_from_average=not include_pad, name=ctx.out_name(node))
    ctx.output(node, 0, y)


def _check_output_size(axis, out, size, kernel, strides, dilations) -> None:
    if out <= 0:
        raise NodeNotConvertible(
            f"the output would be empty along axis {axis + 2} (size {out} from input {size}, kernel {kernel[axis]}, "
            f"dilation {dilations[axis]}, stride {strides[axis]}); Core ML has no empty tensors")


def _static_pool(ctx, node, x, kind, kernel, strides, dilations, auto_pad, ceil_mode, pads, include_pad, sizes):
    n = len(kernel)
    geometry = [pool_geometry(size, k, s, d, pads[i], pads[i + n], auto_pad, ceil_mode)
                for i, (size, k, s, d) in enumerate(zip(sizes, kernel, strides, dilations))]
    for axis, (out, _, _) in enumerate(geometry):
        _check_output_size(axis, out, sizes[axis], kernel, strides, dilations)
    for axis, (_, begin, end) in enumerate(geometry):
        if auto_pad in ("SAME_UPPER", "SAME_LOWER") and begin + end < 0:
            # The spec's SAME padding, (out - 1) * stride + effective kernel - size, is negative here;
            # it does not say how to split a negative total, and the engines disagree: onnxruntime's
            # AveragePool truncates towards 0, onnx's reference MaxPool floors, onnxruntime's MaxPool
            # refuses it. Refuse rather than pick one.
            raise NodeNotConvertible(
                f"auto_pad {auto_pad} needs a negative padding ({begin + end}) along axis {axis + 2} (kernel "
                f"{kernel[axis]} smaller than stride {strides[axis]}); ONNX leaves its split undefined and "
                f"runtimes disagree: use explicit pads")
    if any(d != 1 for d in dilations):
        y = _pool_by_taps(x, kind, kernel, strides, dilations, geometry, sizes)
        if kind == "max" and _np_float(x) == np.float32:
            # A dilated window can fall wholly in the padding (taps at -1 and +1 of a width-1 input):
            # a max over no value. onnxruntime gives float32's lowest finite value there (-inf once
            # rounded to float16, so float16 needs nothing), and -inf only where -inf is in the
            # window (fuzz seed 78 trial 676: -inf here, onnx's reference 0).
            empty = _window_counts(sizes, geometry, kernel, strides, dilations, False) == 0
            if empty.any():
                floor = np.where(empty, np.finfo(np.float32).min, -np.inf).astype(np.float32)
                y = mb.maximum(x=y, y=floor.reshape((1, 1) + floor.shape))
        if kind == "avg":
            counts = _window_counts(sizes, geometry, kernel, strides, dilations, include_pad)
            y = mb.real_div(x=y, y=np.maximum(counts, 1).astype(_np_float(x)))
        ctx.output(node, 0, mb.identity(x=y, name=ctx.out_name(node)))
        return
    # Floor-mode pooling over exactly the cells the ONNX windows cover: pad the end up to the
    # last window (ceil_mode's overhang), and crop what floor mode would add past it.
    mil_pad, crop = [], False
    for size, (out, begin, _), k, s in zip(sizes, geometry, kernel, strides):
        end = (out - 1) * s + k - size - begin
        mil_pad += [begin, max(end, 0)]
        crop = crop or end < 0
    kwargs = dict(x=x, kernel_sizes=kernel, strides=strides, pad_type="custom", pad=mil_pad)
    if kind == "max":
        y = mb.max_pool(**kwargs)
    else:
        # MIL's average over the input cells only; ONNX's count_include_pad also counts the declared
        # padding (never ceil_mode's overhang): rescale by the ratio of the two counts.
        y = mb.avg_pool(**kwargs, exclude_padding_from_average=True)
    if crop:
        y = mb.slice_by_size(x=y, begin=np.zeros(n + 2, dtype=np.int32),
                             size=np.array([-1, -1] + [g[0] for g in geometry], dtype=np.int32))
    if kind == "avg" and include_pad:
        inside = _window_counts(sizes, geometry, kernel, strides, dilations, False)
        declared = _window_counts(sizes, geometry, kernel, strides, dilations, True)
        if not np.array_equal(inside, declared):
            y = mb.mul(x=y, y=(np.maximum(inside, 1) / np.maximum(declared, 1)).astype(_np_float(x)))
    ctx.output(node, 0, mb.identity(x=y, name=ctx.out_name(node)))


def _np_float(x):
    return np.float16 if mil_dtype_name(x) == "fp16" else np.float32


register("MaxPool")(lambda ctx, node: _pool(ctx, node, "max"))
register("AveragePool")(lambda ctx, node: _pool(ctx, node, "avg"))


@register("GlobalAveragePool")
def convert_global_average_pool(ctx, node):
    x = as_var(ctx.input(node, 0))
    ctx.output(node, 0, mb.reduce_mean(x=x, axes=list(range(2, x.rank)), keep_dims=True, name=ctx.out_name(node)))


@register("GlobalMaxPool")
def convert_global_max_pool(ctx, node):
    x = as_var(ctx.input(node, 0))
    ctx.output(node, 0, mb.reduce_max(x=x, axes=list(range(2, x.rank)), keep_dims=True, name=ctx.out_name(node)))


@register("BatchNormalization")
def convert_batch_norm(ctx, node):
    if attr(node, "training_mode", 0) or any(o for o in node.output[1:]):
        raise NodeNotConvertible("BatchNormalization in training mode (running statistics outputs) is not supported")
    x = as_var(ctx.input(node, 0))
    eps = attr(node, "epsilon", 1e-5)
    params = [ctx.const(node, i) for i in range(1, 5)]
    # (x - mean) · a + bias, in the op's order: the folded x · a + (bias - mean · a) cancels when
    # |mean · a| is large against the result (a near-zero variance makes a = 1/sqrt(eps)), and lost
    # 380x onnxruntime's error on the model zoo's DenseNet-121. Core ML's passes still fuse it into a
    # preceding conv.
    if all(p is not None for p in params):
        scale, bias, mean, var = (p.astype(np.float64) for p in params)
        a = scale / np.sqrt(var + eps)
        dtype = np.float16 if mil_dtype_name(x) == "fp16" else np.float32
        if 3 <= x.rank <= 5:
            y = mb.batch_norm(x=x, mean=mean.astype(dtype), variance=var.astype(dtype), gamma=scale.astype(dtype),
                              beta=bias.astype(dtype), epsilon=dtype(eps), name=ctx.out_name(node))
        else:
            centered = mb.sub(x=x, y=channel_shaped(mean.astype(dtype), x.rank))
            y = mb.add(x=mb.mul(x=centered, y=channel_shaped(a.astype(dtype), x.rank)),
                       y=channel_shaped(bias.astype(dtype), x.rank), name=ctx.out_name(node))
    else:
        scale, bias, mean, var = (unify(x, ctx.input(node, i))[1] for i in range(1, 5))
        var = as_var(var)
        inv = mb.rsqrt(x=mb.add(x=var, y=scalar_like(var, eps)), epsilon=scalar_like(var, 0))
        a = mb.mul(x=inv, y=scale)
        centered = mb.sub(x=x, y=channel_shaped(mean, x.rank))
        y = mb.add(x=mb.mul(x=centered, y=channel_shaped(a, x.rank)), y=channel_shaped(bias, x.rank),
                   name=ctx.out_name(node))
    ctx.output(node, 0, y)


def _normalize(x, axes, eps):
    """(x - mean) / sqrt(var + eps) over ``axes``; also returns mean and 1/std."""
    mean = mb.reduce_mean(x=x, axes=axes, keep_dims=True)
    centered = mb.sub(x=x, y=mean)
    var = mb.reduce_mean(x=mb.mul(x=centered, y=centered), axes=axes, keep_dims=True)
    inv_std = mb.rsqrt(x=mb.add(x=var, y=scalar_like(x, eps)), epsilon=scalar_like(x, 0))
    return mb.mul(x=centered, y=inv_std), mean, inv_std


@register("InstanceNormalization")
def convert_instance_norm(ctx, node):
    x = as_var(ctx.input(node, 0))
    normed, _, _ = _normalize(x, list(range(2, x.rank)), attr(node, "epsilon", 1e-5))
    scale, bias = unify(x, ctx.input(node, 1))[1], unify(x, ctx.input(node, 2))[1]
    y = mb.add(x=mb.mul(x=normed, y=channel_shaped(scale, x.rank)), y=channel_shaped(bias, x.rank), name=ctx.out_name(node))
    ctx.output(node, 0, y)


@register("LayerNormalization", since_version=17)
def convert_layer_norm(ctx, node):
    x = as_var(ctx.input(node, 0))
    axis = attr(node, "axis", -1)
    axis = axis + x.rank if axis < 0 else axis
    axes = list(range(axis, x.rank))
    eps = attr(node, "epsilon", 1e-5)
    scale, bias = ctx.input(node, 1), ctx.input(node, 2)
    normalized_shape = tuple(x.shape[axis:])
    simple = (
        len([o for o in node.output if o]) == 1
        and isinstance(scale, np.ndarray) and tuple(scale.shape) == normalized_shape
        and (bias is None or (isinstance(bias, np.ndarray) and tuple(bias.shape) == normalized_shape))
    )
    if simple:
        kwargs = {"gamma": unify(x, scale)[1]}
        if bias is not None:
            kwargs["beta"] = unify(x, bias)[1]
        ctx.output(node, 0, mb.layer_norm(x=x, axes=axes, epsilon=scalar_like(x, eps), name=ctx.out_name(node),
                                          **kwargs))
        return
    normed, mean, inv_std = _normalize(x, axes, eps)
    y = mb.mul(x=normed, y=unify(x, scale)[1])
    if bias is not None:
        y = mb.add(x=y, y=unify(x, bias)[1])
    ctx.output(node, 0, mb.identity(x=y, name=ctx.out_name(node)))
    if len(node.output) > 1 and node.output[1]:
        ctx.output(node, 1, mb.identity(x=mean, name=ctx.out_name(node, 1)))
    if len(node.output) > 2 and node.output[2]:
        ctx.output(node, 2, mb.identity(x=inv_std, name=ctx.out_name(node, 2)))


@register("LRN")
def convert_lrn(ctx, node):
    x = as_var(ctx.input(node, 0))
    ctx.output(node, 0, mb.local_response_norm(
        x=x, size=attr(node, "size"), alpha=scalar_like(x, attr(node, "alpha", 1e-4)),
        beta=scalar_like(x, attr(node, "beta", 0.75)), k=scalar_like(x, attr(node, "bias", 1.0)), name=ctx.out_name(node)))


@register("LpNormalization")
def convert_lp_normalization(ctx, node):
    x = as_var(ctx.input(node, 0))
    axis = attr(node, "axis", -1)
    p = attr(node, "p", 2)
    if p not in (1, 2):
        raise NodeNotConvertible(f"LpNormalization with p={p}")
    if mil_dtype_name(x) == "fp16":
        # x / |x| = (x / m) / |x / m| with m = max |x|: the sum of squares of float16 values past 256
        # overflows float16 (65504), which made whole slices 0 where onnxruntime gives x / |x|
        largest = mb.reduce_max(x=mb.abs(x=x), axes=[axis], keep_dims=True)
        x = mb.real_div(x=x, y=mb.maximum(x=largest, y=scalar_like(x, 6e-8)))
    if p == 2:
        norm = mb.reduce_l2_norm(x=x, axes=[axis], keep_dims=True)
    else:
        norm = mb.reduce_l1_norm(x=x, axes=[axis], keep_dims=True)
    # A zero norm (an all-zero slice, or float32 squares that underflow) gives zeros, as in
    # onnxruntime. A floor on the norm would divide tiny slices by it instead: an L1 norm of
    # 4e-42 (a subnormal) gave x / 1e-30 where x / |x| is -1 (fuzz seed 78 trial 3806).
    positive = mb.greater(x=norm, y=scalar_like(x, 0))
    ratio = mb.real_div(x=x, y=mb.select(cond=positive, a=norm, b=scalar_like(x, 1)))
    ctx.output(node, 0, mb.select(cond=positive, a=ratio, b=scalar_like(x, 0), name=ctx.out_name(node)))


@register("MeanVarianceNormalization")
def convert_mvn(ctx, node):
    x = as_var(ctx.input(node, 0))
    axes = list(attr(node, "axes", [0, 2, 3]))
    mean = mb.reduce_mean(x=x, axes=axes, keep_dims=True)
    centered = mb.sub(x=x, y=mean)
    std = mb.sqrt(x=mb.reduce_mean(x=mb.mul(x=centered, y=centered), axes=axes, keep_dims=True))
    ctx.output(node, 0, mb.real_div(x=centered, y=mb.add(x=std, y=scalar_like(x, 1e-9)), name=ctx.out_name(node)))


@register("GroupNormalization", since_version=18)
def convert_group_norm(ctx, node):
    x = as_var(ctx.input(node, 0))
    groups = attr(node, "num_groups")
    channels = x.shape[1]
    if not isinstance(channels, (int, np.integer)):
        raise NodeNotConvertible("GroupNormalization needs a static channel dim")
    grouped = mb.reshape(x=x, shape=shape_vector(x, [("dim", 0), groups, -1]))
    normed, _, _ = _normalize(grouped, [2], attr(node, "epsilon", 1e-5))
    normed = mb.reshape(x=normed, shape=mb.shape(x=x))
    scale, bias = unify(x, ctx.input(node, 1))[1], unify(x, ctx.input(node, 2))[1]
    if ctx.opset < 21 and int(np.prod(scale.shape)) == groups and groups != channels:
        # Opset 18 scales per group; repeat each factor over its channels.
        scale = np.repeat(np.asarray(scale), channels // groups) if isinstance(scale, np.ndarray) else None
        bias = np.repeat(np.asarray(bias), channels // groups) if isinstance(bias, np.ndarray) else None
        if scale is None or bias is None:
            raise NodeNotConvertible("GroupNormalization-18 with run-time scale")
    y = mb.add(x=mb.mul(x=normed, y=channel_shaped(scale, x.rank)), y=channel_shaped(bias, x.rank), name=ctx.out_name(node))
    ctx.output(node, 0, y)
