"""The import as a whole: names, graph edges, what is refused and how."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

from interop.plugin_api import ModelLoadError, UnsupportedModelError

from .helpers import assert_matches_onnxruntime, make_model


@pytest.mark.parametrize("onnx_name, layer", [
    ("layer1.0.conv1.weight", "layer1.0.conv1"),
    ("gpu_0/res2_0_branch2a_w_0", "gpu_0.res2_0_branch2a"),
    ("iris_mlp_1/hidden_1/Cast/ReadVariableOp:0", "iris_mlp_1.hidden_1"),
    ("conv1_W", "conv1"),
    ("weight", "weight"),
])
def test_layers_are_named_after_their_weights(onnx_name, layer):
    from interop_keras.onnx_import.context import sanitize, weight_stem

    assert sanitize(weight_stem(onnx_name)) == layer


def test_inputs_and_outputs_keep_their_onnx_names():
    nodes = [helper.make_node("Relu", ["x"], ["hidden"]), helper.make_node("Sigmoid", ["hidden"], ["probs"])]
    result = assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3]}, ["hidden", "probs"]))
    assert result.model.output_names == ["hidden", "probs"] and result.input_names == ["x"]


def test_an_output_that_is_an_input_or_used_twice():
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Identity", ["a"], ["b"])]
    assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3]}, ["a", "b"]))


def test_unknown_ops_and_versions_are_listed_before_any_keras_work():
    from interop_keras.onnx_import import import_onnx

    nodes = [helper.make_node("NonMaxSuppression", ["b", "s"], ["i"]), helper.make_node("Relu", ["x"], ["y"]),
             helper.make_node("Custom", ["x"], ["z"], domain="com.example")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                     for n, s in (("b", [1, 4, 4]), ("s", [1, 1, 4]), ("x", ["N", 3]))],
        [helper.make_tensor_value_info("i", TensorProto.INT64, [None, 3]),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, ["N", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)])
    with pytest.raises(UnsupportedModelError) as caught:
        import_onnx(model)
    assert "NonMaxSuppression x1" in caught.value.message and "com.example.Custom x1" in caught.value.message
    assert caught.value.exit_code == 3


def test_an_op_version_no_converter_was_written_for_is_reported():
    from interop_keras.onnx_import import import_onnx

    model = make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": ["N", 3]}, {"y": ["N", 3]}, opset=5)
    with pytest.raises(UnsupportedModelError, match=r"Relu-1 \(converted versions: 6, 13, 14\)"):
        import_onnx(model)


def test_inputs_keras_cannot_take_are_refused():
    from interop_keras.onnx_import import import_onnx

    model = make_model([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], {"x": ["N", 3]}, ["y"],
                       input_types={"x": TensorProto.DOUBLE})
    with pytest.raises(UnsupportedModelError, match="DOUBLE"):
        import_onnx(model)


def test_a_file_that_is_not_onnx_is_a_load_error(tmp_path):
    from interop_keras.onnx_import import import_onnx

    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(ModelLoadError):
        import_onnx(tmp_path / "junk.onnx")


def test_weights_map_back_to_their_onnx_tensors():
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32),
             "fc": rng.standard_normal((4, 2)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"]), helper.make_node("GlobalAveragePool", ["c"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]), helper.make_node("MatMul", ["f", "fc"], ["y"])]
    result = assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3, 5, 5]}, ["y"], inits))
    weights = result.onnx_weights()
    assert set(weights) == set(inits)
    for name, value in inits.items():
        np.testing.assert_array_equal(weights[name], value)


def test_sizes_known_only_at_run_time_that_the_weights_fix():
    """A symbolic channel or feature count: the weights say what it is, and Keras is told."""
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
             "s": rng.uniform(0.5, 1.5, 4).astype(np.float32), "b": rng.uniform(-1, 1, 4).astype(np.float32),
             "m": rng.uniform(-1, 1, 4).astype(np.float32), "v": rng.uniform(0.5, 1.5, 4).astype(np.float32),
             "fc": rng.standard_normal((3, 2)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node("BatchNormalization", ["f", "s", "b", "m", "v"], ["bn"]),
             helper.make_node("Gemm", ["g", "fc"], ["y"])]
    model = make_model(nodes, {"x": ["N", "C", 5, 5], "f": ["N", "F"], "g": ["N", "G"]}, {"c": ["N", 4, 3, 3],
                                                                                         "bn": ["N", 4], "y": ["N", 2]},
                       inits)
    from .helpers import keras_run, ort_run

    from interop_keras.onnx_import import import_onnx

    keras_model = import_onnx(model).model
    feeds = {"x": rng.standard_normal((2, 3, 5, 5)).astype(np.float32),
             "f": rng.standard_normal((2, 4)).astype(np.float32), "g": rng.standard_normal((2, 3)).astype(np.float32)}
    expected, actual = ort_run(model, feeds), keras_run(keras_model, model, feeds)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-4, atol=1e-5)


def test_normalisations_after_a_transpose_of_the_batch_axis():
    """Keras' InstanceNorm/PRelu treat Keras axis 0 as the batch: a layout that moved it is undone first."""
    rng = np.random.default_rng(0)
    inits = {"s": rng.uniform(0.5, 1.5, 4).astype(np.float32), "b": rng.uniform(-1, 1, 4).astype(np.float32),
             "slope": rng.uniform(0, 0.5, (4, 1, 1)).astype(np.float32)}
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[1, 3, 2, 0]),
             helper.make_node("InstanceNormalization", ["t", "s", "b"], ["i"]),
             helper.make_node("PRelu", ["i", "slope"], ["y"])]
    assert_matches_onnxruntime(make_model(nodes, {"x": [3, 6, 3, 4]}, ["y"], inits), batches=(3,))


def test_a_broadcast_add_keras_would_get_wrong():
    """keras.ops.add on TensorFlow adds a (5, 1) operand along the last axis of a (5, 5) one."""
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((5, 5)).astype(np.float32), "c": rng.standard_normal((5, 1)).astype(np.float32)}
    nodes = [helper.make_node("Gemm", ["x", "w", "c"], ["g"]), helper.make_node("Add", ["g", "z"], ["y"])]
    assert_matches_onnxruntime(make_model(nodes, {"x": [5, 5], "z": [5, 1]}, ["y"], inits), batches=(5,))
