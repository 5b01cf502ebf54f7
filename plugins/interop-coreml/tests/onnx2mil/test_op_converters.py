"""The op registry claims only what the converters were checked against, and fails closed beyond it."""

from __future__ import annotations

import onnx
import pytest

from interop_coreml.onnx2mil import op_converters


def test_the_verified_opset_is_one_onnx_knows() -> None:
    assert op_converters.VERIFIED_OPSET <= onnx.defs.onnx_opset_version()


def test_a_schema_newer_than_the_verified_opset_has_no_converter(monkeypatch: pytest.MonkeyPatch) -> None:
    # Relu's schema changed at opset 14 (bfloat16); pretend the converters were checked up to 13 only.
    assert op_converters.schema_version("", "Relu", 18) == 14
    assert op_converters.converter_for("", "Relu", 18) is not None
    monkeypatch.setattr(op_converters, "VERIFIED_OPSET", 13)
    assert op_converters.converter_for("", "Relu", 13) is not None  # schema 6: verified
    assert op_converters.converter_for("", "Relu", 18) is None  # schema 14: not read yet, refused
    assert op_converters.unverified_schema("", "Relu", 18) == 14
    assert max(op_converters.supported_opsets("Relu")) <= 13


def test_the_driver_says_why_an_op_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from interop_coreml.onnx2mil.driver import find_unsupported, unsupported_message
    from interop_coreml.onnx2mil.prepass import prepare

    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"], name="relu")], "g",
                                   [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    monkeypatch.setattr(op_converters, "VERIFIED_OPSET", 13)
    message = unsupported_message(find_unsupported(prepare(model), 18), 18)
    assert "Relu (its opset-14 definition is newer than the translator knows: 13) x1" in message
