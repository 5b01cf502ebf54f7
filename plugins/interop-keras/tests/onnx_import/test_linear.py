"""Gemm and MatMul against onnxruntime: Dense with weights named after the initializers, fused biases."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from .helpers import assert_matches_onnxruntime, make_model


@pytest.mark.parametrize("attrs", [{}, {"transB": 1}, {"alpha": 0.5, "beta": 2.0}, {"transB": 1, "alpha": 3.0}])
@pytest.mark.parametrize("c_shape", [(4,), (1, 4), None, (1,)])
def test_gemm(attrs, c_shape):
    import keras

    rng = np.random.default_rng(0)
    b = rng.standard_normal((4, 3) if attrs.get("transB") else (3, 4)).astype(np.float32)
    inits = {"fc.weight": b}
    inputs = ["x", "fc.weight"]
    if c_shape is not None:
        inits["fc.bias"] = rng.standard_normal(c_shape).astype(np.float32)
        inputs.append("fc.bias")
    nodes = [helper.make_node("Gemm", inputs, ["g"], **attrs), helper.make_node("Relu", ["g"], ["y"])]
    result = assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3]}, ["y"], inits))
    assert result.trainable_weight_count == result.source_weight_count
    dense = next(layer for layer in result.model.layers if isinstance(layer, keras.layers.Dense))
    assert dense.name == "fc"  # named after the initializers' stem
    for name, value in result.onnx_weights().items():
        np.testing.assert_allclose(value, inits[name], rtol=1e-6)


def test_matmul_then_bias_add_is_one_dense_layer():
    """tf2onnx writes a Keras Dense as MatMul + Add: it comes back as one Dense with a bias."""
    import keras

    rng = np.random.default_rng(0)
    inits = {"kernel": rng.standard_normal((3, 5)).astype(np.float32), "bias": rng.standard_normal(5).astype(np.float32)}
    nodes = [helper.make_node("MatMul", ["x", "kernel"], ["a"]), helper.make_node("Add", ["a", "bias"], ["y"])]
    result = assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3]}, ["y"], inits))
    dense = [layer for layer in result.model.layers if isinstance(layer, keras.layers.Dense)]
    assert len(dense) == 1 and dense[0].use_bias
    assert len(result.model.layers) == 2  # the input and the Dense (named after the output "y")
    assert result.trainable_weight_count == 20


def test_matmul_on_a_3d_tensor_and_a_dynamic_matmul():
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((4, 6)).astype(np.float32)}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["a"]), helper.make_node("Transpose", ["a"], ["at"], perm=[0, 2, 1]),
             helper.make_node("MatMul", ["a", "at"], ["y"])]
    assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 5, 4]}, ["y"], inits))


def test_constant_on_the_left_of_a_matmul_is_a_weight():
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((2, 5)).astype(np.float32)}
    model = make_model([helper.make_node("MatMul", ["w", "x"], ["y"])], {"x": ["N", 5, 3]}, ["y"], inits)
    result = assert_matches_onnxruntime(model)
    assert result.trainable_weight_count == 10


def test_gemm_with_a_transposed_and_a_computed_c():
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Gemm", ["a", "w", "c"], ["y"], transA=1, beta=0.5)]
    model = make_model(nodes, {"a": [3, 4], "c": [4, 5]}, ["y"], {"w": rng.standard_normal((3, 5)).astype(np.float32)})
    result = assert_matches_onnxruntime(model, batches=(3,))
    assert result.trainable_weight_count == 15


@pytest.mark.parametrize("a_shape, w_shape", [((5,), (5, 3)), ((2, 5), (5,)), ((4, 2, 5), (5,))])
def test_matmul_with_vectors(a_shape, w_shape):
    rng = np.random.default_rng(0)
    model = make_model([helper.make_node("MatMul", ["a", "w"], ["y"])], {"a": list(a_shape)}, ["y"],
                       {"w": rng.standard_normal(w_shape).astype(np.float32)})
    assert_matches_onnxruntime(model, batches=(a_shape[0],))
