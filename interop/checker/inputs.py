"""The data a check feeds every model: from a file, a built-in data set, or seeded random values.

Samples lie along axis 0 of every input. When that axis is dynamic, the samples
are fed in runs whose sizes are first the ``batch_sizes`` (default 1, 7, 64,
so every model proves it handles several batch sizes), then chunks of
``max_batch`` for the rest. A static axis 0 of size B is fed in runs of B.
Other dynamic dimensions of random inputs get :data:`OTHER_DYNAMIC_DIM`.
Inputs are sized before anything is allocated: beyond :func:`max_input_bytes`
(2 GiB unless ``INTEROP_MAX_INPUT_BYTES`` says otherwise) they are refused, exit 2.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
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
#: Inputs larger than this (generated, or read from an .npz) are refused before anything is allocated.
DEFAULT_MAX_INPUT_BYTES = 2 << 30
MAX_INPUT_BYTES_VARIABLE = "INTEROP_MAX_INPUT_BYTES"


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
    #: The value range each generated input was drawn from (empty for given inputs).
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)

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

    def feed_for(self, index: int) -> tuple[dict[str, np.ndarray], int]:
        """Feeds holding sample ``index``, and its position in them.

        The sample alone (a batch of one), except when every run has the same size B > 1
        (a model with a fixed batch): then the whole run holding it.
        """
        if not self.plan:
            return dict(self.arrays), 0
        if len(set(self.plan)) == 1 and self.plan[0] > 1:
            size = self.plan[0]
            start = (index // size) * size
            return {name: value[start:start + size] for name, value in self.arrays.items()}, index - start
        return self.sample(index), 0

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "samples": self.samples,
            "runs": list(self.plan),
            "inputs": {
                n: {"dtype": str(a.dtype), "shape": list(a.shape),
                    **({"range": list(self.ranges[n])} if n in self.ranges else {})}
                for n, a in self.arrays.items()
            },
            "notes": list(self.notes),
        }


def _positive_int(value: Any, what: str) -> int:
    """``value`` as an int >= 1 (booleans and non-integral numbers refused), else exit 2."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InteropError(f"{what} must be a positive integer, got {value!r}")
    return int(value)


def parse_batch_sizes(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"1,7,64"`` -> ``(1, 7, 64)``; sizes must be positive integers."""
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        sizes = tuple(int(item.strip()) if isinstance(item, str) else item for item in items)
    except (TypeError, ValueError):
        raise InteropError(f"batch sizes {text!r} are not integers", hint="for example --batch-sizes 1,7,64") from None
    if not sizes or any(isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1
                        for size in sizes):
        raise InteropError(f"batch sizes {text!r} must be positive integers", hint="for example --batch-sizes 1,7,64")
    return tuple(int(size) for size in sizes)


def parse_range(text: str | Sequence[float]) -> tuple[float, float]:
    """``"-1,1"`` -> ``(-1.0, 1.0)``; finite numbers, LOW below HIGH, a width a float can hold."""
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        low, high = (float(item) for item in items)
    except (TypeError, ValueError):
        raise InteropError(f"range {text!r} is not LOW,HIGH", hint="for example --range -1,1") from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InteropError(f"range {text!r}: LOW and HIGH must be finite numbers", hint="for example --range -1,1")
    if not low < high:
        raise InteropError(f"range {text!r}: LOW must be smaller than HIGH", hint="for example --range -1,1")
    if not math.isfinite(high - low):
        raise InteropError(f"range {text!r} is too wide: HIGH - LOW overflows a float",
                           hint="for example --range -1e300,1e300")
    return low, high


def check_seed(seed: Any) -> int:
    """A seed numpy accepts: a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InteropError(f"--seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def check_max_batch(max_batch: Any) -> int:
    """The batch size of the runs after --batch-sizes: a positive integer."""
    return _positive_int(max_batch, "--max-batch")


def check_samples(samples: Any) -> int | None:
    """``None`` (the default number) or a positive integer."""
    if samples is None:
        return None
    if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
        raise InteropError(f"--samples must be at least 1, got {samples!r}")
    return int(samples)


def max_input_bytes() -> int:
    """The input size limit: :data:`DEFAULT_MAX_INPUT_BYTES`, or the INTEROP_MAX_INPUT_BYTES variable."""
    raw = os.environ.get(MAX_INPUT_BYTES_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_MAX_INPUT_BYTES
    try:
        limit = int(float(raw))
    except (ValueError, OverflowError):
        raise InteropError(f"{MAX_INPUT_BYTES_VARIABLE}={raw!r} is not a number of bytes") from None
    if limit < 1:
        raise InteropError(f"{MAX_INPUT_BYTES_VARIABLE}={raw!r} must be positive")
    return limit


def format_bytes(count: int) -> str:
    """``3 * 2**30`` -> ``"3.0 GiB"``."""
    value = float(count)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if value < 1024 or unit == "EiB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} EiB"  # pragma: no cover


def _too_big(what: str, count: int, limit: int, hint: str) -> InteropError:
    return InteropError(
        f"{what} would take {format_bytes(count)}, more than the {format_bytes(limit)} limit",
        hint=f"{hint}; {MAX_INPUT_BYTES_VARIABLE}=N raises the limit",
    )


_GENERATE_HINT = "use fewer samples (--samples, --batch-sizes) or smaller runs (--max-batch), or pass --inputs FILE.npz"


# ------------------------------------------------------------------------ run plans


def _axis0(specs: Sequence[TensorSpec]) -> int | None | str:
    """The static size of axis 0 shared by the inputs, None if dynamic, "none" if they share no axis 0.

    Inputs share no sample axis when one is rank 0 or when two fix axis 0 to different sizes
    (``x: (4,)`` and ``w: (3, 4)``): the inputs are then one sample, fed as they are.
    """
    if not specs or any(len(spec.shape) == 0 for spec in specs):
        return "none"
    static = {spec.shape[0] for spec in specs if not spec.is_dynamic(0)}
    if len(static) > 1:
        return "none"
    return static.pop() if static else None


def plan_runs(
    samples: int, specs: Sequence[TensorSpec], batch_sizes: Sequence[int], max_batch: int
) -> list[int]:
    """Sizes of the runs that feed ``samples`` samples to models with these input specs."""
    max_batch = _positive_int(max_batch, "--max-batch")
    batch_sizes = parse_batch_sizes(batch_sizes)
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


def load_npz(path: Path, what: str = "inputs file") -> dict[str, np.ndarray]:
    """Arrays of an .npz file, read defensively: files may come from anywhere.

    Every member must be a plain ``.npy`` array (no pickled objects); each array's
    header is read first and its size checked against :func:`max_input_bytes`
    before anything is allocated, and a truncated or corrupt archive is exit 2.
    """
    path = Path(path)
    if not path.exists():
        raise InteropError(f"{what} {path} does not exist")
    if not path.is_file():
        raise InteropError(f"{what} {path} is not a file")
    limit = max_input_bytes()
    total = 0
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.infolist():
                if member.is_dir():
                    continue
                if not member.filename.endswith(".npy"):
                    raise InteropError(
                        f"{what} {path} is not an .npz of arrays: it holds {member.filename!r}, not a .npy array",
                        hint="write it with numpy.savez",
                    )
                name = member.filename[: -len(".npy")]
                with archive.open(member) as handle:
                    dtype, shape = _npy_header(handle, f"{what} {path}", name)
                total += math.prod(shape) * dtype.itemsize
                if total > limit:
                    raise _too_big(f"{what} {path}", total, limit, "pass fewer samples")
                with archive.open(member) as handle:
                    arrays[name] = np.lib.format.read_array(handle, allow_pickle=False)
    except InteropError:
        raise
    except MemoryError:
        raise InteropError(f"{what} {path}: not enough memory to read it", hint="pass fewer samples") from None
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zipfile.LargeZipFile,
            zlib.error, NotImplementedError) as exc:
        # zipfile/zlib/numpy report truncation and corruption with many types; all mean "not readable".
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InteropError(f"{what} {path} is not a readable .npz file: {detail}",
                           hint="it may be truncated or corrupt; write it again with numpy.savez") from None
    return arrays


def _npy_header(handle: Any, where: str, name: str) -> tuple[np.dtype, tuple[int, ...]]:
    """The dtype and shape an .npy member declares; object (pickled) arrays are refused."""
    fmt = np.lib.format
    version = fmt.read_magic(handle)
    if version == (1, 0):
        shape, _, dtype = fmt.read_array_header_1_0(handle)
    elif version in ((2, 0), (3, 0)):  # 3.0 differs only by a UTF-8 header
        shape, _, dtype = fmt.read_array_header_2_0(handle)
    else:
        raise InteropError(f"{where}: array {name} has an unknown .npy version {version}")
    if dtype.hasobject:
        raise InteropError(
            f"{where}: array {name} holds Python objects, which would have to be unpickled; refused",
            hint="save plain numeric arrays",
        )
    if any(not isinstance(dim, int) or dim < 0 for dim in shape):
        raise InteropError(f"{where}: array {name} declares an invalid shape {shape}")
    return dtype, tuple(shape)


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
    samples = check_samples(samples)
    data = load_iris()[0] if name == "iris" else iris_grid()[2]
    if samples is not None:
        data = data[:samples]
    return from_arrays({specs[0].name: data}, specs, f"data set {name}", batch_sizes, max_batch)


#: Values of integer inputs with no declared or given range: valid for masks, token types, small ids.
DEFAULT_INT_RANGE = (0.0, 1.0)


def parse_range_options(
    items: str | Sequence[str] | Sequence[float] | Mapping[str, Any] | None,
) -> tuple[tuple[float, float] | None, dict[str, tuple[float, float]]]:
    """``--range`` values -> (range of every input or None, {input: range}).

    Accepts ``"LOW,HIGH"``, ``(LOW, HIGH)``, ``{"name": (LOW, HIGH)}`` or a list of
    command-line strings, each ``LOW,HIGH`` (every input) or ``NAME=LOW,HIGH``.
    """
    if items is None:
        return None, {}
    if isinstance(items, Mapping):
        return None, {str(name): parse_range(value) for name, value in items.items()}
    if isinstance(items, str) or (len(items) == 2 and not any(isinstance(i, str) for i in items)):
        return parse_range(items), {}  # type: ignore[arg-type]
    every: tuple[float, float] | None = None
    per_input: dict[str, tuple[float, float]] = {}
    for text in items:
        name, sep, numbers = str(text).rpartition("=")
        if sep and not name.strip():
            raise InteropError(f"--range {text!r} is not LOW,HIGH or NAME=LOW,HIGH", hint="for example --range ids=0,999")
        if sep:
            per_input[name.strip()] = parse_range(numbers)
        else:
            every = parse_range(numbers)
    return every, per_input


def parse_shape_options(
    items: Sequence[str] | Mapping[str, Sequence[int]] | None,
) -> dict[str, tuple[int, ...]]:
    """``--input-shape NAME=d0,d1,...`` values (or ``{name: dims}``) -> ``{name: dims}``; positive ints."""
    if not items:
        return {}
    pairs: list[tuple[str, Any]] = []
    if isinstance(items, Mapping):
        pairs = [(str(name), dims) for name, dims in items.items()]
    else:
        for text in items:
            name, sep, dims = str(text).rpartition("=")
            if not sep or not name.strip():
                raise InteropError(f"--input-shape {text!r} is not NAME=D0,D1,...",
                                   hint="for example --input-shape x=1,3,224,224")
            pairs.append((name.strip(), dims.split(",") if dims.strip() else []))
    shapes: dict[str, tuple[int, ...]] = {}
    for name, dims in pairs:
        try:
            values = tuple(int(str(d).strip()) for d in dims)
        except ValueError:
            raise InteropError(f"--input-shape {name}: dimensions {list(dims)} are not integers",
                               hint="for example --input-shape x=1,3,224,224") from None
        if any(isinstance(d, bool) or v < 1 for d, v in zip(dims, values)):
            raise InteropError(f"--input-shape {name}: dimensions must be positive integers, got {list(values)}")
        shapes[name] = values
    return shapes


def _resolve_shapes(
    specs: Sequence[TensorSpec], given: Mapping[str, tuple[int, ...]], samples: int, axis0: Any,
) -> tuple[dict[str, tuple[int, ...]], list[str]]:
    """Every input's shape: axis 0 the samples, given dims, then dims named alike, then OTHER_DYNAMIC_DIM."""
    unknown = sorted(set(given) - {spec.name for spec in specs})
    if unknown:
        raise InteropError(f"--input-shape names {', '.join(unknown)}, not an input of the model",
                           hint=f"the model's inputs are: {', '.join(s.name for s in specs)}")
    symbols: dict[str, int] = {}
    for spec in specs:
        if spec.name not in given:
            continue
        dims = given[spec.name]
        if len(dims) != len(spec.shape):
            raise InteropError(f"--input-shape {spec.name}={','.join(map(str, dims))} has rank {len(dims)}, "
                               f"the model expects rank {len(spec.shape)} ({_shape_text(spec.shape)})")
        for axis, (declared, value) in enumerate(zip(spec.shape, dims)):
            if axis == 0 and axis0 != "none":
                continue
            if isinstance(declared, int) and declared != value:
                raise InteropError(f"--input-shape {spec.name}: axis {axis} is fixed at {declared} in the model, "
                                   f"not {value}")
            if isinstance(declared, str):
                symbols.setdefault(declared, value)
    shapes: dict[str, tuple[int, ...]] = {}
    notes: list[str] = []
    for spec in specs:
        dims = []
        for axis, dim in enumerate(spec.shape):
            if axis == 0 and axis0 != "none":
                dims.append(samples)
            elif spec.name in given:
                dims.append(given[spec.name][axis])
            elif isinstance(dim, int):
                if dim < 0:
                    raise InteropError(f"input {spec.name} declares a negative dimension {dim} (axis {axis})")
                dims.append(dim)
            elif isinstance(dim, str) and dim in symbols:
                dims.append(symbols[dim])
            else:
                dims.append(OTHER_DYNAMIC_DIM)
                notes.append(f"{spec.name} axis {axis} is dynamic: generated with size {OTHER_DYNAMIC_DIM} "
                             f"(--input-shape {spec.name}=... sets it)")
        shapes[spec.name] = tuple(dims)
    return shapes, notes


def shape_batch_size(specs: Sequence[TensorSpec], given: Mapping[str, tuple[int, ...]]) -> int | None:
    """The batch size --input-shape gives for a dynamic sample axis (axis 0), if any; all must agree."""
    if _axis0(specs) is not None:
        return None
    sizes = {dims[0] for name, dims in given.items() if dims}
    if len(sizes) > 1:
        raise InteropError(f"--input-shape gives different sizes of axis 0 (the batch): {sorted(sizes)}",
                           hint="give every input the same batch size")
    return sizes.pop() if sizes else None


def random_inputs(
    specs: Sequence[TensorSpec], *, seed: int = 0, value_range: tuple[float, float] | None = None,
    samples: int | None = None, batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    max_batch: int = DEFAULT_MAX_BATCH, input_ranges: Mapping[str, tuple[float, float]] | None = None,
    input_shapes: Mapping[str, tuple[int, ...]] | None = None,
    index_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> InputSet:
    """Seeded uniform values with the declared names, dtypes and shapes: the one input generator.

    Each input's values lie in, by precedence: ``input_ranges[name]`` (``--range NAME=LOW,HIGH``);
    for integer inputs, ``index_ranges[name]``, the valid index range a model declares for an input
    it looks up (an embedding), which a plain range never widens; ``value_range`` (``--range
    LOW,HIGH``); else -1..1 for floats and 0..1 for integers (with a note saying how to set it).
    ``input_shapes`` gives the dynamic dimensions (``--input-shape``); axis 0 is always the
    sample axis, of ``samples`` samples fed in runs of ``batch_sizes`` then ``max_batch``.
    """
    if not specs:
        raise InteropError("the model declares no inputs; nothing to generate")
    seed = check_seed(seed)
    samples = check_samples(samples)
    every = parse_range(value_range) if value_range is not None else None
    per_input = {name: parse_range(r) for name, r in (input_ranges or {}).items()}
    unknown = sorted(set(per_input) - {spec.name for spec in specs})
    if unknown:
        raise InteropError(f"--range names {', '.join(unknown)}, not an input of the model",
                           hint=f"the model's inputs are: {', '.join(s.name for s in specs)}")
    batch_sizes = parse_batch_sizes(batch_sizes)
    axis0 = _axis0(specs)
    if samples is None:
        samples = 1 if axis0 == "none" else (axis0 if isinstance(axis0, int) else sum(batch_sizes))
    shapes, notes = _resolve_shapes(specs, dict(input_shapes or {}), samples, axis0)
    _refuse_huge(specs, shapes, samples)
    plan = plan_runs(samples, specs, batch_sizes, max_batch)
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    ranges: dict[str, tuple[float, float]] = {}
    for spec in specs:
        ranges[spec.name], note = _value_range_of(spec, per_input, dict(index_ranges or {}), every)
        if note:
            notes.append(note)
    try:
        for spec in specs:
            low, high = ranges[spec.name]
            arrays[spec.name] = _random_array(rng, spec.dtype, shapes[spec.name], low, high)
    except (MemoryError, ValueError) as exc:
        if isinstance(exc, ValueError) and "too big" not in str(exc) and "maximum" not in str(exc):
            raise
        raise InteropError(
            f"not enough memory for random inputs of {_shapes_text(shapes)}", hint=_GENERATE_HINT
        ) from None
    shown = sorted({f"{low:g},{high:g}" for low, high in ranges.values()})
    source = f"random (seed {seed}, range {shown[0] if len(shown) == 1 else 'per input'})"
    input_set = InputSet(arrays, plan, source, notes)
    input_set.ranges = ranges
    return input_set


def _is_integer_dtype(dtype: str) -> bool:
    try:
        return np.issubdtype(np.dtype(dtype), np.integer)
    except TypeError:
        return False


def _value_range_of(
    spec: TensorSpec, per_input: Mapping[str, tuple[float, float]], index_ranges: Mapping[str, tuple[float, float]],
    every: tuple[float, float] | None,
) -> tuple[tuple[float, float], str | None]:
    """(range, note) of one input, by the precedence random_inputs documents."""
    if spec.name in per_input:
        return per_input[spec.name], None
    integer = _is_integer_dtype(spec.dtype)
    if integer and spec.name in index_ranges:
        low, high = index_ranges[spec.name]
        return (low, high), (f"{spec.name} indexes a table of {int(high - low) + 1} rows (an embedding): "
                             f"values {low:g}..{high:g}")
    if every is not None:
        return every, None
    if integer:
        low, high = DEFAULT_INT_RANGE
        return DEFAULT_INT_RANGE, (f"{spec.name} is an integer input with no declared range: values "
                                   f"{low:g}..{high:g}; give its valid values with --range {spec.name}=LOW,HIGH")
    return DEFAULT_RANGE, None


def _shapes_text(shapes: Mapping[str, tuple[int, ...]]) -> str:
    return ", ".join(f"{name} {'x'.join(map(str, shape)) or 'scalar'}" for name, shape in shapes.items())


def _refuse_huge(specs: Sequence[TensorSpec], shapes: Mapping[str, tuple[int, ...]], samples: int) -> None:
    """Refuse, before allocating, random inputs beyond :func:`max_input_bytes` (counting the float64 draw)."""
    total = 0
    for spec in specs:
        try:
            itemsize = np.dtype(spec.dtype).itemsize
        except TypeError:
            continue  # _random_array reports the type
        # Floats are drawn as float64 and then cast: both copies exist for a moment.
        total += math.prod(shapes[spec.name]) * (itemsize + 8)
    limit = max_input_bytes()
    if total > limit:
        raise _too_big(f"random inputs of {_shapes_text(shapes)} ({samples} samples)", total, limit, _GENERATE_HINT)


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
        # Integers in [floor(LOW), floor(HIGH)] clipped to what the type holds (no wrap-around).
        info = np.iinfo(target)
        first = max(math.floor(low), int(info.min))
        last = min(math.floor(high), int(info.max))
        if first > last:
            raise InteropError(
                f"range {low:g},{high:g} holds no {target} value", hint="choose --range within the type's values"
            )
        draw = np.int64 if last <= np.iinfo(np.int64).max else target
        return rng.integers(first, last, size=shape, dtype=draw, endpoint=True).astype(target)
    if np.issubdtype(target, np.floating):
        return rng.uniform(low, high, size=shape).astype(target)
    raise InteropError(f"cannot generate random inputs of type {dtype}", hint="pass --inputs FILE.npz")
