"""Exceptions raised by the Core ML reference interpreter.

Each names what went wrong in terms a user can act on: which file, which op,
which variable, and where in the program it sits.
"""

from __future__ import annotations


class InterpreterError(Exception):
    """Base class of every error the interpreter raises on purpose."""


class ModelFormatError(InterpreterError):
    """The path is not a readable Core ML model (bad package, missing spec or weights)."""


class LegacyModelError(ModelFormatError):
    """The model is a legacy NeuralNetwork (or other non-ML-Program) Core ML model.

    The interpreter only executes ML Programs (``.mlpackage`` produced with
    ``convert_to="mlprogram"``); legacy ``neuralNetwork`` models are refused.
    """


class UnsupportedOpError(InterpreterError):
    """The program contains a MIL op the interpreter has no kernel for.

    Raised at load time, before anything runs.
    """

    def __init__(self, op_type: str, op_name: str, output_names: list[str], location: str):
        self.op_type = op_type
        self.op_name = op_name
        self.output_names = list(output_names)
        self.location = location
        outputs = ", ".join(self.output_names) or "<none>"
        super().__init__(
            f"the Core ML reference interpreter has no kernel for MIL op type {op_type!r} "
            f"(op {op_name!r}, producing {outputs}) in {location}"
        )


class InputError(InterpreterError):
    """The feeds given to ``run`` do not match the program's inputs."""


class OpExecutionError(InterpreterError):
    """A kernel failed while evaluating one op; the message names the op."""
