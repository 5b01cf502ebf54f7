"""Tensors of rank above 5, which Core ML cannot hold, in Reshape/Transpose chains.

Window partitioning (Swin, MaxViT) reshapes a (B, H, W, C) map to rank 6, permutes
it and reshapes it back: ``(B, H/w, w, W/w, w, C) → perm (0, 1, 3, 2, 4, 5) →
(B·H/w·W/w, w·w, C)``. Core ML tensors have rank ≤ 5, so such a tensor is never built:
a :class:`HighRank` value stands for it, holding a MIL tensor with the same elements in
the same row-major order (any shape of rank ≤ 5) plus the logical dims. A reshape of it
is a reshape of that tensor; a transpose is rewritten into transposes of rank ≤ 5:

- axes that are adjacent in the input and stay adjacent, in order, in the output move
  together and are merged; when that leaves at most 5 groups, one transpose does it
  (Swin's partition becomes a rank-4 transpose of (B·H/w, w, W/w, w·C));
- otherwise (MaxViT's grid, ``(0, 2, 4, 1, 3, 5)``), the permutation is done as a
  sequence of swaps of two adjacent blocks of axes, each a rank-≤4 transpose of the
  tensor viewed as (before, block 1, block 2, after).

A Gather whose output has rank > 5 (torch.onnx's im2col for nn.Unfold) starts such a value: the
indices gathered flattened give its elements in order. Any other op given a rank > 5 tensor is
refused, naming the tensor and this limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy

MAX_RANK = 5


@dataclass
class HighRank:
    """A tensor of rank > 5: ``data`` holds its elements in row-major order; ``dims`` are its
    logical dims (ints or sympy expressions); ``sizes`` the same dims at run time, one
    1-element int32 value (numpy constant or MIL Var) each."""

    data: Any
    dims: list[Any]
    sizes: list[Any]
    origin: str

    @property
    def rank(self) -> int:
        return len(self.dims)


def runs(perm: list[int]) -> list[list[int]]:
    """Maximal groups of input axes that are consecutive, in order, in the output of ``perm``."""
    groups: list[list[int]] = []
    for axis in perm:
        if groups and groups[-1][-1] + 1 == axis:
            groups[-1].append(axis)
        else:
            groups.append([axis])
    return groups


def block_swaps(perm: list[int]) -> list[tuple[int, int, int]]:
    """Swaps of adjacent blocks that turn the identity order into ``perm``.

    Each (i, j, k) turns the current order ``cur`` into ``cur[:i] + cur[j:k] + cur[i:j] + cur[k:]``.
    The prefix that matches ``perm`` grows by at least one axis per swap.
    """
    current = list(range(len(perm)))
    swaps = []
    i = 0
    while i < len(perm):
        if current[i] == perm[i]:
            i += 1
            continue
        j = current.index(perm[i])
        k = j + 1
        while k < len(current) and k - j + i < len(perm) and current[k] == perm[k - j + i]:
            k += 1
        swaps.append((i, j, k))
        current = current[:i] + current[j:k] + current[i:j] + current[k:]
        i += k - j
    return swaps


def product(mb: Any, sizes: list[Any]) -> Any:
    """The product of 1-element int32 sizes: a numpy constant when all are, else a MIL value."""
    if all(isinstance(s, np.ndarray) for s in sizes):
        return np.array([int(np.prod([int(s[0]) for s in sizes]))], dtype=np.int32)
    if len(sizes) == 1:
        return sizes[0]
    return mb.reduce_prod(x=mb.concat(values=sizes, axis=0), axes=[0], keep_dims=True)


def shape_vector(mb: Any, sizes: list[Any]) -> Any:
    if all(isinstance(s, np.ndarray) for s in sizes):
        return np.concatenate(sizes).astype(np.int32)
    return mb.concat(values=sizes, axis=0)


def merged(dims: list[Any], sizes: list[Any], groups: list[list[int]], mb: Any, symbolic_dims: Any):
    """(expressions, run-time vector) of the view that merges each group of axes into one."""
    exprs = [symbolic_dims.simplify(sympy.Mul(*[dims[a] for a in group])) for group in groups]
    return exprs, shape_vector(mb, [product(mb, [sizes[a] for a in group]) for group in groups])


def transpose(value: HighRank, perm: list[int], mb: Any, symbolic_dims: Any, name: str) -> HighRank:
    """``value`` transposed by ``perm``, computed with transposes of rank <= 5 only."""
    data = value.data

    def view(groups: list[list[int]], current: list[int]) -> Any:
        exprs, vector = merged([value.dims[a] for a in current], [value.sizes[a] for a in current],
                               [[current.index(a) for a in g] for g in groups], mb, symbolic_dims)
        return symbolic_dims.refine(mb.reshape(x=data, shape=vector), exprs)

    groups = runs(perm)
    if len(groups) <= MAX_RANK:
        order = sorted(groups)  # the groups as they lie in the input
        data = view(order, list(range(value.rank)))
        data = mb.transpose(x=data, perm=[order.index(g) for g in groups], name=name)
    else:
        current = list(range(value.rank))
        swaps = block_swaps(perm)
        for step, (i, j, k) in enumerate(swaps):
            blocks = [b for b in (current[:i], current[i:j], current[j:k], current[k:]) if b]
            data = view(blocks, current)
            first = 1 if current[:i] else 0
            order = list(range(len(blocks)))
            order[first], order[first + 1] = order[first + 1], order[first]
            data = mb.transpose(x=data, perm=order, **({"name": name} if step == len(swaps) - 1 else {}))
            current = current[:i] + current[j:k] + current[i:j] + current[k:]
    return HighRank(data, [value.dims[a] for a in perm], [value.sizes[a] for a in perm], value.origin)
