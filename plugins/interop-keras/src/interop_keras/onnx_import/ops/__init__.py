"""ONNX op converters, one module per op family; importing this package registers them all.

``resolve`` and ``registered`` are :mod:`..registry`'s, re-exported from here: imported from this
package, the table they read is complete.
"""

from interop_keras.onnx_import.ops import (  # noqa: F401
    activation,
    conv,
    elementwise,
    linear,
    normalization,
    pooling,
    reduction,
    resize,
    shape,
)
from interop_keras.onnx_import.registry import registered, resolve

__all__ = ["registered", "resolve"]
