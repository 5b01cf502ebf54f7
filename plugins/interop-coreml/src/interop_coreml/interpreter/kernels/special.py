"""Special functions numpy lacks (erf, erfc, the exact GELU), accurate to float32 precision without scipy.

float32 inputs are computed in float32, slice by slice on the worker threads
(:func:`..threads.map_slices`): the approximations below take some thirty
elementwise passes, which run in cache that way. Other float dtypes are computed in
float64 (the same approximations, one pass each over the whole array).

erfc(z) for z >= 0 is the Chebyshev-fitted approximation of Numerical Recipes
(fractional error below 1.2e-7); near zero, erf uses its Maclaurin series, where
1 - erfc would lose relative precision. In float32 the result is within a few
units in the last place of erf's magnitude; erfc's relative error grows as
z**2 * 6e-8 in the far tail (exp's argument is rounded), where the values are
below 1e-20.
"""

from __future__ import annotations

import math

import numpy as np

from ..threads import map_slices

_TWO_OVER_SQRT_PI = 2.0 / np.sqrt(np.pi)
_ERFC_COEFFS = (
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
    0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277,
)
# erf(z) = 2/sqrt(pi) * z * sum_k (-1)^k z^(2k) / (k! (2k+1)), up to k = 6 (truncation < 3e-8 at z = 0.5).
_MACLAURIN = tuple((-1) ** k / (math.factorial(k) * (2 * k + 1)) for k in range(7))


def _erfc_nonnegative(z: np.ndarray) -> np.ndarray:
    """erfc(z) for z >= 0, computed in z's dtype."""
    dtype = z.dtype.type
    t = dtype(1) / (dtype(1) + dtype(0.5) * z)
    poly = np.full_like(t, dtype(_ERFC_COEFFS[-1]))
    for coeff in reversed(_ERFC_COEFFS[1:-1]):
        poly *= t
        poly += dtype(coeff)
    poly *= t
    poly -= z * z
    poly += dtype(_ERFC_COEFFS[0])
    return t * np.exp(poly, out=poly)


def _erf_of(x: np.ndarray) -> np.ndarray:
    dtype = x.dtype.type
    z = np.abs(x)
    far = dtype(1) - _erfc_nonnegative(z)
    z2 = z * z
    near = np.full_like(z, dtype(_MACLAURIN[-1]))
    for coeff in reversed(_MACLAURIN[:-1]):
        near *= z2
        near += dtype(coeff)
    near *= z
    near *= dtype(_TWO_OVER_SQRT_PI)
    return np.copysign(np.where(z < dtype(0.5), near, far), x)


def _gelu_of(x: np.ndarray) -> np.ndarray:
    """0.5 * x * (1 + erf(x / sqrt(2))), written with erfc so that the negative tail keeps its precision."""
    dtype = x.dtype.type
    tail = _erfc_nonnegative(np.abs(x) * dtype(1 / np.sqrt(2)))
    factor = np.where(x >= 0, dtype(2) - tail, tail)
    factor *= x
    factor *= dtype(0.5)
    return factor


def _float_input(x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype == np.float32 or x.dtype == np.float64:
        return x
    return x.astype(np.float64) if not np.issubdtype(x.dtype, np.floating) else x.astype(np.float32)


def erf(x: np.ndarray) -> np.ndarray:
    """Elementwise error function (float32 in float32; integers and other floats in float64)."""
    x = np.asarray(x)
    source = _float_input(x)
    result = map_slices(_erf_of, source) if source.dtype == np.float32 else _erf_of(source)
    return result.astype(x.dtype) if np.issubdtype(x.dtype, np.floating) else result


def gelu_exact(x: np.ndarray) -> np.ndarray:
    """The exact (erf) GELU, elementwise, in x's float dtype."""
    x = np.asarray(x)
    source = _float_input(x)
    result = map_slices(_gelu_of, source) if source.dtype == np.float32 else _gelu_of(source)
    return result.astype(x.dtype) if np.issubdtype(x.dtype, np.floating) else result
