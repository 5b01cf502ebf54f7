"""The data a check feeds every model: from a file, a built-in data set, or seeded random values.

Samples lie along axis 0 of every input. When that axis is dynamic, the samples
are fed in runs whose sizes are first the ``batch_sizes`` (default 1, 7, 64,
so every model proves it handles several batch sizes), then chunks of
``max_batch`` for the rest. A static axis 0 of size B is fed in runs of B.
Other dynamic dimensions of random inputs get :data:`OTHER_DYNAMIC_DIM`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interop.plugin_api import InteropError, TensorSpec

DEFAULT_BATCH_SIZES = (1, 7, 64)
DEFAULT_MAX_BATCH = 4096
DEFAULT_RANGE = (-1.0, 1.0)
OTHER_DYNAMIC_DIM = 8
DATASETS = ("iris", "iris-grid")


@dataclass
class InputSet:
    """Named input arrays and how they are cut into runs.

    ``plan`` lists the size of each run along axis 0; an empty plan means the
    arrays are fed whole, once (inputs without a sample axis).
    """

    arrays: dict[str, np.ndarray]
    plan: list[int]
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return sum(self.plan) if self.plan else 1

    def runs(self) -> Iterator[dict[str, np.ndarray]]:
        """The feeds of each run, in order."""
        if not self.plan:
            yield dict(self.arrays)
            return
        start = 0
        for size in self.plan:
            yield {name: value[start:start + size] for name, value in self.arrays.items()}
            start += size

    def sample(self, index: int) -> dict[str, np.ndarray]:
        """The inputs of one sample (kept as a batch of one), for failure reproduction."""
        if not self.plan:
            return dict(self.arrays)
        return {name: value[index:index + 1] for name, value in self.arrays.items()}

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "samples": self.samples,
            "runs": list(self.plan),
            "inputs": {n: {"dtype": str(a.dtype), "shape": list(a.shape)} for n, a in self.arrays.items()},
            "notes": list(self.notes),
        }


def parse_batch_sizes(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"1,7,64"`` -> ``(1, 7, 64)``; sizes must be positive integers."""
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        sizes = tuple(int(item) for item in items)
    except (TypeError, ValueError):
        raise InteropError(f"batch sizes {text!r} are not integers", hint="for example --batch-sizes 1,7,64") from None
    if not sizes or any(size < 1 for size in sizes):
        raise InteropError(f"batch sizes {text!r} must be positive integers")
    return sizes


def parse_range(text: str | Sequence[float]) -> tuple[float, float]:
    """``"-1,1"`` -> ``(-1.0, 1.0)``; LOW must be below HIGH."""
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        low, high = (float(item) for item in items)
    except (TypeError, ValueError):
        raise InteropError(f"range {text!r} is not LOW,HIGH", hint="for example --range -1,1") from None
    if not low < high:
        raise InteropError(f"range {text!r}: LOW must be smaller than HIGH")
    return low, high


# ------------------------------------------------------------------------ run plans


def _axis0(specs: Sequence[TensorSpec]) -> int | None | str:
    """The static size of axis 0 shared by the inputs, None if dynamic, "none" if they have no axis 0."""
    if not specs or any(len(spec.shape) == 0 for spec in specs):
        return "none"
    static = [spec.shape[0] for spec in specs if not spec.is_dynamic(0)]
    return static[0] if static else None


def plan_runs(
    samples: int, specs: Sequence[TensorSpec], batch_sizes: Sequence[int], max_batch: int
) -> list[int]:
    """Sizes of the runs that feed ``samples`` samples to models with these input specs."""
    axis0 = _axis0(specs)
    if axis0 == "none":
        return []
    if isinstance(axis0, int):
        if samples % axis0:
            raise InteropError(
                f"the model's inputs have a fixed batch of {axis0}, but there are {samples} samples",
                hint=f"give a multiple of {axis0} samples",
            )
        return [axis0] * (samples // axis0)
    plan: list[int] = []
    left = samples
    for size in batch_sizes:
        if left == 0:
            break
        take = min(size, left)
        plan.append(take)
        left -= take
    chunk = max(max_batch, max(batch_sizes))
    while left > 0:
        take = min(chunk, left)
        plan.append(take)
        left -= take
    return plan


# ------------------------------------------------------------------------ sources


def _check_names(given: Sequence[str], specs: Sequence[TensorSpec], where: str) -> None:
    expected = [spec.name for spec in specs]
    missing = [n for n in expected if n not in given]
    extra = [n for n in given if n not in expected]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected {', '.join(extra)}")
        raise InteropError(
            f"{where} does not match the model's inputs: {'; '.join(parts)}",
            hint=f"the model's inputs are: {', '.join(expected) or '(none)'}",
        )


def cast_to_spec(value: np.ndarray, spec: TensorSpec, where: str) -> np.ndarray:
    """``value`` in the spec's dtype when the cast keeps its kind (float64 -> float32); else exit 2."""
    try:
        target = np.dtype(spec.dtype)
    except TypeError:
        return value  # a dtype numpy does not name (strings, opaque types): feed as given
    if value.dtype == target:
        return value
    if np.can_cast(value.dtype, target, casting="same_kind") or (
        np.issubdtype(value.dtype, np.integer) and np.issubdtype(target, np.floating)
    ):
        return value.astype(target)
    raise InteropError(
        f"{where}: input {spec.name} holds {value.dtype}, the model expects {target}",
        hint="save the inputs in the model's dtype",
    )


def _check_shape(value: np.ndarray, spec: TensorSpec, where: str) -> None:
    if len(spec.shape) != value.ndim:
        raise InteropError(
            f"{where}: input {spec.name} has shape {value.shape}, the model expects rank {len(spec.shape)} "
            f"({_shape_text(spec.shape)})"
        )
    for axis, dim in enumerate(spec.shape):
        if axis > 0 and isinstance(dim, int) and value.shape[axis] != dim:
            raise InteropError(
                f"{where}: input {spec.name} has shape {value.shape}, the model expects {_shape_text(spec.shape)}"
            )


def _shape_text(shape: Sequence[Any]) -> str:
    return "(" + ", ".join("?" if not isinstance(d, int) else str(d) for d in shape) + ")"


def _sample_count(arrays: Mapping[str, np.ndarray], specs: Sequence[TensorSpec], where: str) -> int:
    if _axis0(specs) == "none":
        return 1
    counts = {name: value.shape[0] for name, value in arrays.items()}
    if len(set(counts.values())) > 1:
        raise InteropError(f"{where}: inputs disagree on the number of samples: {counts}")
    return next(iter(counts.values()), 0)


def from_arrays(
    arrays: Mapping[str, np.ndarray], specs: Sequence[TensorSpec], source: str,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, max_batch: int = DEFAULT_MAX_BATCH,
) -> InputSet:
    """Validate named arrays against the model's inputs (names, rank, fixed dims, dtype kind)."""
    _check_names(list(arrays), specs, source)
    prepared: dict[str, np.ndarray] = {}
    for spec in specs:
        value = np.asarray(arrays[spec.name])
        _check_shape(value, spec, source)
        prepared[spec.name] = cast_to_spec(value, spec, source)
    samples = _sample_count(prepared, specs, source)
    if samples == 0:
        raise InteropError(f"{source} holds no samples")
    return InputSet(prepared, plan_runs(samples, specs, batch_sizes, max_batch), source)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Arrays of an .npz file (pickled objects refused: files may come from anywhere)."""
    path = Path(path)
    if not path.is_file():
        raise InteropError(f"inputs file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except (OSError, ValueError) as exc:
        raise InteropError(f"{path} is not a readable .npz file: {exc}") from None


def from_npz(
    path: Path, specs: Sequence[TensorSpec],
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, max_batch: int = DEFAULT_MAX_BATCH,
) -> InputSet:
    return from_arrays(load_npz(path), specs, f"inputs file {path}", batch_sizes, max_batch)


def from_dataset(
    name: str, specs: Sequence[TensorSpec], samples: int | None = None,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, max_batch: int = DEFAULT_MAX_BATCH,
) -> InputSet:
    """The Iris samples (``iris``) or a grid over the petal plane (``iris-grid``) for a 2-feature input."""
    from interop.datasets import iris_grid, load_iris

    if name not in DATASETS:
        raise InteropError(f"unknown data set {name!r}", hint=f"known: {', '.join(DATASETS)}")
    fits = len(specs) == 1 and len(specs[0].shape) == 2 and (
        specs[0].is_dynamic(1) or specs[0].shape[1] == 2
    )
    if not fits:
        shown = ", ".join(f"{s.name} {_shape_text(s.shape)}" for s in specs)
        raise InteropError(
            f"data set {name} feeds one input of shape (?, 2); the model's inputs are {shown}",
            hint="use --inputs FILE.npz or random inputs for this model",
        )
    data = load_iris()[0] if name == "iris" else iris_grid()[2]
    if samples is not None:
        data = data[:samples]
    return from_arrays({specs[0].name: data}, specs, f"data set {name}", batch_sizes, max_batch)


def random_inputs(
    specs: Sequence[TensorSpec], *, seed: int = 0, value_range: tuple[float, float] = DEFAULT_RANGE,
    samples: int | None = None, batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> InputSet:
    """Seeded uniform values in ``value_range`` with the declared names, dtypes and shapes."""
    if not specs:
        raise InteropError("the model declares no inputs; nothing to generate")
    axis0 = _axis0(specs)
    if samples is None:
        samples = 1 if axis0 == "none" else (axis0 if isinstance(axis0, int) else sum(batch_sizes))
    if samples < 1:
        raise InteropError("--samples must be at least 1")
    rng = np.random.default_rng(seed)
    low, high = value_range
    arrays: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for spec in specs:
        dims = []
        for axis, dim in enumerate(spec.shape):
            if axis == 0 and axis0 != "none":
                dims.append(samples)
            elif isinstance(dim, int):
                dims.append(dim)
            else:
                dims.append(OTHER_DYNAMIC_DIM)
                notes.append(f"{spec.name} axis {axis} is dynamic: generated with size {OTHER_DYNAMIC_DIM}")
        arrays[spec.name] = _random_array(rng, spec.dtype, tuple(dims), low, high)
    source = f"random (seed {seed}, range {low:g},{high:g})"
    result = InputSet(arrays, plan_runs(samples, specs, batch_sizes, max_batch), source, notes)
    return result


def _random_array(rng: np.random.Generator, dtype: str, shape: tuple[int, ...], low: float, high: float) -> np.ndarray:
    try:
        target = np.dtype(dtype)
    except TypeError:
        raise InteropError(
            f"cannot generate random inputs of type {dtype!r}", hint="pass --inputs FILE.npz"
        ) from None
    if target == np.bool_:
        return rng.random(shape) < 0.5
    if np.issubdtype(target, np.integer):
        return rng.integers(int(np.floor(low)), int(np.floor(high)) + 1, size=shape).astype(target)
    if np.issubdtype(target, np.floating):
        return rng.uniform(low, high, size=shape).astype(target)
    raise InteropError(f"cannot generate random inputs of type {dtype}", hint="pass --inputs FILE.npz")
