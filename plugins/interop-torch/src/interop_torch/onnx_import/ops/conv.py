"""Conv and ConvTranspose (1-D, 2-D, 3-D) as nn.ConvNd / nn.ConvTransposeNd layers owning their weights."""

from __future__ import annotations

import onnx

from interop_torch.onnx_import.context import ImportContext, NodeNotConvertible, literal
from interop_torch.onnx_import.ops._common import (
    dtype_kw,
    kwargs,
    one_or_tuple,
    padded_input,
    spatial_pads,
    symmetric,
)
from interop_torch.onnx_import.module_table import converter


def _weights(w, b) -> dict:  # type: ignore[no-untyped-def]
    """The state a conv layer owns: its weight and, when the node has one, its bias."""
    state = {"weight": (w.array, w, True)}
    if b is not None:
        state["bias"] = (b.array, b, True)
    return state


def _geometry(ctx: ImportContext, node: onnx.NodeProto, weight_shape: tuple) -> tuple[int, list[int], list[int], list[int]]:
    if weight_shape is None or len(weight_shape) not in (3, 4, 5):
        raise NodeNotConvertible("only 1-D, 2-D and 3-D convolutions have a torch layer (the weight's rank is "
                                 f"{'unknown' if weight_shape is None else len(weight_shape)})")
    n = len(weight_shape) - 2
    kernel = list(ctx.attr(node, "kernel_shape") or weight_shape[2:])
    if any(not isinstance(k, int) for k in kernel):
        raise NodeNotConvertible("the kernel size is not known")
    strides = list(ctx.attr(node, "strides") or [1] * n)
    dilations = list(ctx.attr(node, "dilations") or [1] * n)
    return n, kernel, strides, dilations


@converter("Conv", 1, 11, 22)
def conv(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x, w, b = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    assert x is not None and w is not None
    n, kernel, strides, dilations = _geometry(ctx, node, ctx.static_shape(w))
    group = int(ctx.attr(node, "group", 1))
    pads = spatial_pads(ctx, node, x, kernel, strides, dilations)
    x_expr = ctx.t(x)
    padding = None
    if symmetric(pads):
        padding = one_or_tuple(pads[:n]) if any(pads) else None
    else:
        x_expr = padded_input(ctx, x_expr, pads)
    if ctx.owns(w) and (b is None or ctx.owns(b)):
        out_ch, in_ch = w.array.shape[0], w.array.shape[1] * group
        args = kwargs(stride=one_or_tuple(strides) if set(strides) != {1} else None, padding=padding,
                      dilation=one_or_tuple(dilations) if set(dilations) != {1} else None,
                      groups=group if group != 1 else None, bias="False" if b is None else None)
        ctor = f"nn.Conv{n}d({in_ch}, {out_ch}, kernel_size={one_or_tuple(kernel)}{args}{dtype_kw(w.array)})"
        layer = ctx.add_layer(ctor, _weights(w, b))
        ctx.emit(node.output[0], f"self.{layer}({x_expr})")
        return
    bias = ctx.t(b) if b is not None else "None"
    ctx.emit(node.output[0], f"F.conv{n}d({x_expr}, {ctx.t(w)}, {bias}, {literal(strides)}, "
                             f"{literal(list(pads[:n])) if padding else 0}, {literal(dilations)}, {group})")


@converter("ConvTranspose", 1, 11, 22)
def conv_transpose(ctx: ImportContext, node: onnx.NodeProto) -> None:
    x, w, b = ctx.input(node, 0), ctx.input(node, 1), ctx.input(node, 2)
    assert x is not None and w is not None
    n, kernel, strides, dilations = _geometry(ctx, node, ctx.static_shape(w))
    group = int(ctx.attr(node, "group", 1))
    output_padding = list(ctx.attr(node, "output_padding") or [0] * n)
    output_shape = ctx.attr(node, "output_shape")
    auto_pad = ctx.attr(node, "auto_pad", "NOTSET")
    shape = ctx.static_shape(x)
    spatial = list(shape[2:]) if shape is not None and len(shape) == n + 2 else [None] * n
    if output_shape or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if any(not isinstance(s, int) for s in spatial):
            raise NodeNotConvertible("output_shape or auto_pad SAME needs the input's spatial size, which is dynamic")
        targets = list(output_shape)[-n:] if output_shape else [s * st for s, st in zip(spatial, strides)]
        begins, ends = [], []
        for i in range(n):
            total = strides[i] * (spatial[i] - 1) + output_padding[i] + (kernel[i] - 1) * dilations[i] + 1 - targets[i]
            if total < 0:
                # A larger output than the kernel covers: torch adds those rows with output_padding.
                output_padding[i] -= total
                total = 0
            upper = auto_pad == "SAME_UPPER"
            begins.append(total // 2 if upper else total - total // 2)
            ends.append(total - total // 2 if upper else total // 2)
        pads = begins + ends
    elif auto_pad == "VALID":
        pads = [0] * (2 * n)
    else:
        pads = list(ctx.attr(node, "pads") or [0] * (2 * n))
    if any(p < 0 for p in pads):
        raise NodeNotConvertible("negative pads")
    common = [min(pads[i], pads[i + n]) for i in range(n)]
    extra_begin = [pads[i] - common[i] for i in range(n)]
    extra_end = [pads[i + n] - common[i] for i in range(n)]
    for i in range(n):
        if output_padding[i] >= max(strides[i], dilations[i]):
            raise NodeNotConvertible(f"output_padding {output_padding[i]} is not below the stride or dilation")
    crop = ""
    if any(extra_begin) or any(extra_end):
        parts = [f"{eb}:{-ee if ee else ''}" if (eb or ee) else ":" for eb, ee in zip(extra_begin, extra_end)]
        crop = "[:, :, " + ", ".join(parts) + "]"
    if ctx.owns(w) and (b is None or ctx.owns(b)):
        in_ch, out_ch = w.array.shape[0], w.array.shape[1] * group
        args = kwargs(stride=one_or_tuple(strides) if set(strides) != {1} else None,
                      padding=one_or_tuple(common) if any(common) else None,
                      output_padding=one_or_tuple(output_padding) if any(output_padding) else None,
                      groups=group if group != 1 else None, bias="False" if b is None else None,
                      dilation=one_or_tuple(dilations) if set(dilations) != {1} else None)
        ctor = f"nn.ConvTranspose{n}d({in_ch}, {out_ch}, kernel_size={one_or_tuple(kernel)}{args}{dtype_kw(w.array)})"
        layer = ctx.add_layer(ctor, _weights(w, b))
        ctx.emit(node.output[0], f"self.{layer}({ctx.t(x)}){crop}")
        return
    bias = ctx.t(b) if b is not None else "None"
    ctx.emit(node.output[0], f"F.conv_transpose{n}d({ctx.t(x)}, {ctx.t(w)}, {bias}, {literal(strides)}, "
                             f"{literal(common)}, {literal(output_padding)}, {group}, {literal(dilations)}){crop}")
