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


def test_rank0_inputs_and_outputs_keep_their_rank_through_core_ml(tmp_path):
    """Core ML carries a rank-0 tensor as shape (1,); the session shows and takes () like ONNX."""
    import numpy as np
    import onnxruntime as ort

    from interop_coreml.runtime import load_interpreter

    graph = helper.make_graph(
        [helper.make_node("Mul", ["s", "x"], ["y"]), helper.make_node("ReduceSum", ["y"], ["t"], keepdims=0)], "g",
        [helper.make_tensor_value_info("s", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3]),
         helper.make_tensor_value_info("t", TensorProto.FLOAT, [])],
    )
    src = tmp_path / "scalar.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), src)
    dst = tmp_path / "scalar.mlpackage"
    onnx_to_coreml(src, dst, {})

    session = load_interpreter(dst)
    assert [(spec.name, spec.shape) for spec in session.inputs] == [("s", ()), ("x", (3,))]
    assert [(spec.name, spec.shape) for spec in session.outputs] == [("y", (3,)), ("t", ())]
    feeds = {"s": np.array(-1.5, np.float32), "x": np.array([1.0, 2.0, 4.0], np.float32)}
    got = session.run(feeds)
    expected = dict(zip(["y", "t"], ort.InferenceSession(str(src)).run(None, feeds)))
    for name in ("y", "t"):
        assert got[name].shape == expected[name].shape
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6)
