"""Shared helpers of the interpreter tests: building one-op MIL programs and saving torch conversions."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np


def one_op_program(build: Callable[[], Any], opset: str = "iOS17") -> Any:
    """A MIL program whose main function returns ``build()``'s var(s), built from constants only.

    coremltools runs each op's value inference while building, so the returned
    vars carry coremltools' own result in ``.val``.
    """
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    @mb.program(input_specs=[], opset_version=getattr(ct.target, opset))
    def program():
        return build()

    return program


def interpreter_and_value_inference(build: Callable[[], Any], opset: str = "iOS17") -> tuple[list, list]:
    """(interpreter results, coremltools value-inference results) of a constant one-op program."""
    from interop_coreml.interpreter import Program

    program = one_op_program(build, opset)
    function = program.functions["main"]
    expected = [var.val for var in function.outputs]
    ours = Program(program).run({})
    return [ours[var.name] for var in function.outputs], expected


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def interpret(build: Callable[[], Any], opset: str = "iOS17") -> list[np.ndarray]:
    """The interpreter's results of a constant one-op program (for ops checked against other references)."""
    from interop_coreml.interpreter import Program

    program = one_op_program(build, opset)
    ours = Program(program).run({})
    return [ours[var.name] for var in program.functions["main"].outputs]


def interpret_on_input(build: Callable[[Any], Any], x: np.ndarray, opset: str = "iOS17") -> list[np.ndarray]:
    """The interpreter's results of a one-op program fed ``x`` at run time (no value inference at build)."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb

    from interop_coreml.interpreter import Program

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape)], opset_version=getattr(ct.target, opset))
    def program(x):
        return build(x)

    input_name = next(iter(program.functions["main"].inputs))
    ours = Program(program).run({input_name: x})
    return [ours[var.name] for var in program.functions["main"].outputs]
