"""The kernel table names real MIL ops, and the interpreter covers every op interop's exporter emits."""

from __future__ import annotations

import pytest

pytest.importorskip("coremltools")
from coremltools.converters.mil.mil.ops.registry import SSAOpRegistry  # noqa: E402

from interop_coreml.interpreter import KERNELS, supported_ops  # noqa: E402


def test_every_kernel_is_registered_for_a_mil_op_type():
    mil_ops = set(SSAOpRegistry.core_ops)
    assert not sorted(set(KERNELS) - mil_ops)


def test_supported_ops_include_constants_and_control_flow():
    ops = set(supported_ops())
    assert {"const", "cond", "while_loop", "conv", "linear", "lstm"} <= ops
    # Random sampling has no reproducible reference value, so it is refused on purpose.
    assert "random_normal" not in ops


def test_every_kernel_accepts_every_input_of_every_opset_version_of_its_op():
    import inspect

    from coremltools.converters.mil.mil.input_type import InternalInputType

    problems = []
    for op_type, kernel in sorted(KERNELS.items()):
        accepted = set(inspect.signature(kernel).parameters) - {"ctx"}
        for version, op_class in SSAOpRegistry.core_ops[op_type].items():
            if op_class is None:
                continue
            declared = {
                name
                for name, input_type in op_class.input_spec.input_types.items()
                if not isinstance(input_type, InternalInputType) and not name.startswith("_")
            }
            if declared - accepted:
                problems.append((op_type, str(version), sorted(declared - accepted)))
    assert not problems
