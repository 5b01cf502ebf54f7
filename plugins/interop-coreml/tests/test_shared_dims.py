"""Inputs that share a dynamic dim (x and idx with one batch) convert to a package interop can read.

A saved ML Program does not name its flexible dims, so coremltools' reader gives each one its own
symbol and ``scatter_along_axis`` (data and indices must have equal dims) failed to load: `interop
check` said only "could not read the ML Program in m.mlpackage: ". The translator records the shared
dims in the metadata and the reader declares them as one symbol; the converter reads every package
back and writes none it cannot read.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

from interop_coreml.converter import onnx_to_coreml, read_back  # noqa: E402

SHARED_DIMS_KEY = "interop.shared_dims"


def _scatter_model(path):
    """scatter_add-like ScatterElements and GatherElements of x (B, 4) by idx (B, 4), one dim_param B."""
    graph = helper.make_graph(
        [helper.make_node("ScatterElements", ["x", "idx", "x"], ["scattered"], axis=1, reduction="add"),
         helper.make_node("GatherElements", ["x", "idx"], ["gathered"], axis=1)],
        "shared_batch",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 4]),
         helper.make_tensor_value_info("idx", TensorProto.INT64, ["B", 4])],
        [helper.make_tensor_value_info("scattered", TensorProto.FLOAT, ["B", 4]),
         helper.make_tensor_value_info("gathered", TensorProto.FLOAT, ["B", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, path)
    return model


def _feeds(batch, seed):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((batch, 4)).astype(np.float32),
            "idx": rng.integers(0, 4, (batch, 4)).astype(np.int64)}


def test_inputs_sharing_a_batch_convert_and_match_onnxruntime(tmp_path):
    import onnxruntime as ort

    from interop_coreml.runtime import load_interpreter

    model = _scatter_model(tmp_path / "m.onnx")
    onnx_to_coreml(tmp_path / "m.onnx", tmp_path / "m.mlpackage", {})

    session = load_interpreter(tmp_path / "m.mlpackage")
    assert json.loads(session.metadata[SHARED_DIMS_KEY]) == {"idx": ["B", None], "x": ["B", None]}
    reference = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for batch, seed in ((1, 0), (5, 1)):
        feeds = _feeds(batch, seed)
        ours = session.run(feeds)
        for name, expected in zip(["scattered", "gathered"], reference.run(None, feeds)):
            assert ours[name].shape == (batch, 4)
            np.testing.assert_allclose(ours[name], expected, rtol=1e-6, atol=1e-6, err_msg=name)


def test_feeds_that_disagree_on_a_shared_dim_are_refused_by_name(tmp_path):
    """x with batch 2 and idx with batch 3 (onnxruntime refuses them too): the error names both inputs."""
    import onnxruntime as ort

    from interop_coreml.interpreter.errors import InputError
    from interop_coreml.runtime import load_interpreter

    model = _scatter_model(tmp_path / "m.onnx")
    onnx_to_coreml(tmp_path / "m.onnx", tmp_path / "m.mlpackage", {})
    feeds = {"x": _feeds(2, 0)["x"], "idx": _feeds(3, 1)["idx"]}
    reference = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception):  # noqa: B017 - onnxruntime's own error types
        reference.run(None, feeds)
    with pytest.raises(InputError) as info:
        load_interpreter(tmp_path / "m.mlpackage").run(feeds)
    message = str(info.value)
    assert "'idx' has size 3 on axis 0" in message and "axis 0 of input 'x', which has size 2" in message
    # The same batch for both runs.
    assert load_interpreter(tmp_path / "m.mlpackage").run(_feeds(4, 2))["scattered"].shape == (4, 4)


def test_a_dim_of_one_input_alone_is_not_recorded(tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])], "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, ["M", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), tmp_path / "a.onnx")
    onnx_to_coreml(tmp_path / "a.onnx", tmp_path / "a.mlpackage", {})

    from interop_coreml.runtime import load_interpreter

    assert SHARED_DIMS_KEY not in load_interpreter(tmp_path / "a.mlpackage").metadata


def _without_record(package, dst):
    """The package as written before shared dims were recorded: the same program, no metadata entry."""
    import coremltools as ct

    written = ct.models.MLModel(str(package), skip_model_load=True)
    spec = written.get_spec()
    del spec.description.metadata.userDefined[SHARED_DIMS_KEY]
    ct.models.MLModel(spec, weights_dir=written.weights_dir, skip_model_load=True).save(str(dst))
    return dst


def test_a_package_that_cannot_be_read_says_which_op_failed_and_is_removed(tmp_path):
    from interop_coreml.interpreter.errors import ModelFormatError
    from interop_coreml.interpreter.loading import load_saved_model

    _scatter_model(tmp_path / "m.onnx")
    onnx_to_coreml(tmp_path / "m.onnx", tmp_path / "m.mlpackage", {})
    old = _without_record(tmp_path / "m.mlpackage", tmp_path / "old.mlpackage")

    with pytest.raises(ModelFormatError) as info:
        load_saved_model(old)
    message = str(info.value)
    assert "op scatter_along_axis" in message and "AssertionError" in message
    assert "\n" not in message

    copy = shutil.copytree(old, tmp_path / "copy.mlpackage")
    with pytest.raises(Exception) as info:
        read_back(copy)
    assert info.value.exit_code == 3
    assert "cannot be read back, so no package was written" in str(info.value)
    assert "op scatter_along_axis" in str(info.value)
    assert not copy.exists()


def test_cli_convert_and_check_of_inputs_sharing_a_batch(tmp_path, run_cli):
    _scatter_model(tmp_path / "m.onnx")
    code, _, err = run_cli("convert", tmp_path / "m.onnx", "-o", tmp_path / "m.mlpackage")
    assert code == 0, err
    code, out, err = run_cli("check", tmp_path / "m.onnx", tmp_path / "m.mlpackage", "--range", "idx=0,3")
    assert code == 0, out + err
    assert "PASSED" in out


def test_cli_check_of_an_unreadable_package_names_the_failing_op(tmp_path, run_cli):
    _scatter_model(tmp_path / "m.onnx")
    onnx_to_coreml(tmp_path / "m.onnx", tmp_path / "m.mlpackage", {})
    old = _without_record(tmp_path / "m.mlpackage", tmp_path / "old.mlpackage")

    code, out, err = run_cli("check", tmp_path / "m.onnx", old)
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "op scatter_along_axis (output 'scattered') failed: AssertionError" in lines[0]
    assert "Traceback" not in err
