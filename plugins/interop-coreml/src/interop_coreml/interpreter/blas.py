"""numpy's own BLAS, called directly for the one thing numpy.matmul cannot do: C += A @ B.

numpy.matmul always overwrites its output, so BLAS first zeroes it (a pass over the
result) and a bias must then be added in another pass. A convolution instead fills
its output with the bias and lets BLAS accumulate the product into it: two passes
over the largest arrays of a network fewer.

The library is the one numpy links (found through threadpoolctl) and the function
its CBLAS ``sgemm`` under the names numpy's builds give it. Before first use a small
product is checked against numpy.matmul; when anything is missing or disagrees,
:func:`accumulate` returns False and callers fall back to numpy.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import numpy as np

# CBLAS enums.
_ROW_MAJOR, _NO_TRANS = 101, 111
# Names of cblas_sgemm in the OpenBLAS builds numpy ships (scipy-openblas, 64-bit integers) and others.
_SYMBOLS = ("scipy_cblas_sgemm64_", "cblas_sgemm64_", "scipy_cblas_sgemm", "cblas_sgemm")

_lock = threading.Lock()
_state: dict[str, Any] = {"sgemm": None, "checked": False}


def _find_sgemm() -> Any:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    for info in threadpool_info():
        if info.get("user_api") != "blas" or not info.get("filepath"):
            continue
        try:
            library = ctypes.CDLL(info["filepath"])
        except OSError:
            continue
        for symbol in _SYMBOLS:
            function = getattr(library, symbol, None)
            if function is None:
                continue
            integer = ctypes.c_int64 if "64" in symbol else ctypes.c_int
            function.argtypes = [
                ctypes.c_int, ctypes.c_int, ctypes.c_int, integer, integer, integer, ctypes.c_float,
                ctypes.c_void_p, integer, ctypes.c_void_p, integer, ctypes.c_float, ctypes.c_void_p, integer,
            ]
            function.restype = None
            return function
    return None


def _sgemm() -> Any:
    if not _state["checked"]:
        with _lock:
            if not _state["checked"]:
                _state["sgemm"] = _find_sgemm()
                _state["checked"] = True  # before the self-check, which calls accumulate()
                if _state["sgemm"] is not None and not _agrees_with_numpy():
                    _state["sgemm"] = None
    return _state["sgemm"]


def _agrees_with_numpy() -> bool:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((5, 12)).astype(np.float32)[:, 1:8]  # strided rows, as the kernels pass them
    b = rng.standard_normal((7, 9)).astype(np.float32)
    c = rng.standard_normal((6, 11)).astype(np.float32)[1:, 2:11]
    expected = c + a @ b
    try:
        done = accumulate(a, b, c)
    except Exception:  # noqa: BLE001 - a library that misbehaves is simply not used
        return False
    return bool(done) and np.allclose(c, expected, rtol=1e-5, atol=1e-5)


def available() -> bool:
    """Whether :func:`accumulate` can run here (numpy's BLAS found and checked)."""
    return _sgemm() is not None


def _leading(array: np.ndarray) -> int | None:
    """The row stride of a 2-D float32 array in elements, when BLAS can read it as a matrix.

    An axis of length 1 is never stepped along, and numpy gives it any stride (a [1, 1] tap of
    a transposed weight has strides (8, 8)): its stride does not matter.
    """
    if array.dtype != np.float32 or array.ndim != 2:
        return None
    rows, columns = array.shape
    if columns > 1 and array.strides[1] != 4:
        return None
    if rows <= 1:
        return max(1, columns)
    if array.strides[0] % 4:
        return None
    leading = array.strides[0] // 4
    return leading if leading >= max(1, columns) else None


def accumulate(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> bool:
    """``c += a @ b`` in place for float32 matrices with unit column stride; False (c untouched) if not possible."""
    function = _sgemm()
    if function is None:
        return False
    lda, ldb, ldc = _leading(a), _leading(b), _leading(c)
    if lda is None or ldb is None or ldc is None or not c.flags.writeable:
        return False
    (m, k), n = a.shape, b.shape[1]
    if b.shape[0] != k or c.shape != (m, n):
        raise ValueError(f"accumulate: shapes {a.shape} @ {b.shape} into {c.shape}")
    if m and n and k:
        function(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, m, n, k, 1.0, a.ctypes.data, lda, b.ctypes.data, ldb,
                 1.0, c.ctypes.data, ldc)
    return True
