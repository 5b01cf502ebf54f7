"""Error metrics and error statistics between a reference output and a candidate output (pure numpy).

Every metric is computed in float64 over the elements where both arrays are
finite; non-finite values are counted separately so that a NaN never hides
behind a mean. Definitions (also in docs/check.md):

* ``max_abs``, ``mean_abs``, ``median_abs``, ``p99_abs``: of |c - r|
* ``max_rel``, ``mean_rel``, ``median_rel``, ``p99_rel``: of |c - r| / max(|r|, floor),
  where ``floor = REL_FLOOR * max|r|`` over the whole output (and at least ``TINY``),
  so the relative error does not explode where the reference is 0 (the median and 99th
  percentile only when the statistic is ``median`` or ``p99``; None otherwise)
* ``scale``     the root mean square of the reference (the output's magnitude)
* ``max_scaled`` max |c - r| / max(|r|, s), s the RMS of the reference over the
  element's sample: the error relative to the sample's magnitude
* ``cosine``    cosine similarity of the flattened outputs (1.0 when both are all zeros)
* ``argmax_agreement``  share of samples whose argmax over the last axis agrees,
  for class-score outputs (floating point, rank >= 2, last axis of size >= 2);
  ``None`` otherwise
* ``within_tolerance``  share of elements within the element rule of the statistic
  (``scaled``: |c - r| <= atol + rtol * max(|r|, s); otherwise |c - r| <= atol + rtol * |r|)
* ``worst_sample``  index along axis 0 of the sample holding the element that is
  furthest beyond its allowed error; ``worst_sample_max_abs`` that sample's max |c - r|
* ``margin``    the error as a multiple of what the statistic allows (<= 1 passes)

The verdict is an *error statistic*, as Polygraphy's ``--check-error-stat``:

* ``scaled`` (the default for floating-point outputs): every element satisfies
  |c - r| <= atol + rtol * max(|r|, s). Float32 rounding grows with the magnitude of
  the whole computation, not of each element, so an element near zero in an output
  whose values are in the thousands is judged against its sample's magnitude.
* ``elementwise``: every element satisfies |c - r| <= atol + rtol * |r| (numpy's allclose).
* ``max``, ``mean``, ``median``, ``p99``: that statistic of |c - r| is <= atol, or the
  same statistic of the relative error is <= rtol.

Integer outputs of different widths (int64 in one format against int32 in another) are
compared by value, exactly unless a tolerance was given, and so are floating-point
outputs of different widths (a format without float16 inputs and outputs returns float32
where its fp16 source said float16); :func:`dtype_problem` says when two dtypes cannot be
compared that way (integer against float, bool against integer) or when a reference
value does not fit the candidate's type; :func:`width_note` says that floats of two
widths were compared.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

#: Share of the output's largest reference magnitude used as the floor of max_rel's denominator.
REL_FLOOR = 1e-3
#: Absolute floor of denominators, for outputs that are entirely zero.
TINY = 1e-12
#: The error statistics a verdict can use (``--check-error-stat``).
ERROR_STATS = ("scaled", "elementwise", "max", "mean", "median", "p99")
#: The statistic used unless one is chosen.
DEFAULT_ERROR_STAT = "scaled"
#: Statistics judging every element (the others judge one number per output).
ELEMENT_STATS = ("scaled", "elementwise")
#: The median and 99th percentile of the relative error cost a pass each: computed for these only.
RELATIVE_QUANTILE_STATS = ("median", "p99")


@dataclass
class OutputMetrics:
    """The numbers of one reference/candidate output comparison."""

    max_abs: float
    max_rel: float
    mean_abs: float
    p99_abs: float
    cosine: float
    argmax_agreement: float | None
    within_tolerance: float
    worst_sample: int | None
    elements: int
    candidate_nonfinite: int
    reference_nonfinite: int
    nonfinite_mismatch: int
    median_abs: float = 0.0
    mean_rel: float = 0.0
    median_rel: float | None = None
    p99_rel: float | None = None
    scale: float = 0.0
    max_scaled: float = 0.0
    worst_sample_max_abs: float | None = None
    stat: str = DEFAULT_ERROR_STAT
    margin: float = 0.0

    @property
    def stat_passed(self) -> bool:
        """The verdict of the statistic on the finite elements (non-finite mismatches are separate)."""
        return self.margin <= 1.0

    def to_dict(self) -> dict[str, float | int | str | None]:
        return asdict(self)


def is_class_scores(reference: np.ndarray) -> bool:
    """True for outputs that look like per-class scores: float, rank >= 2, >= 2 classes."""
    return (
        np.issubdtype(reference.dtype, np.floating)
        and reference.ndim >= 2
        and reference.shape[-1] >= 2
    )


def argmax_agreement(reference: np.ndarray, candidate: np.ndarray, finite: bool = False) -> float | None:
    """Share of samples whose top class agrees; None for outputs that are not class scores.

    ``finite``: the caller knows both arrays hold no NaN (they are not searched for one).
    """
    if not is_class_scores(reference) or reference.size == 0:
        return None
    ref_top = _argmax_last(reference, finite)
    cand_top = _argmax_last(candidate, finite)
    return float(np.count_nonzero(ref_top == cand_top) / ref_top.size)


def _argmax_last(values: np.ndarray, finite: bool = False) -> np.ndarray:
    """argmax over the last axis, NaN counting as -inf (the first maximum wins, as numpy's).

    For a few classes, one comparison per class column is much faster than numpy's
    per-row argmax.
    """
    if finite or not np.isnan(values).any():
        clean = values
    else:
        clean = np.nan_to_num(values, nan=-np.inf)
    classes = clean.shape[-1]
    if classes > 16:
        return np.argmax(clean, axis=-1)
    best = clean[..., 0].copy()
    index = np.zeros(best.shape, dtype=np.int8)  # at most 16 classes
    for column in range(1, classes):
        better = clean[..., column] > best
        index[better] = column
        np.maximum(best, clean[..., column], out=best)
    return index


def cosine_similarity(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Cosine of the angle between the flattened arrays; 1.0 when both are zero."""
    ref = reference.ravel()
    cand = candidate.ravel()
    ref_norm = float(np.linalg.norm(ref))
    cand_norm = float(np.linalg.norm(cand))
    if ref_norm == 0.0 and cand_norm == 0.0:
        return 1.0
    if ref_norm == 0.0 or cand_norm == 0.0:
        return 0.0
    return float(np.dot(ref, cand) / (ref_norm * cand_norm))


def relative_errors(reference: np.ndarray, abs_err: np.ndarray) -> np.ndarray:
    """|c - r| / max(|r|, REL_FLOOR * max|r|, TINY), element-wise."""
    magnitude = np.abs(reference)
    scale = float(magnitude.max()) if magnitude.size else 0.0
    floor = max(REL_FLOOR * scale, TINY)
    return abs_err / np.maximum(magnitude, floor)


def sample_scale(reference: np.ndarray, sample_axis: bool = True) -> np.ndarray:
    """The RMS of the reference over each sample (axis 0), broadcastable to the reference.

    Without a sample axis (or for rank 0), the RMS of the whole output. Non-finite
    elements are left out; an all-zero sample has scale 0.
    """
    ref = np.where(np.isfinite(reference), reference, 0.0)
    if not sample_axis or ref.ndim == 0:
        return np.full((1,) * ref.ndim, np.sqrt(np.mean(np.square(ref))) if ref.size else 0.0)
    axes = tuple(range(1, ref.ndim))
    return np.sqrt(np.mean(np.square(ref), axis=axes, keepdims=True)) if axes else np.abs(ref)


def _is_int(dtype: np.dtype) -> bool:
    return np.issubdtype(dtype, np.integer)


def _is_float(dtype: np.dtype) -> bool:
    return np.issubdtype(dtype, np.floating)


def width_note(reference: np.ndarray, candidate: np.ndarray) -> str | None:
    """The note of a floating-point output compared across widths (float16 against float32), or None."""
    if reference.dtype == candidate.dtype or not (_is_float(reference.dtype) and _is_float(candidate.dtype)):
        return None
    return f"compared by value: reference {reference.dtype}, candidate {candidate.dtype}"


def dtype_problem(reference: np.ndarray, candidate: np.ndarray) -> str | None:
    """Why ``candidate``'s dtype cannot stand for ``reference``'s, or None when it can.

    Equal dtypes are fine, and so are two floating-point dtypes (compared by value in
    float64; the pair's precision sets the tolerance). Two integer dtypes are fine when
    every reference value fits the candidate's type (a runtime that narrows int64 to
    int32 loses nothing then); the first value that does not fit is named. Any other
    pair (integer vs float, bool vs integer) is a dtype mismatch.
    """
    if reference.dtype == candidate.dtype or (_is_float(reference.dtype) and _is_float(candidate.dtype)):
        return None
    if not (_is_int(reference.dtype) and _is_int(candidate.dtype)):
        return f"dtype mismatch: reference {reference.dtype}, candidate {candidate.dtype}"
    info = np.iinfo(candidate.dtype)
    if reference.size == 0:
        return None
    low, high = reference.min(), reference.max()
    for value in (high, low):
        if int(value) > info.max or int(value) < info.min:
            return (f"reference {reference.dtype} value {int(value)} does not fit the candidate's "
                    f"{candidate.dtype} (range {info.min}..{info.max})")
    return None


def _integer_abs_error(reference: np.ndarray, candidate: np.ndarray) -> np.ndarray:
    """|c - r| for integer arrays without float64 rounding (beyond 2**53) or int64 overflow."""
    ref = reference.astype(np.int64, copy=False) if reference.dtype != np.uint64 else reference
    cand = candidate.astype(np.int64, copy=False) if candidate.dtype != np.uint64 else candidate
    if ref.dtype == np.uint64 or cand.dtype == np.uint64:
        return np.array([abs(int(c) - int(r)) for r, c in zip(ref.ravel(), cand.ravel())],
                        dtype=np.float64).reshape(ref.shape)
    err = np.asarray(np.abs(cand - ref), dtype=np.float64)  # an array even for rank 0 (numpy gives a scalar)
    # Differences beyond int64 wrap around; those are enormous, mark them so.
    wrapped = (cand < ref) != (cand - ref < 0)
    err[wrapped] = np.inf
    return err


def _ratio(value: float, limit: float) -> float:
    """value / limit, with 0/0 = 0 and x/0 = inf."""
    if value <= limit:
        return value / limit if limit > 0 else 0.0
    return value / limit if limit > 0 else float("inf")


def compare(
    reference: np.ndarray, candidate: np.ndarray, atol: float, rtol: float,
    stat: str = DEFAULT_ERROR_STAT, sample_axis: bool = True,
) -> OutputMetrics:
    """All metrics of ``candidate`` against ``reference`` (same shape required), judged by ``stat``.

    ``sample_axis`` says whether axis 0 holds samples (for the ``scaled`` statistic's
    per-sample magnitude and for ``worst_sample``).
    """
    if reference.shape != candidate.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {candidate.shape}")
    if stat not in ERROR_STATS:
        raise ValueError(f"unknown error statistic {stat!r}; known: {', '.join(ERROR_STATS)}")
    fast = _compare_finite_floats(reference, candidate, atol, rtol, stat, sample_axis)
    if fast is not None:
        return fast
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    ref_finite = np.isfinite(ref)
    cand_finite = np.isfinite(cand)
    all_finite = bool(ref_finite.all() and cand_finite.all())
    if all_finite:
        both = None
        same_nonfinite = nonfinite_mismatch = None
    else:
        # Non-finite values agree only when both hold the same one (NaN with NaN, +Inf with +Inf).
        same_nonfinite = ~ref_finite & ~cand_finite & ((ref == cand) | (np.isnan(ref) & np.isnan(cand)))
        nonfinite_mismatch = (~ref_finite | ~cand_finite) & ~same_nonfinite
        both = ref_finite & cand_finite

    if _is_int(reference.dtype) and _is_int(candidate.dtype):
        abs_err = _integer_abs_error(np.asarray(reference), np.asarray(candidate))
    elif all_finite:
        abs_err = np.abs(cand - ref)
    else:
        abs_err = np.zeros_like(ref)
        abs_err[both] = np.abs(cand[both] - ref[both])
    magnitude = np.abs(ref) if all_finite else np.abs(np.where(ref_finite, ref, 0.0))
    scale = sample_scale(ref, sample_axis and ref.ndim >= 1)
    scaled_den = np.maximum(magnitude, scale)
    element_den = scaled_den if stat == "scaled" else magnitude
    allowed = atol + rtol * element_den
    within = abs_err <= allowed
    ok = within if all_finite else np.where(both, within, same_nonfinite)

    finite_err = abs_err if all_finite else abs_err[both]
    numbers = dict(max_abs=0.0, mean_abs=0.0, median_abs=0.0, p99_abs=0.0, max_rel=0.0, mean_rel=0.0,
                   median_rel=0.0, p99_rel=0.0, max_scaled=0.0)
    cosine = 1.0
    if finite_err.size:
        ref_f = ref if all_finite else ref[both]
        rel = relative_errors(ref_f, finite_err)
        scaled = finite_err / np.maximum(scaled_den if all_finite else scaled_den[both], TINY)
        abs_q = np.percentile(finite_err, (50, 99))
        rel_q = np.percentile(rel, (50, 99)) if stat in RELATIVE_QUANTILE_STATS else (None, None)
        numbers.update(
            max_abs=float(finite_err.max()), mean_abs=float(finite_err.mean()),
            median_abs=float(abs_q[0]), p99_abs=float(abs_q[1]),
            max_rel=float(rel.max()), mean_rel=float(rel.mean()),
            median_rel=None if rel_q[0] is None else float(rel_q[0]),
            p99_rel=None if rel_q[1] is None else float(rel_q[1]), max_scaled=float(scaled.max()),
        )
        cosine = cosine_similarity(ref_f, cand if all_finite else cand[both])

    if stat in ELEMENT_STATS:
        excess = abs_err / np.maximum(allowed, TINY) if atol > 0 or rtol > 0 else np.where(abs_err > 0, np.inf, 0.0)
        if not all_finite:
            excess = np.where(both, excess, 0.0)
        margin = float(excess.max()) if excess.size else 0.0
    else:
        key = {"max": "max", "mean": "mean", "median": "median", "p99": "p99"}[stat]
        margin = min(_ratio(numbers[f"{key}_abs"], atol), _ratio(numbers[f"{key}_rel"], rtol))
        excess = abs_err
    worst_sample = _worst_sample(excess, nonfinite_mismatch)
    worst_max_abs = None
    if worst_sample is not None:
        sample_err = abs_err[worst_sample] if abs_err.ndim else abs_err
        sample_fin = sample_err if all_finite else sample_err[both[worst_sample]]
        worst_max_abs = float(sample_fin.max()) if sample_fin.size else 0.0
    return OutputMetrics(
        max_abs=numbers["max_abs"],
        max_rel=numbers["max_rel"],
        mean_abs=numbers["mean_abs"],
        p99_abs=numbers["p99_abs"],
        cosine=cosine,
        argmax_agreement=argmax_agreement(reference, candidate),
        within_tolerance=float(ok.mean()) if ok.size else 1.0,
        worst_sample=worst_sample,
        elements=int(ref.size),
        candidate_nonfinite=0 if all_finite else int((~cand_finite).sum()),
        reference_nonfinite=0 if all_finite else int((~ref_finite).sum()),
        nonfinite_mismatch=0 if all_finite else int(nonfinite_mismatch.sum()),
        median_abs=numbers["median_abs"],
        mean_rel=numbers["mean_rel"],
        median_rel=numbers["median_rel"],
        p99_rel=numbers["p99_rel"],
        scale=float(np.sqrt(np.mean(np.square(np.where(ref_finite, ref, 0.0))))) if ref.size else 0.0,
        max_scaled=numbers["max_scaled"],
        worst_sample_max_abs=worst_max_abs,
        stat=stat,
        margin=margin,
    )


def _compare_finite_floats(
    reference: np.ndarray, candidate: np.ndarray, atol: float, rtol: float, stat: str, sample_axis: bool,
) -> OutputMetrics | None:
    """compare() for two floating-point arrays with no NaN/Inf, in few passes and little memory; else None.

    Float32 (and narrower) outputs are compared in float32: |c - r| is then exact to half
    a unit of the difference's last place, and sums and dot products accumulate in float64.
    """
    if reference.dtype.kind != "f" or candidate.dtype.kind != "f" or reference.size == 0 or reference.ndim == 0:
        return None
    work = np.float32 if max(reference.dtype.itemsize, candidate.dtype.itemsize) <= 4 else np.float64
    ref = np.asarray(reference, dtype=work)
    cand = np.asarray(candidate, dtype=work)
    with np.errstate(over="ignore", invalid="ignore"):
        abs_err = cand - ref
    np.abs(abs_err, out=abs_err)
    max_abs = float(abs_err.max())
    if not math.isfinite(max_abs):  # a NaN/Inf on either side (or an overflowing difference): max says so
        return None
    size = ref.size
    rows = ref.reshape(ref.shape[0], -1) if sample_axis else ref.reshape(1, -1)
    row_squares = np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
    ref_norm2 = float(row_squares.sum()) if sample_axis else float(row_squares[0])
    row_rms = np.sqrt(np.divide(row_squares, rows.shape[1], out=row_squares), out=row_squares).astype(work)
    scale_shape = (ref.shape[0],) + (1,) * (ref.ndim - 1) if sample_axis else (1,) * ref.ndim
    magnitude = np.abs(ref)
    max_magnitude = float(magnitude.max())
    # The relative error (floor: a thousandth of the largest magnitude), then the scaled denominator in place.
    rel = np.maximum(magnitude, max(REL_FLOOR * max_magnitude, TINY))
    np.divide(abs_err, rel, out=rel)
    scaled_den = np.maximum(magnitude, row_rms.reshape(scale_shape), out=magnitude)
    # One more buffer serves in turn as the scaled error, the allowed error and the excess over it.
    buffer = np.maximum(scaled_den, TINY)
    max_scaled = float(np.divide(abs_err, buffer, out=buffer).max())
    den = scaled_den if stat == "scaled" else np.abs(ref, out=scaled_den)
    allowed = np.multiply(den, work(rtol), out=buffer)
    allowed += work(atol)
    within = int(np.count_nonzero(abs_err <= allowed))
    if stat in ELEMENT_STATS:
        if atol > 0 or rtol > 0:
            np.maximum(allowed, TINY, out=allowed)
            excess = np.divide(abs_err, allowed, out=allowed)
        else:
            excess = np.where(abs_err > 0, np.inf, 0.0)
        flat = int(np.argmax(excess))
        margin = float(excess.reshape(-1)[flat])
    else:
        flat = int(np.argmax(abs_err))
        margin = 0.0
    worst_sample = int(np.unravel_index(flat, ref.shape)[0])
    worst_max_abs = float(abs_err[worst_sample].max())
    mean_abs = float(np.mean(abs_err, dtype=np.float64))
    max_rel = float(rel.max())
    mean_rel = float(np.mean(rel, dtype=np.float64))
    agreement = argmax_agreement(reference, candidate, finite=True)
    # The quantiles last: they partition abs_err and rel in place (each array is
    # allocated anew above, and every 1 MB temporary costs more in page faults than in arithmetic).
    median_abs, p99_abs = (float(q) for q in np.percentile(abs_err, (50, 99), overwrite_input=True))
    median_rel = p99_rel = None
    if stat in RELATIVE_QUANTILE_STATS:  # a pass of its own: only when the verdict needs it
        median_rel, p99_rel = (float(q) for q in np.percentile(rel, (50, 99), overwrite_input=True))
    if stat not in ELEMENT_STATS:
        values = {"max": (max_abs, max_rel), "mean": (mean_abs, mean_rel), "median": (median_abs, median_rel),
                  "p99": (p99_abs, p99_rel)}[stat]
        margin = min(_ratio(values[0], atol), _ratio(values[1], rtol))
    flat_ref, flat_cand = ref.reshape(-1), cand.reshape(-1)  # ref and cand are untouched
    cand_norm2 = float(np.einsum("i,i->", flat_cand, flat_cand, dtype=np.float64))
    if ref_norm2 == 0.0 and cand_norm2 == 0.0:
        cosine = 1.0
    elif ref_norm2 == 0.0 or cand_norm2 == 0.0:
        cosine = 0.0
    else:
        dot = float(np.einsum("i,i->", flat_ref, flat_cand, dtype=np.float64))
        cosine = dot / (np.sqrt(ref_norm2) * np.sqrt(cand_norm2))
    return OutputMetrics(
        max_abs=max_abs, max_rel=max_rel, mean_abs=mean_abs, p99_abs=p99_abs, cosine=float(cosine),
        argmax_agreement=agreement, within_tolerance=within / size,
        worst_sample=worst_sample, elements=int(size), candidate_nonfinite=0, reference_nonfinite=0,
        nonfinite_mismatch=0, median_abs=median_abs, mean_rel=mean_rel, median_rel=median_rel, p99_rel=p99_rel,
        scale=float(np.sqrt(ref_norm2 / size)), max_scaled=max_scaled, worst_sample_max_abs=worst_max_abs,
        stat=stat, margin=margin,
    )


def _worst_sample(excess: np.ndarray, nonfinite: np.ndarray | None) -> int | None:
    """Index along axis 0 of the element furthest beyond its tolerance (NaN mismatches first)."""
    if excess.size == 0 or excess.ndim == 0:
        return None
    if nonfinite is not None and nonfinite.any():
        flat = int(np.flatnonzero(nonfinite.ravel())[0])
    else:
        flat = int(np.argmax(excess.ravel()))
    return int(np.unravel_index(flat, excess.shape)[0])


def failing_samples(
    reference: np.ndarray, candidate: np.ndarray, atol: float, rtol: float, stat: str, samples: int,
) -> list[int]:
    """Indices of the samples (axis 0) holding an element beyond the element rule of ``stat``.

    For the per-output statistics (max, mean, ...) every sample counts as failing.
    """
    if reference.ndim == 0 or reference.shape[0] != samples:
        return []
    if stat not in ELEMENT_STATS:
        return list(range(samples))
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    den = np.maximum(np.abs(ref), sample_scale(ref)) if stat == "scaled" else np.abs(ref)
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(cand - ref) <= atol + rtol * den)
    bad &= ~((ref == cand) | (np.isnan(ref) & np.isnan(cand)))
    return [int(i) for i in np.flatnonzero(bad.reshape(samples, -1).any(axis=1))]
