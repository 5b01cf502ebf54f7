"""Run ONNX's backend node test cases through the importer: what converts, and whether it computes the same.

``onnx.backend.test.case.node.collect_testcases()`` yields small models with inputs and
expected outputs. Each case whose ops all have a converter is imported, its module run in
eager torch and compared with the expected outputs. Node cases feed parameters (axes, pads,
scales, weights) as graph inputs; when the importer needs them constant, as exported models
carry them, the case is retried with those inputs bound as initializers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import onnx

from interop.plugin_api import UnsupportedModelError

PASS, MISMATCH, NOT_CONVERTIBLE, ERROR = "pass", "mismatch", "not convertible", "error"


@dataclass(frozen=True)
class CaseResult:
    case: str
    status: str
    reason: str = ""


def _array(value) -> np.ndarray:  # type: ignore[no-untyped-def]
    if isinstance(value, onnx.TensorProto):
        return onnx.numpy_helper.to_array(value)
    return np.asarray(value)


def bind_parameters(model: onnx.ModelProto, inputs: list[np.ndarray]) -> onnx.ModelProto:
    """Every graph input but the first becomes an initializer holding the case's data."""
    bound = onnx.ModelProto()
    bound.CopyFrom(model)
    graph_inputs = list(bound.graph.input)
    for value_info, value in list(zip(graph_inputs, inputs))[1:]:
        bound.graph.initializer.append(onnx.numpy_helper.from_array(value, value_info.name))
    del bound.graph.input[1:]
    return bound


def compare(expected: np.ndarray, got: np.ndarray, rtol: float = 1e-3, atol: float = 1e-4) -> str | None:
    expected, got = np.asarray(expected), np.asarray(got)
    if expected.shape != got.shape:
        return f"shape {got.shape} != expected {expected.shape}"
    if expected.dtype.kind in "biu":
        return None if np.array_equal(expected.astype(np.int64), got.astype(np.int64)) else "integer values differ"
    if expected.dtype.kind == "f" or "bfloat16" in str(expected.dtype):
        if expected.dtype == np.float16 or "bfloat16" in str(expected.dtype):
            rtol, atol = max(rtol, 1e-2), max(atol, 1e-2)
        exp, out = expected.astype(np.float64), got.astype(np.float64)
        if not np.allclose(out, exp, rtol=rtol, atol=atol, equal_nan=True):
            return f"max abs error {np.nanmax(np.abs(out - exp)):.3g}"
        return None
    return f"cannot compare dtype {expected.dtype}"


def _run(model: onnx.ModelProto, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import torch

    from interop_torch.onnx_import.build import _tensor, instantiate, plan_import

    plan = plan_import(model)
    module = instantiate(plan).eval()
    with torch.no_grad():
        outputs = module(*[_tensor(a) for a in inputs[:len(plan.inputs)]])
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    return [o.float().numpy() if o.dtype == torch.bfloat16 else o.numpy() for o in outputs]


def run_case(case) -> CaseResult:  # type: ignore[no-untyped-def]
    """Import, run and compare one node test case (its first data set)."""
    inputs, expected = case.data_sets[0]
    inputs = [_array(v) for v in inputs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            try:
                outputs = _run(case.model, inputs)
            except UnsupportedModelError as error:
                if len(inputs) < 2 or not ("constant" in error.message or "run time" in error.message):
                    raise
                outputs = _run(bind_parameters(case.model, inputs), inputs[:1])
        except UnsupportedModelError as error:
            return CaseResult(case.name, NOT_CONVERTIBLE, error.message)
        except Exception as error:  # noqa: BLE001 - reported per case
            return CaseResult(case.name, ERROR, f"{type(error).__name__}: {str(error).strip()[:200]}")
    for out, exp in zip(outputs, expected):
        problem = compare(_array(exp), out)
        if problem:
            return CaseResult(case.name, MISMATCH, problem)
    return CaseResult(case.name, PASS)


def importable_cases() -> list:  # type: ignore[type-arg]
    """Node test cases whose every node has a converter for its schema version."""
    from onnx.backend.test.case.node import collect_testcases

    from interop_torch.onnx_import import ops
    from interop_torch.onnx_import.prepare import default_opset

    cases = []
    for case in collect_testcases():
        opset = default_opset(case.model)
        if all(ops.module_converter_for(node, opset)[0] is not None or node.op_type == "Constant" for node in case.model.graph.node):
            cases.append(case)
    return cases
