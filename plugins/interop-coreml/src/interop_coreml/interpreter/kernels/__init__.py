"""numpy kernels for MIL ops; importing this package fills the KERNELS table."""

from . import (  # noqa: F401  (imported for their registrations)
    activation,
    conv,
    elementwise,
    linear,
    normalization,
    pool,
    reduction,
    tensor_ops,
    transformation,
)
from .registry import KERNELS, OpContext

__all__ = ["KERNELS", "OpContext"]
