"""numpy kernels for MIL ops; importing this package fills the KERNELS table."""

from . import (  # noqa: F401  (imported for their registrations)
    activation,
    attention,
    conv,
    elementwise,
    gather_scatter,
    linear,
    normalization,
    pool,
    quantization,
    recurrent,
    reduction,
    resize,
    tensor_ops,
    transformation,
)
from .table import KERNELS, OpContext

__all__ = ["KERNELS", "OpContext"]
