"""The order in which training visits the data: one seeded permutation per epoch, computed by interop.

Frameworks shuffle with their own generators (each its own algorithm and seeding), so the
same design, weights and seed still see different batches and end at different losses. interop computes the permutations itself and hands them to every trainer
(``TrainData.batch_order``); trainers that follow them see the same batches in the same order.

The generator is SplitMix64 (Steele, Lea and Flood, 2014) and the shuffle Fisher-Yates with
rejection sampling, written out here in plain Python rather than taken from numpy or the
``random`` module, whose streams are not promised to stay the same across versions: a seed
gives the same order in every environment, including a plugin's own virtualenv.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

_MASK = (1 << 64) - 1


def _splitmix64(state: int) -> tuple[int, int]:
    """(next state, 64-bit output)."""
    state = (state + 0x9E3779B97F4A7C15) & _MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return state, z ^ (z >> 31)


def epoch_permutation(n: int, seed: int, epoch: int) -> list[int]:
    """The order of ``range(n)`` for ``epoch`` (1-based) under ``seed`` (0 <= seed < 2**32)."""
    if not 0 <= seed < 1 << 32 or not 0 <= epoch < 1 << 32:
        raise ValueError(f"seed and epoch must lie in [0, 2**32), got {seed}, {epoch}")
    state = (seed << 32) | epoch
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        bound = i + 1
        limit = ((1 << 64) // bound) * bound  # reject the top values so every j is equally likely
        while True:
            state, value = _splitmix64(state)
            if value < limit:
                break
        j = value % bound
        order[i], order[j] = order[j], order[i]
    return order


def batch_order(n: int, epochs: int, seed: int) -> np.ndarray:
    """int64 ``[epochs, n]``: row ``e`` is the permutation epoch ``e + 1`` visits the data in."""
    import numpy as np

    rows = [epoch_permutation(n, seed, epoch) for epoch in range(1, epochs + 1)]
    return np.array(rows, dtype=np.int64).reshape(epochs, n)
