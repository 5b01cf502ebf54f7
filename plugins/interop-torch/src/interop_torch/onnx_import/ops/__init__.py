"""The op converters, one module per op family; importing this package registers them all.

``module_converter_for`` and ``registered`` are :mod:`..module_table`'s, re-exported from here: imported from this
package, the table they read is complete.
"""

from interop_torch.onnx_import.ops import (  # noqa: F401
    activation,
    conv,
    elementwise,
    linear,
    normalization,
    pooling,
    recurrent,
    reduction,
    resize,
    tensor,
)
from interop_torch.onnx_import.module_table import module_converter_for, registered

__all__ = ["module_converter_for", "registered"]
