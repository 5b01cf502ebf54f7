"""Per-tensor layout: how a Keras tensor's axes relate to the ONNX tensor it stands for.

ONNX vision graphs are NCHW; Keras' convolutions and pooling are channels-last.
Instead of rewriting the graph (onnx2tf's special cases), every imported tensor
carries a permutation ``perm``: Keras axis ``i`` holds ONNX axis ``perm[i]``
(nobuco's per-tensor channel order). An op that needs a layout asks for it and
a transpose is inserted only when the tensor is not already in it; an op that
does not care (ReLU, Add, BatchNormalization on any axis) keeps whatever it
gets, and ONNX's own Transpose only changes ``perm``. Graph inputs and outputs
have the identity layout, so the model keeps the ONNX layout at its edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Perm = tuple[int, ...]


def identity(rank: int) -> Perm:
    return tuple(range(rank))


def channels_last(rank: int) -> Perm:
    """NC... -> N...C: the layout Keras' convolutions and pooling use."""
    return (0, *range(2, rank), 1) if rank >= 3 else identity(rank)


def inverse(perm: Perm) -> Perm:
    out = [0] * len(perm)
    for i, p in enumerate(perm):
        out[p] = i
    return tuple(out)


def transpose_between(current: Perm, target: Perm) -> Perm:
    """The transpose of the Keras tensor that turns layout ``current`` into ``target``."""
    position = {axis: i for i, axis in enumerate(current)}
    return tuple(position[axis] for axis in target)


@dataclass(frozen=True)
class Value:
    """An ONNX tensor computed by the Keras graph: the Keras tensor and its layout."""

    tensor: Any
    perm: Perm

    @property
    def rank(self) -> int:
        return len(self.perm)

    @property
    def keras_shape(self) -> tuple[int | None, ...]:
        return tuple(self.tensor.shape)

    @property
    def shape(self) -> tuple[int | None, ...]:
        """The ONNX shape (None for a dimension known only at run time)."""
        kshape = self.keras_shape
        out: list[int | None] = [None] * self.rank
        for i, axis in enumerate(self.perm):
            out[axis] = kshape[i]
        return tuple(out)

    @property
    def dtype(self) -> str:
        return str(self.tensor.dtype)

    def keras_axis(self, onnx_axis: int) -> int:
        """Where ONNX axis ``onnx_axis`` (negative allowed) lives in the Keras tensor."""
        return self.perm.index(onnx_axis % self.rank)
