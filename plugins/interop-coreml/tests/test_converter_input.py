"""The Core ML converter checks the ONNX it is given, even when called directly (no format sniff)."""

from __future__ import annotations

import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper  # noqa: E402

from interop.plugin_api import ModelLoadError  # noqa: E402
from interop_coreml.converter import load_onnx, onnx_to_coreml  # noqa: E402


def _relu(path, opset: int):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), path)
    return path


def test_an_opset_newer_than_onnx_knows_is_refused(tmp_path):
    newest = onnx.defs.onnx_opset_version()
    src = _relu(tmp_path / "future.onnx", newest + 1)
    dst = tmp_path / "future.mlpackage"

    with pytest.raises(ModelLoadError, match=f"opset {newest + 1}, newer than the installed onnx"):
        onnx_to_coreml(src, dst, {})
    assert not dst.exists()


def test_the_newest_known_opset_is_accepted(tmp_path):
    model = load_onnx(_relu(tmp_path / "now.onnx", onnx.defs.onnx_opset_version()))
    assert model.graph.node[0].op_type == "Relu"
