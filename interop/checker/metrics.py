"""Error metrics between a reference output and a candidate output (pure numpy).

Every metric is computed in float64 over the elements where both arrays are
finite; non-finite values are counted separately so that a NaN never hides
behind a mean. Definitions (also in docs/check.md):

* ``max_abs``   max |c - r|
* ``max_rel``   max |c - r| / max(|r|, floor), where ``floor = REL_FLOOR * max|r|``
  over the whole output (and at least ``TINY``). Relative to the output's own
  scale, an element whose reference is 0 or close to it is judged by its
  absolute error against that scale, so the metric does not explode at zeros.
* ``mean_abs``  mean |c - r|
* ``p99_abs``   99th percentile of |c - r|
* ``cosine``    cosine similarity of the flattened outputs (1.0 when both are all zeros)
* ``argmax_agreement``  share of samples whose argmax over the last axis agrees,
  for class-score outputs (floating point, rank >= 2, last axis of size >= 2);
  ``None`` otherwise
* ``within_tolerance``  share of elements with |c - r| <= atol + rtol * |r|
* ``worst_sample``  index along axis 0 of the sample holding the element that is
  furthest beyond its allowed error (largest |c - r| / (atol + rtol * |r|))

Integer outputs of different widths (ONNX's int64 against Core ML's int32) are
compared by value, exactly unless a tolerance was given; :func:`dtype_problem`
says when two dtypes cannot be compared that way (integer against float, bool
against integer) or when a reference value does not fit the candidate's type.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Share of the output's largest reference magnitude used as the floor of max_rel's denominator.
REL_FLOOR = 1e-3
#: Absolute floor of max_rel's denominator, for outputs that are entirely zero.
TINY = 1e-12


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

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def is_class_scores(reference: np.ndarray) -> bool:
    """True for outputs that look like per-class scores: float, rank >= 2, >= 2 classes."""
    return (
        np.issubdtype(reference.dtype, np.floating)
        and reference.ndim >= 2
        and reference.shape[-1] >= 2
    )


def argmax_agreement(reference: np.ndarray, candidate: np.ndarray) -> float | None:
    """Share of samples whose top class agrees; None for outputs that are not class scores."""
    if not is_class_scores(reference) or reference.size == 0:
        return None
    ref_top = np.argmax(np.nan_to_num(reference, nan=-np.inf), axis=-1)
    cand_top = np.argmax(np.nan_to_num(candidate, nan=-np.inf), axis=-1)
    return float(np.mean(ref_top == cand_top))


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


def _is_int(dtype: np.dtype) -> bool:
    return np.issubdtype(dtype, np.integer)


def dtype_problem(reference: np.ndarray, candidate: np.ndarray) -> str | None:
    """Why ``candidate``'s dtype cannot stand for ``reference``'s, or None when it can.

    Equal dtypes are fine. Two integer dtypes are fine when every reference value
    fits the candidate's type (a runtime that narrows int64 to int32 loses
    nothing then); the first value that does not fit is named. Any other pair
    (integer vs float, bool vs integer, float32 vs float16) is a dtype mismatch.
    """
    if reference.dtype == candidate.dtype:
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
    err = np.abs(cand - ref).astype(np.float64)
    # Differences beyond int64 wrap around; those are enormous, mark them so.
    wrapped = (cand < ref) != (cand - ref < 0)
    err[wrapped] = np.inf
    return err


def compare(
    reference: np.ndarray, candidate: np.ndarray, atol: float, rtol: float
) -> OutputMetrics:
    """All metrics of ``candidate`` against ``reference`` (same shape required)."""
    if reference.shape != candidate.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {candidate.shape}")
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    ref_finite = np.isfinite(ref)
    cand_finite = np.isfinite(cand)
    # Non-finite values agree only when both hold the same one (NaN with NaN, +Inf with +Inf).
    same_nonfinite = ~ref_finite & ~cand_finite & ((ref == cand) | (np.isnan(ref) & np.isnan(cand)))
    nonfinite_mismatch = (~ref_finite | ~cand_finite) & ~same_nonfinite
    both = ref_finite & cand_finite

    abs_err = np.zeros_like(ref)
    if _is_int(reference.dtype) and _is_int(candidate.dtype):
        abs_err = _integer_abs_error(np.asarray(reference), np.asarray(candidate))
    else:
        abs_err[both] = np.abs(cand[both] - ref[both])
    finite_err = abs_err[both]
    allowed = atol + rtol * np.abs(np.where(ref_finite, ref, 0.0))
    ok = np.where(both, abs_err <= allowed, same_nonfinite)

    if finite_err.size:
        max_abs = float(finite_err.max())
        mean_abs = float(finite_err.mean())
        p99_abs = float(np.percentile(finite_err, 99))
        max_rel = float(relative_errors(ref[both], finite_err).max())
        cosine = cosine_similarity(ref[both], cand[both])
    else:
        max_abs = mean_abs = p99_abs = max_rel = 0.0
        cosine = 1.0

    worst_sample = _worst_sample(abs_err, allowed, nonfinite_mismatch)
    return OutputMetrics(
        max_abs=max_abs,
        max_rel=max_rel,
        mean_abs=mean_abs,
        p99_abs=p99_abs,
        cosine=cosine,
        argmax_agreement=argmax_agreement(reference, candidate),
        within_tolerance=float(ok.mean()) if ok.size else 1.0,
        worst_sample=worst_sample,
        elements=int(ref.size),
        candidate_nonfinite=int((~cand_finite).sum()),
        reference_nonfinite=int((~ref_finite).sum()),
        nonfinite_mismatch=int(nonfinite_mismatch.sum()),
    )


def _worst_sample(abs_err: np.ndarray, allowed: np.ndarray, nonfinite: np.ndarray) -> int | None:
    """Index along axis 0 of the element furthest beyond its tolerance (NaN mismatches first)."""
    if abs_err.size == 0 or abs_err.ndim == 0:
        return None
    if nonfinite.any():
        flat = int(np.flatnonzero(nonfinite.ravel())[0])
    else:
        ratio = abs_err / np.maximum(allowed, TINY)
        flat = int(np.argmax(ratio.ravel()))
    return int(np.unravel_index(flat, abs_err.shape)[0])
