"""Special functions numpy lacks (erf), accurate to float32 precision without scipy."""

from __future__ import annotations

import numpy as np

_TWO_OVER_SQRT_PI = 2.0 / np.sqrt(np.pi)
# Coefficients of the Chebyshev-fitted erfc approximation from Numerical Recipes
# (fractional error below 1.2e-7), used for |x| >= 0.5.
_ERFC_COEFFS = (
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
    0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277,
)


def erf(x: np.ndarray) -> np.ndarray:
    """Elementwise error function, computed in float64, returned in x's float dtype."""
    x = np.asarray(x)
    out_dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    z = np.abs(x.astype(np.float64))
    t = 1.0 / (1.0 + 0.5 * z)
    poly = np.zeros_like(t)
    for coeff in reversed(_ERFC_COEFFS[1:]):
        poly = (poly + coeff) * t
    erfc = t * np.exp(-z * z + _ERFC_COEFFS[0] + poly)
    far = 1.0 - erfc
    # Near zero 1 - erfc loses relative precision; the Maclaurin series is exact enough there.
    z2 = z * z
    near = _TWO_OVER_SQRT_PI * z * (
        1 - z2 / 3 + z2**2 / 10 - z2**3 / 42 + z2**4 / 216 - z2**5 / 1320 + z2**6 / 9360
    )
    magnitude = np.where(z < 0.5, near, far)
    return (np.sign(x) * magnitude).astype(out_dtype)
