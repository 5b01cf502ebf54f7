"""Resize and Upsample as F.interpolate, for the ONNX modes whose sampling torch reproduces exactly.

torch's ``nearest`` is ONNX's (asymmetric, floor); ``nearest-exact`` is (half_pixel,
round_prefer_ceil), which equals ONNX's default (half_pixel, round_prefer_floor) whenever no
sample falls exactly between two pixels (upsampling by an integer factor); ``linear`` and
``cubic`` (A = -0.75) with half_pixel or align_corners are torch's bilinear/bicubic with
``align_corners`` False/True. Other combinations are refused, never approximated.
"""

from __future__ import annotations

import onnx

from interop_torch.onnx_import.context import ImportContext, NodeNotConvertible, literal
from interop_torch.onnx_import.ops.tensor import shape_list
from interop_torch.onnx_import.module_table import converter

_LINEAR = {1: "linear", 2: "bilinear", 3: "trilinear"}


def _interpolate(ctx: ImportContext, node: onnx.NodeProto, x_expr: str, rank: int, mode: str, coordinate: str,
                 nearest_mode: str, scales: list[float] | None, sizes: str | None, integer_upsampling: bool) -> None:
    spatial = rank - 2
    static = ctx.static_shape(ctx.input(node, 0))  # type: ignore[arg-type]
    spatial_in = list(static[2:]) if static is not None else [None] * spatial
    exact_scales = scales is not None and all(
        isinstance(n, int) and float(n * s).is_integer() for n, s in zip(spatial_in, scales[2:]))
    if scales is not None:
        lengths = [int(n * s) if isinstance(n, int) else None for n, s in zip(spatial_in, scales[2:])]
    else:
        lengths = [int(v) if v.strip().isdigit() else None
                   for v in (sizes or "").strip("()").split(",") if v.strip()] or [None]
    sizes_above_one = all(isinstance(n, int) and n > 1 for n in lengths)
    if spatial < 1 or spatial > 3:
        raise NodeNotConvertible(f"resizing a rank-{rank} tensor (torch resizes 1 to 3 spatial dims)")
    align = None
    if mode == "nearest":
        if coordinate == "asymmetric" and nearest_mode == "floor":
            torch_mode = "nearest"
        elif coordinate in ("half_pixel", "pytorch_half_pixel") and (
                nearest_mode == "round_prefer_ceil" or (nearest_mode == "round_prefer_floor" and integer_upsampling)):
            torch_mode = "nearest-exact"
        else:
            raise NodeNotConvertible(f"nearest sampling with {coordinate}/{nearest_mode} has no torch equivalent")
    elif mode in ("linear", "cubic"):
        if coordinate not in ("half_pixel", "align_corners", "pytorch_half_pixel"):
            raise NodeNotConvertible(f"{mode} sampling with {coordinate} coordinates has no torch equivalent")
        if coordinate == "pytorch_half_pixel" and sizes is None and scales is None:
            raise NodeNotConvertible("pytorch_half_pixel without sizes or scales")
        if mode == "cubic":
            if spatial != 2 or float(ctx.attr(node, "cubic_coeff_a", -0.75)) != -0.75:
                raise NodeNotConvertible("cubic sampling other than 2-D with A = -0.75")
            torch_mode = "bicubic"
        else:
            torch_mode = _LINEAR[spatial]
        align = coordinate == "align_corners"
    else:
        raise NodeNotConvertible(f"mode {mode!r}")
    if coordinate == "align_corners" and scales is not None and not exact_scales:
        raise NodeNotConvertible("align_corners with a scale that gives a fractional length (ONNX maps with it)")
    if coordinate == "pytorch_half_pixel" and not sizes_above_one:
        raise NodeNotConvertible("pytorch_half_pixel to a length of 1 (or an unknown length)")
    if int(ctx.attr(node, "exclude_outside", 0)) or int(ctx.attr(node, "antialias", 0)):
        raise NodeNotConvertible("exclude_outside or antialias")
    if sizes is not None:
        target = f"size={sizes}"
    else:
        assert scales is not None
        factor = scales[2:]
        target = f"scale_factor={literal(factor[0]) if len(set(factor)) == 1 else literal(tuple(factor))}"
    extra = "" if align is None else f", align_corners={align}"
    ctx.emit(node.output[0], f"F.interpolate({x_expr}, {target}, mode={torch_mode!r}{extra})")


def _scales_or_sizes(ctx: ImportContext, node: onnx.NodeProto, scales_value, sizes_value, rank: int):  # type: ignore[no-untyped-def]
    scales = None
    sizes = None
    integer_upsampling = False
    if sizes_value is not None and (sizes_value.kind != "const" or sizes_value.array.size):
        expr, known = shape_list(ctx, sizes_value, "sizes")
        if known is not None:
            if len(known) != rank:
                raise NodeNotConvertible("sizes must name every dim")
            x = ctx.input(node, 0)
            static = ctx.static_shape(x)  # type: ignore[arg-type]
            static = tuple(static) if static is not None else (None,) * rank
            if static[:2] == tuple(known[:2]) and all(isinstance(d, int) for d in static[:2]):
                sizes = literal(tuple(known[2:]))
            elif all(k is None or k == d for k, d in zip(known[:2], static[:2])):
                # A batch or channel size known only at run time (Concat(Shape(x)[0:2], [h, w]) under a
                # dynamic batch): the generated code checks it is x's own before resizing the rest.
                helper = ctx.helper("_spatial_sizes", '''
def _spatial_sizes(x, sizes):
    """ONNX Resize sizes as F.interpolate's size: the batch and channel sizes must stay x's own."""
    if list(sizes[:2]) != list(x.shape[:2]):
        raise ValueError(f"Resize to {list(sizes)} would resize the batch or channel dims of {list(x.shape)}")
    return sizes[2:]
''')
                sizes = f"{helper}({ctx.t(x)}, {expr})"  # type: ignore[arg-type]
            else:
                raise NodeNotConvertible("resizing the batch or channel dims")
            spatial = static[2:]
            integer_upsampling = all(isinstance(s, int) and isinstance(k, int) and k % s == 0
                                     for s, k in zip(spatial, known[2:]))
        else:
            sizes = f"{expr}[2:]"
        return None, sizes, integer_upsampling
    known_scales = ctx.const(scales_value)
    if known_scales is None:
        raise NodeNotConvertible("its scales are computed at run time")
    scales = [float(s) for s in known_scales.reshape(-1)]
    if len(scales) != rank or scales[0] != 1 or scales[1] != 1:
        raise NodeNotConvertible("scaling the batch or channel dims")
    integer_upsampling = all(s >= 1 and float(s).is_integer() for s in scales)
    return scales, sizes, integer_upsampling


@converter("Resize", 10, 11, 13, 18, 19)
def resize(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    rank = ctx.require_rank(x)
    if ctx.since >= 18 and ctx.attr(node, "axes") is not None:
        raise NodeNotConvertible("the axes attribute")
    if ctx.attr(node, "keep_aspect_ratio_policy", "stretch") != "stretch":
        raise NodeNotConvertible("keep_aspect_ratio_policy other than stretch")
    mode = ctx.attr(node, "mode", "nearest")
    if ctx.since == 10:
        scales, sizes, integer = _scales_or_sizes(ctx, node, ctx.input(node, 1), None, rank)
        coordinate, nearest_mode = "asymmetric", "floor"
        if mode == "linear":
            raise NodeNotConvertible("Resize-10 linear uses asymmetric coordinates, which torch has not")
    else:
        coordinate = ctx.attr(node, "coordinate_transformation_mode", "half_pixel")
        if coordinate == "tf_crop_and_resize":
            raise NodeNotConvertible("tf_crop_and_resize")
        nearest_mode = ctx.attr(node, "nearest_mode", "round_prefer_floor")
        scales, sizes, integer = _scales_or_sizes(ctx, node, ctx.input(node, 2), ctx.input(node, 3), rank)
    _interpolate(ctx, node, ctx.t(x), rank, mode, coordinate, nearest_mode, scales, sizes, integer)


@converter("Upsample", 7, 9)
def upsample(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    rank = ctx.require_rank(x)
    mode = ctx.attr(node, "mode", "nearest")
    if mode != "nearest":
        raise NodeNotConvertible("linear Upsample (asymmetric coordinates) has no torch equivalent")
    if ctx.since < 9:
        scales = [float(s) for s in ctx.attr(node, "scales")]
        if len(scales) != rank or scales[:2] != [1.0, 1.0]:
            raise NodeNotConvertible("scaling the batch or channel dims")
        sizes = None
    else:
        scales, sizes, _ = _scales_or_sizes(ctx, node, ctx.input(node, 1), None, rank)
    _interpolate(ctx, node, ctx.t(x), rank, "nearest", "asymmetric", "floor", scales, sizes, True)
