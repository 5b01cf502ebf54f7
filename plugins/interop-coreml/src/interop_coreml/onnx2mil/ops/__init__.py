"""Op converters grouped by family; importing this package registers them all."""

from interop_coreml.onnx2mil.ops import (  # noqa: F401
    activation,
    control_flow,
    einsum,
    elementwise,
    math,
    nn,
    recurrent,
    reduction,
    tensor,
)
