"""A reference interpreter of saved Core ML ML Programs, written in numpy.

It runs an ``.mlpackage`` on Linux, where Apple's Core ML runtime does not
exist: the saved spec and weight blobs are read with coremltools' loader of
saved programs and every MIL op is evaluated by a numpy kernel written from
the MIL op definitions.  It shares no code with interop's ONNX → MIL
translator, so a wrong mapping there shows up as a numeric mismatch here.

Legacy NeuralNetwork ``.mlmodel`` files are refused with LegacyModelError.
"""

from .errors import (
    InputError,
    InterpreterError,
    LegacyModelError,
    ModelFormatError,
    OpExecutionError,
    UnsupportedOpError,
)
from .kernels import KERNELS
from .program import OpRecord, Program, TensorInfo, load_program


def supported_ops() -> list[str]:
    """MIL op types the interpreter can evaluate (const and control flow included)."""
    return sorted(set(KERNELS) | {"const", "cond", "while_loop"})


__all__ = [
    "InputError",
    "InterpreterError",
    "LegacyModelError",
    "ModelFormatError",
    "OpExecutionError",
    "OpRecord",
    "Program",
    "TensorInfo",
    "UnsupportedOpError",
    "load_program",
    "supported_ops",
]
