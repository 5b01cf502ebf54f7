"""Integer outputs across engines: ONNX's int64 against Core ML's int32 compare by value.

Core ML has no int64, so ArgMax, TopK indices and Shape come back as int32; the
check must compare the values (exactly) and fail only when a value does not fit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from interop.checker.metrics import compare, dtype_problem
from interop.checker.runner import compare_outputs
from interop.checker.tolerances import ToleranceSettings


def _argmax_shape_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.random.default_rng(0).uniform(-1, 1, (4, 5)).astype(np.float32), "w")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["scores"]),
        helper.make_node("ArgMax", ["scores"], ["label"], axis=1, keepdims=0),
        helper.make_node("Shape", ["scores"], ["scores_shape"]),
    ]
    graph = helper.make_graph(
        nodes, "argmax_shape",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 5]),
         helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("scores_shape", TensorProto.INT64, [2])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


@pytest.mark.filterwarnings("ignore")
def test_argmax_and_shape_outputs_pass_against_core_mls_int32(run_cli, tmp_path: Path) -> None:
    source = _argmax_shape_onnx(tmp_path / "a.onnx")
    code, out, err = run_cli("convert", source, "-o", tmp_path / "a.mlpackage")
    assert code == 0, out + err
    code, out, err = run_cli("check", source, tmp_path / "a.mlpackage", "--json-file", tmp_path / "report.json")
    assert code == 0, out + err
    document = json.loads((tmp_path / "report.json").read_text())
    outputs = {o["name"]: o for o in document["pairs"][0]["outputs"]}
    assert set(outputs) == {"scores", "label", "scores_shape"}
    for name in ("label", "scores_shape"):
        assert outputs[name]["passed"] is True, outputs[name]
        assert outputs[name]["reference_dtype"] == "int64"
        assert outputs[name]["candidate_dtype"] == "int32"  # Core ML narrows; the report says so
        assert outputs[name]["atol"] == 0.0 and outputs[name]["rtol"] == 0.0


def test_an_int64_value_beyond_int32_fails_with_its_own_message() -> None:
    reference = {"count": np.array([1, 3_000_000_000], dtype=np.int64)}
    candidate = {"count": np.array([1, -1_294_967_296], dtype=np.int32)}  # what a wrap-around gives
    [result] = compare_outputs(reference, candidate, "fp32", ToleranceSettings())
    assert result.passed is False
    assert "reference int64 value 3000000000 does not fit the candidate's int32" in result.message
    assert "dtype mismatch" not in result.message
    assert (result.reference_dtype, result.candidate_dtype) == ("int64", "int32")


def test_narrowed_integers_with_a_different_value_fail_by_value() -> None:
    reference = {"idx": np.array([[0, 2], [1, 1]], dtype=np.int64)}
    candidate = {"idx": np.array([[0, 2], [1, 0]], dtype=np.int32)}
    [result] = compare_outputs(reference, candidate, "fp32", ToleranceSettings())
    assert result.passed is False
    assert "1 of 4 element(s) beyond atol 0" in result.message and "dtype" not in result.message


@pytest.mark.parametrize(("ref", "cand"), [
    (np.array([1, 2], dtype=np.int64), np.array([1.0, 2.0], dtype=np.float32)),
    (np.array([True, False]), np.array([1, 0], dtype=np.int32)),
    (np.array([1, 0], dtype=np.int32), np.array([True, False])),
])
def test_int_against_float_or_bool_stays_a_dtype_mismatch(ref: np.ndarray, cand: np.ndarray) -> None:
    assert dtype_problem(ref, cand) == f"dtype mismatch: reference {ref.dtype}, candidate {cand.dtype}"
    [result] = compare_outputs({"y": ref}, {"y": cand}, "fp32", ToleranceSettings())
    assert result.passed is False and "dtype mismatch" in result.message


def test_integers_compare_exactly_beyond_float64_precision() -> None:
    big = 2**53
    metrics = compare(np.array([big], dtype=np.int64), np.array([big + 1], dtype=np.int64), 0.0, 0.0)
    assert metrics.within_tolerance == 0.0 and metrics.max_abs == 1.0
