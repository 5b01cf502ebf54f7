"""ONNX op converters, one module per op family (importing them registers the converters)."""

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
