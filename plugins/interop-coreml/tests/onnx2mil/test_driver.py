"""Driver behaviour: names, metadata, dynamic dims, precision, errors, plugin glue."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from interop.plugin_api import ModelLoadError, UnsupportedModelError

from interop_coreml.converter import onnx_to_coreml
from interop_coreml.onnx2mil import IO_NAMES_KEY, convert_model

from .conftest import assert_close, interpret, make_model, ort_run, save, tensor_info


def _awkward_names_model() -> onnx.ModelProto:
    nodes = [
        onnx.helper.make_node("Relu", ["input:0"], ["hidden/relu"]),
        onnx.helper.make_node("Add", ["hidden/relu", "1st bias"], ["scores.out"]),
    ]
    bias = onnx.numpy_helper.from_array(np.array([0.5, -0.5, 1.0], dtype=np.float32), "1st bias")
    return make_model(nodes, [tensor_info("input:0", ["batch", 3])], [tensor_info("scores.out", ["batch", 3])], [bias])


def test_invalid_names_are_mapped_and_recorded(tmp_path):
    model = _awkward_names_model()
    mlmodel = convert_model(model)
    names = json.loads(mlmodel.user_defined_metadata[IO_NAMES_KEY])
    assert sorted(names["inputs"].values()) == ["input:0"]
    assert sorted(names["outputs"].values()) == ["scores.out"]
    spec = mlmodel.get_spec()
    coreml_inputs = [i.name for i in spec.description.input]
    assert coreml_inputs == list(names["inputs"]) and coreml_inputs[0].isidentifier()
    # The runtime uses the recorded mapping, so ONNX names work end to end.
    path = save(model, tmp_path / "names.mlpackage")
    feeds = {"input:0": np.array([[1.0, -2.0, 3.0]], dtype=np.float32)}
    assert_close(interpret(path, feeds), ort_run(model, feeds))


def test_identity_mapping_is_still_written():
    node = onnx.helper.make_node("Sigmoid", ["x"], ["y"])
    mlmodel = convert_model(make_model([node], [tensor_info("x", [2])], [tensor_info("y", [2])]))
    names = json.loads(mlmodel.user_defined_metadata[IO_NAMES_KEY])
    assert names == {"inputs": {"x": "x"}, "outputs": {"y": "y"}}


def test_metadata_records_source(tmp_path):
    model = _awkward_names_model()
    model.producer_name, model.producer_version = "pytorch", "2.13.0"
    meta = convert_model(model).user_defined_metadata
    assert meta["interop.source_producer"] == "pytorch 2.13.0"
    assert meta["interop.source_opset"] == "18"
    assert meta["interop.version"]


def test_symbolic_batch_becomes_bounded_range():
    spec = convert_model(_awkward_names_model(), max_dynamic_dim=64).get_spec()
    ranges = spec.description.input[0].type.multiArrayType.shapeRange.sizeRanges
    assert (ranges[0].lowerBound, ranges[0].upperBound) == (1, 64)
    assert (ranges[1].lowerBound, ranges[1].upperBound) == (3, 3)


def test_fp16_precision_computes_in_half(tmp_path):
    model = _awkward_names_model()
    path = save(model, tmp_path / "fp16.mlpackage", precision="fp16")
    text = str(convert_model(model, precision="fp16")._mil_program)
    assert "fp16" in text
    feeds = {"input:0": np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)}
    assert_close(interpret(path, feeds), ort_run(model, feeds), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("target", ["iOS16", "iOS17", "iOS18"])
def test_newer_deployment_targets(target):
    spec = convert_model(_awkward_names_model(), minimum_deployment_target=target).get_spec()
    assert spec.specificationVersion >= 7


def test_bad_options_are_rejected():
    with pytest.raises(ValueError):
        convert_model(_awkward_names_model(), precision="int8")
    with pytest.raises(ValueError):
        convert_model(_awkward_names_model(), minimum_deployment_target="iOS12")


def _two_unsupported_ops_model() -> onnx.ModelProto:
    nodes = [
        onnx.helper.make_node("Relu", ["x"], ["a"], name="relu"),
        onnx.helper.make_node("Det", ["a"], ["b"], name="det_1"),
        onnx.helper.make_node("Unique", ["x"], ["u"], name="unique_1"),
        onnx.helper.make_node("Det", ["x"], ["c"], name="det_2"),
        onnx.helper.make_node("Add", ["b", "c"], ["y"], name="add"),
    ]
    return make_model(nodes, [tensor_info("x", [2, 3, 3])], [tensor_info("y", [2]), tensor_info("u", [None])])


def test_unsupported_ops_reported_together_and_nothing_written(tmp_path):
    src = tmp_path / "bad.onnx"
    onnx.save(_two_unsupported_ops_model(), str(src))
    dst = tmp_path / "bad.mlpackage"
    with pytest.raises(UnsupportedModelError) as info:
        onnx_to_coreml(src, dst, {})
    message = info.value.message
    assert "Det x2" in message and "det_1" in message and "det_2" in message
    assert "Unique x1" in message and "unique_1" in message
    assert "opset 18" in message
    assert info.value.hint and info.value.exit_code == 3
    assert not dst.exists()


def test_corrupt_file_raises_model_load_error(tmp_path):
    src = tmp_path / "garbage.onnx"
    src.write_bytes(b"\x00\x01not a protobuf at all" * 10)
    with pytest.raises(ModelLoadError) as info:
        onnx_to_coreml(src, tmp_path / "out.mlpackage", {})
    assert info.value.exit_code == 2
    assert not (tmp_path / "out.mlpackage").exists()


def test_plugin_glue_writes_exactly_dst_with_options(tmp_path):
    src = tmp_path / "m.onnx"
    onnx.save(_awkward_names_model(), str(src))
    dst = tmp_path / "tmp-output-name"
    onnx_to_coreml(src, dst, {"precision": "fp32", "minimum_deployment_target": "iOS16", "max_dynamic_dim": 8})
    assert (dst / "Manifest.json").is_file()
    feeds = {"input:0": np.ones((8, 3), dtype=np.float32)}
    assert interpret(dst, feeds)["scores.out"].shape == (8, 3)
