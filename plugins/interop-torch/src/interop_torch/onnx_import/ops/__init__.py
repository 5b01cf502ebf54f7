"""The op converters, one module per op family; importing them registers them."""

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
