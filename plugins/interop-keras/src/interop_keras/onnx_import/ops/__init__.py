"""ONNX op converters, one module per op family; importing this package registers them all.

``layer_converter_for`` and ``registered`` are :mod:`..layer_table`'s, re-exported from here: imported from this
package, the table they read is complete.
"""

from interop_keras.onnx_import.ops import (  # noqa: F401
    activation,
    conv,
    elementwise,
    indexing,
    linear,
    logic,
    normalization,
    pooling,
    recurrent,
    reduction,
    resize,
    shape,
)
from interop_keras.onnx_import.layer_table import layer_converter_for, registered

__all__ = ["layer_converter_for", "registered"]
