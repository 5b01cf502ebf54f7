"""Pieces several op families share: padding arithmetic, dims, dtype keywords."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx

from interop_torch.onnx_import.context import ImportContext, NodeNotConvertible, Value, literal, torch_dtype


def dtype_kw(array_or_dtype: Any) -> str:
    """``, dtype=torch.float16`` for layers whose weights are not float32 (nn layers default to it)."""
    dtype = array_or_dtype.dtype if hasattr(array_or_dtype, "dtype") else array_or_dtype
    if dtype is None or np.dtype(dtype) == np.float32:
        return ""
    return f", dtype={torch_dtype(np.dtype(dtype))}"


def norm_axis(axis: int, rank: int | None) -> int:
    if axis < 0:
        if rank is None:
            raise NodeNotConvertible("a negative axis needs the input's rank, which is unknown")
        axis += rank
    return axis


def torch_pads(pads: list[int]) -> list[int]:
    """ONNX pads ``[b1, b2, ..., e1, e2, ...]`` as F.pad wants them: last dim first, (begin, end) pairs."""
    n = len(pads) // 2
    result: list[int] = []
    for i in reversed(range(n)):
        result += [pads[i], pads[i + n]]
    return result


def spatial_pads(ctx: ImportContext, node: onnx.NodeProto, x: Value, kernel: list[int], strides: list[int],
                 dilations: list[int]) -> list[int] | str:
    """The node's explicit ONNX pads, or the name of a run-time helper call when SAME needs unknown sizes."""
    n = len(kernel)
    auto_pad = ctx.attr(node, "auto_pad", "NOTSET")
    if auto_pad in ("NOTSET", ""):
        pads = ctx.attr(node, "pads") or [0] * (2 * n)
        if len(pads) != 2 * n:
            raise NodeNotConvertible(f"pads has {len(pads)} values for {n} spatial dims")
        return list(pads)
    if auto_pad == "VALID":
        return [0] * (2 * n)
    if auto_pad not in ("SAME_UPPER", "SAME_LOWER"):
        raise NodeNotConvertible(f"auto_pad {auto_pad!r} is not an ONNX value")
    upper = auto_pad == "SAME_UPPER"
    shape = ctx.static_shape(x)
    begins, ends = [], []
    for i in range(n):
        size = shape[2 + i] if shape is not None and len(shape) == n + 2 else None
        if strides[i] == 1:
            total = (kernel[i] - 1) * dilations[i]
        elif isinstance(size, int):
            out = -(-size // strides[i])
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size, 0)
        else:
            ctx.helper("_same_pads", SAME_PADS)
            return f"_same_pads({{x}}, {literal(kernel)}, {literal(strides)}, {literal(dilations)}, {upper})"
        small = total // 2
        begins.append(small if upper else total - small)
        ends.append(total - small if upper else small)
    return begins + ends


SAME_PADS = '''
def _same_pads(x, kernel, stride, dilation, upper):
    """F.pad amounts for ONNX auto_pad SAME_UPPER/SAME_LOWER on x's spatial dims (last dim first)."""
    pads = []
    for i in reversed(range(len(kernel))):
        size = x.shape[2 + i]
        total = max((-(-size // stride[i]) - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1 - size, 0)
        small = total // 2
        pads += [small, total - small] if upper else [total - small, small]
    return pads
'''


def padded_input(ctx: ImportContext, x_expr: str, pads: list[int] | str, value: float | None = None) -> str:
    """``x`` with ``pads`` applied by F.pad (constant ``value``, zero by default)."""
    fill = "" if value is None else f", value={literal(value)}"
    if isinstance(pads, str):
        return f"F.pad({x_expr}, {pads.format(x=x_expr)}{fill})"
    return f"F.pad({x_expr}, {literal(torch_pads(pads))}{fill})"


def symmetric(pads: list[int] | str) -> bool:
    if isinstance(pads, str):
        return False
    n = len(pads) // 2
    return pads[:n] == pads[n:]


def one_or_tuple(values: list[int]) -> str:
    """``3`` when every value is 3, else ``(3, 5)``: how a person writes layer arguments."""
    return literal(values[0]) if len(set(values)) == 1 else literal(tuple(values))


def kwargs(**items: Any) -> str:
    """``, a=1, b=(2, 3)`` for the items whose value is not None."""
    return "".join(f", {k}={v}" for k, v in items.items() if v is not None)
