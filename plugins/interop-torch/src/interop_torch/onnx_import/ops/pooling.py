"""Pooling: nn.MaxPoolNd / nn.AvgPoolNd / nn.AdaptiveAvgPoolNd where torch's layer means the same, else a helper.

torch's pooling layers take symmetric padding of at most half the (dilated) kernel; ONNX
allows any pads, asymmetric ones included (Inception's AveragePool pads one side). Those go
through ``_pool``, which pads explicitly and keeps ONNX's rules: padded cells never win a max
and, unless ``count_include_pad``, never count in an average; with ``ceil_mode`` a window
that would start in the right padding is dropped (as the ONNX spec, onnxruntime and torch do).
"""

from __future__ import annotations

import onnx

from interop_torch.onnx_import.context import ImportContext, NodeNotConvertible, literal
from interop_torch.onnx_import.ops._common import one_or_tuple, spatial_pads, symmetric, torch_pads
from interop_torch.onnx_import.module_table import converter

POOL_HELPER = '''
def _pool(x, kind, kernel, stride, pads, dilation, ceil_mode, count_include_pad=False):
    """ONNX MaxPool/AveragePool with any pads ([begin..., end...]): pad explicitly, pool, keep ONNX's output size."""
    n = len(kernel)
    spatial = x.shape[2:]
    padding = []
    for i in reversed(range(n)):
        padding += [pads[i], pads[i + n]]
    if kind == "max":
        pool = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[n - 1]
        y = pool(F.pad(x, padding, value=float("-inf")), kernel, stride, 0, dilation, ceil_mode)
    else:
        pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[n - 1]
        y = pool(F.pad(x, padding), kernel, stride, 0, ceil_mode, True)
        if not count_include_pad:
            ones = F.pad(torch.ones_like(x[:1, :1]), padding)
            y = y / pool(ones, kernel, stride, 0, ceil_mode, True)
    # With ceil_mode, a window may not start in the right padding (torch only checks the padded size).
    index = [slice(None), slice(None)]
    for i in range(n):
        span = spatial[i] + pads[i] + pads[i + n] - dilation[i] * (kernel[i] - 1) - 1
        size = (-(-span // stride[i]) if ceil_mode else span // stride[i]) + 1
        if ceil_mode and (size - 1) * stride[i] >= spatial[i] + pads[i]:
            size -= 1
        index.append(slice(0, size))
    return y[tuple(index)]
'''


def _pool_geometry(ctx: ImportContext, node: onnx.NodeProto):  # type: ignore[no-untyped-def]
    x = ctx.input(node, 0)
    assert x is not None
    kernel = list(ctx.attr(node, "kernel_shape") or [])
    n = len(kernel)
    if n not in (1, 2, 3):
        raise NodeNotConvertible(f"{n}-D pooling has no torch equivalent (1-D to 3-D)")
    strides = list(ctx.attr(node, "strides") or [1] * n)
    dilations = list(ctx.attr(node, "dilations") or [1] * n)
    ceil_mode = bool(ctx.attr(node, "ceil_mode", 0))
    pads = spatial_pads(ctx, node, x, kernel, strides, dilations)
    return x, n, kernel, strides, dilations, ceil_mode, pads


def _fits_layer(pads, kernel, dilations) -> bool:  # type: ignore[no-untyped-def]
    """torch's pooling layers pad both sides alike, by at most half the dilated kernel."""
    if not symmetric(pads):
        return False
    n = len(kernel)
    return all(pads[i] * 2 <= (kernel[i] - 1) * dilations[i] + 1 for i in range(n))


def _helper_call(ctx: ImportContext, x_expr: str, kind: str, kernel, strides, pads, dilations,  # type: ignore[no-untyped-def]
                 ceil_mode: bool, count_include_pad: bool = False) -> str:
    ctx.helper("_pool", POOL_HELPER)
    if isinstance(pads, str):  # SAME with sizes known only at run time: _same_pads gives F.pad's order
        ctx.helper("_onnx_pads", ONNX_PADS)
        pads_expr = f"_onnx_pads({pads.format(x=x_expr)})"
    else:
        pads_expr = literal(pads)
    extra = ", True" if count_include_pad else ""
    return (f"_pool({x_expr}, {kind!r}, {literal(kernel)}, {literal(strides)}, {pads_expr}, {literal(dilations)}, "
            f"{ceil_mode}{extra})")


ONNX_PADS = '''
def _onnx_pads(padding):
    """F.pad's order (last dim first, begin/end pairs) back to ONNX's [begin..., end...]."""
    pairs = [padding[i:i + 2] for i in range(0, len(padding), 2)][::-1]
    return [p[0] for p in pairs] + [p[1] for p in pairs]
'''


@converter("MaxPool", 1, 8, 10, 11, 12, 22)
def max_pool(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x, n, kernel, strides, dilations, ceil_mode, pads = _pool_geometry(ctx, node)
    if len(node.output) > 1 and ctx.used(node.output[1]):
        raise NodeNotConvertible("its Indices output (flat ONNX indices) is used by the graph")
    if int(ctx.attr(node, "storage_order", 0)):
        raise NodeNotConvertible("storage_order=1 (column-major indices)")
    if _fits_layer(pads, kernel, dilations):
        args = f"{one_or_tuple(kernel)}, stride={one_or_tuple(strides)}"
        if any(pads):
            args += f", padding={one_or_tuple(pads[:n])}"
        if set(dilations) != {1}:
            args += f", dilation={one_or_tuple(dilations)}"
        if ceil_mode:
            args += ", ceil_mode=True"
        layer = ctx.shared_layer(f"nn.MaxPool{n}d({args})", "max_pool")
        ctx.emit(node.output[0], f"self.{layer}({ctx.t(x)})")
        return
    ctx.emit(node.output[0], _helper_call(ctx, ctx.t(x), "max", kernel, strides, pads, dilations, ceil_mode))


@converter("AveragePool", 1, 7, 10, 11, 19, 22)
def average_pool(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x, n, kernel, strides, dilations, ceil_mode, pads = _pool_geometry(ctx, node)
    if set(dilations) != {1}:
        raise NodeNotConvertible("dilated average pooling has no torch equivalent")
    count_include_pad = bool(ctx.attr(node, "count_include_pad", 0))
    if _fits_layer(pads, kernel, dilations):
        args = f"{one_or_tuple(kernel)}, stride={one_or_tuple(strides)}"
        if any(pads):
            args += f", padding={one_or_tuple(pads[:n])}"
            if not count_include_pad:
                args += ", count_include_pad=False"
        if ceil_mode:
            args += ", ceil_mode=True"
        layer = ctx.shared_layer(f"nn.AvgPool{n}d({args})", "avg_pool")
        ctx.emit(node.output[0], f"self.{layer}({ctx.t(x)})")
        return
    ctx.emit(node.output[0], _helper_call(ctx, ctx.t(x), "avg", kernel, strides, pads, dilations, ceil_mode,
                                          count_include_pad))


def _global(ctx: ImportContext, node: onnx.NodeProto, layer_kind: str, reduce: str) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    rank = ctx.require_rank(x)
    if rank in (3, 4, 5):
        layer = ctx.shared_layer(f"nn.{layer_kind}{rank - 2}d(1)", layer_kind[:8].lower() + "_pool")
        ctx.emit(node.output[0], f"self.{layer}({ctx.t(x)})")
        return
    dims = tuple(range(2, rank))
    ctx.emit(node.output[0], f"{ctx.t(x)}.{reduce}(dim={literal(dims)}, keepdim=True)")


@converter("GlobalAveragePool", 1, 22)
def global_average_pool(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _global(ctx, node, "AdaptiveAvgPool", "mean")


@converter("GlobalMaxPool", 1, 22)
def global_max_pool(ctx: ImportContext, node: onnx.NodeProto) -> None:
    _global(ctx, node, "AdaptiveMaxPool", "amax")


@converter("GlobalLpPool", 1, 2, 22)
def global_lp_pool(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x = ctx.input(node, 0)
    assert x is not None
    rank = ctx.require_rank(x)
    p = int(ctx.attr(node, "p", 2))
    ctx.emit(node.output[0], f"torch.linalg.vector_norm({ctx.t(x)}, {p}, dim={literal(tuple(range(2, rank)))}, "
                             "keepdim=True)")


@converter("LpPool", 1, 2, 11, 18, 22)
def lp_pool(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x, n, kernel, strides, dilations, ceil_mode, pads = _pool_geometry(ctx, node)
    if set(dilations) != {1}:
        raise NodeNotConvertible("dilated Lp pooling")
    if isinstance(pads, str):
        raise NodeNotConvertible("auto_pad SAME with spatial sizes known only at run time")
    p = int(ctx.attr(node, "p", 2))
    x_expr = ctx.t(x)
    if any(pads):
        x_expr = f"F.pad({x_expr}, {literal(torch_pads(pads))})"
    # sum over the window of |x|^p, to the power 1/p (an average times the window size).
    size = 1
    for k in kernel:
        size *= k
    pool = f"F.avg_pool{n}d({x_expr}.abs() ** {p}, {literal(kernel)}, {literal(strides)}, 0, {ceil_mode})"
    ctx.emit(node.output[0], f"({pool} * {size}) ** {literal(1.0 / p)}")
