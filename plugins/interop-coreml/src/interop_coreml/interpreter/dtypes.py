"""Mapping from MIL builtin types to numpy dtypes and helpers to coerce values to them."""

from __future__ import annotations

from typing import Any

import numpy as np


def numpy_dtype_of(builtin_type: Any) -> np.dtype | None:
    """numpy dtype of a MIL builtin (``types.fp16`` → float16); None for str and non-numeric types."""
    from coremltools.converters.mil.mil import types

    if builtin_type is None or builtin_type is types.str:
        return None
    try:
        return np.dtype(types.nptype_from_builtin(builtin_type))
    except (KeyError, TypeError):
        return None


def static_shape(shape: Any) -> tuple[int | None, ...]:
    """A MIL shape with symbolic dims replaced by None."""
    out: list[int | None] = []
    for dim in shape or ():
        try:
            out.append(int(dim))
        except TypeError:
            out.append(None)
    return tuple(out)
