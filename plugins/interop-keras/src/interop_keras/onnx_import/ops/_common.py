"""Helpers the op families share: spatial attributes, padding rules, weights on layers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from interop_keras.onnx_import.context import Constant, NodeContext, NotConvertible


@dataclass
class Spatial:
    """Kernel, strides, dilations and explicit [before, after] pads of a conv or pooling node."""

    kernel: list[int]
    strides: list[int]
    dilations: list[int]
    pads: list[tuple[int, int]]
    auto_pad: str

    @property
    def effective_kernel(self) -> list[int]:
        return [(k - 1) * d + 1 for k, d in zip(self.kernel, self.dilations)]


def spatial_attributes(ctx: NodeContext, kernel: list[int], sizes: list[int | None]) -> Spatial:
    """Read strides/dilations/pads/auto_pad; SAME_* pads need the spatial ``sizes`` (None: unknown)."""
    n = len(kernel)
    strides = list(ctx.attr("strides", [1] * n))
    dilations = list(ctx.attr("dilations", [1] * n))
    auto_pad = ctx.attr("auto_pad", "NOTSET") or "NOTSET"
    raw = list(ctx.attr("pads", [0] * (2 * n)))
    if len(strides) != n or len(dilations) != n or len(raw) != 2 * n:
        raise NotConvertible("strides, dilations or pads do not match the kernel's rank")
    spatial = Spatial(list(kernel), strides, dilations, [(raw[i], raw[i + n]) for i in range(n)], auto_pad)
    if auto_pad == "VALID":
        spatial.pads = [(0, 0)] * n
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if auto_pad == "SAME_UPPER" and any(s is None for s in sizes):
            return spatial  # Keras' 'same' is SAME_UPPER for any size; the caller checks auto_pad
        if any(s is None for s in sizes):
            raise NotConvertible("auto_pad SAME_LOWER on a tensor whose spatial size is known only at run time")
        spatial.pads = same_pads(sizes, spatial, upper=auto_pad == "SAME_UPPER")  # type: ignore[arg-type]
    elif auto_pad != "NOTSET":
        raise NotConvertible(f"unknown auto_pad {auto_pad!r}")
    return spatial


def same_pads(sizes: list[int], spatial: Spatial, upper: bool = True) -> list[tuple[int, int]]:
    """TensorFlow's (and ONNX SAME_UPPER's) padding: output = ceil(size / stride), extra at the end."""
    pads = []
    for size, stride, k_eff in zip(sizes, spatial.strides, spatial.effective_kernel):
        out = -(-size // stride)
        total = max((out - 1) * stride + k_eff - size, 0)
        small = total // 2
        pads.append((small, total - small) if upper else (total - small, small))
    return pads


def keras_padding(spatial: Spatial, sizes: list[int | None]) -> str | None:
    """'valid' or 'same' when Keras' own padding equals the node's pads, else None (pad explicitly)."""
    if spatial.auto_pad == "SAME_UPPER" and all(p == (0, 0) for p in spatial.pads) and any(s is None for s in sizes):
        return "same"
    if all(p == (0, 0) for p in spatial.pads):
        return "valid"
    if all(s == 1 for s in spatial.strides):
        same = [(k - 1) // 2 for k in spatial.effective_kernel]
        if all(p == (b, k - 1 - b) for p, b, k in zip(spatial.pads, same, spatial.effective_kernel)):
            return "same"
    if all(s is not None for s in sizes) and spatial.pads == same_pads(sizes, spatial):  # type: ignore[arg-type]
        return "same"
    return None


def spatial_sizes(shape: tuple[int | None, ...]) -> list[int | None]:
    """The spatial sizes of an NC... ONNX shape."""
    return list(shape[2:])


def set_weight(ctx: NodeContext, variable: Any, constant: Constant, value: np.ndarray,
               to_source: Callable[[np.ndarray], np.ndarray]) -> None:
    """Give ``variable`` ``value`` (the constant in Keras' layout) and record how to map it back."""
    if tuple(variable.shape) != tuple(value.shape):
        raise NotConvertible(f"weight {constant.source or ''} has shape {value.shape}, Keras expects {tuple(variable.shape)}")
    variable.assign(value.astype(variable.dtype if isinstance(variable.dtype, str) else "float32"))
    ctx.bind(constant, variable, to_source)


def float_array(constant: Constant) -> np.ndarray:
    value = np.asarray(constant.value)
    if value.dtype.kind != "f":
        raise NotConvertible(f"expected a floating-point constant, got {value.dtype}")
    return value.astype(np.float32)
