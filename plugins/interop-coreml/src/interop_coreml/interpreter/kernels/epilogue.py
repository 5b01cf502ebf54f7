"""Elementwise work a producing kernel applies to its own result: its bias, then the fused ops.

A kernel given ``ctx.epilogue`` (for example ``("add", "relu")``, the program's fusion,
see program.py) computes its result block by block and calls :meth:`Epilogue.apply`
on each block right after the block's matrix product. The block is walked in slices
of whole rows of about _SLICE_BYTES so that the bias, the add and the relu each read a slice that
is still in the core's cache. The arithmetic is exactly that of the separate ops
(float32 ``add`` then ``maximum``), so a fused run and an op-by-op run give identical
bits. When the add's other operand cannot be cut into the same blocks (it broadcasts,
or has another dtype), the fused ops run after the kernel instead, with numpy's
broadcasting, as the separate ops would.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .activation import relu_into

_SLICE_BYTES = 1 << 18


class Epilogue:
    """The fused ops of one kernel call and the add's operand, laid out like the kernel's output."""

    def __init__(self, ops: tuple[str, ...], operand: Any, shape: tuple[int, ...], dtype: np.dtype,
                 as_blocks: Callable[[np.ndarray], np.ndarray], bias: np.ndarray | None = None):
        """``as_blocks`` maps an array of the result's shape to the kernel's 2-D block layout (a view if it
        can); ``bias`` (one value per row of that layout, shape [rows, 1]) is the kernel's own and comes first."""
        self.ops = tuple(ops)
        unknown = set(self.ops) - {"add", "relu"}
        if unknown:
            raise ValueError(f"unknown epilogue ops {sorted(unknown)}")
        self._bias = bias
        self._operand = operand
        self._blocked = None
        self.deferred = False
        if "add" in self.ops:
            array = np.asarray(operand)
            if array.shape == tuple(shape) and array.dtype == dtype:
                self._blocked = as_blocks(array)
            else:
                self.deferred = True
        self._in_blocks = () if self.deferred else self.ops

    @property
    def block_ops(self) -> tuple[str, ...]:
        """The fused ops :meth:`apply` performs on each block (none when they are deferred to :meth:`finish`)."""
        return self._in_blocks

    def apply(self, block: np.ndarray, index: Any, with_bias: bool = True) -> None:
        """Add the bias (unless the kernel already did) and apply the ops to ``block`` (2-D) in place;
        ``index`` selects the block in the block layout."""
        bias = self._bias[index[0]] if with_bias and self._bias is not None else None
        if bias is None and not self._in_blocks:
            return
        operand = self._blocked[index] if self._blocked is not None and not self.deferred else None
        # Slices of whole rows: numpy's inner loop then runs along a row.
        height = max(1, _SLICE_BYTES // max(1, block.shape[1] * block.itemsize))
        for start in range(0, block.shape[0], height):
            rows = slice(start, start + height)
            piece = block[rows]
            if bias is not None:
                piece += bias[rows]
            for op_type in self._in_blocks:
                if op_type == "add":
                    np.add(piece, operand[rows], out=piece)
                else:
                    relu_into(piece, piece)

    def finish(self, result: np.ndarray) -> np.ndarray:
        """The kernel's final result: itself, or with the deferred ops applied as the separate ops would."""
        if not self.deferred:
            return result
        for op_type in self.ops:
            result = np.add(result, self._operand) if op_type == "add" else np.maximum(result, 0)
        return result
