"""Add/Sub/Mul/Div/Pow/Max/Min/Sum/Mean and unary math against onnxruntime; constants and weights."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from .helpers import assert_matches_onnxruntime, make_model

BINARY = ["Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"]


@pytest.mark.parametrize("op", BINARY)
def test_two_tensors(op):
    nodes = [helper.make_node("Abs", ["a"], ["pa"]), helper.make_node(op, ["pa", "b"], ["y"])] if op == "Pow" \
        else [helper.make_node(op, ["a", "b"], ["y"])]
    assert_matches_onnxruntime(make_model(nodes, {"a": ["N", 3, 4], "b": ["N", 3, 4]}, ["y"]))


@pytest.mark.parametrize("op", ["Add", "Mul", "Div", "Max"])
def test_broadcast_between_tensors(op):
    assert_matches_onnxruntime(make_model([helper.make_node(op, ["a", "b"], ["y"])],
                                          {"a": ["N", 3, 4], "b": ["N", 1, 4]}, ["y"]))


@pytest.mark.parametrize("op", ["Sum", "Mean", "Max", "Min"])
def test_variadic(op):
    assert_matches_onnxruntime(make_model([helper.make_node(op, ["a", "b", "c"], ["y"])],
                                          {"a": ["N", 5], "b": ["N", 5], "c": ["N", 5]}, ["y"]))


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Pow"])
@pytest.mark.parametrize("first", [False, True])
def test_fixed_constants(op, first):
    """Constants on the input (preprocessing) stay fixed: Rescaling where it fits, else a constant operand."""
    c = np.array([0.5, 2.0, 1.5, 3.0], np.float32) if op != "Pow" else np.float32(2.0)
    inputs = ["c", "x"] if first else ["x", "c"]
    nodes = [helper.make_node("Abs", ["x0"], ["x"]), helper.make_node(op, inputs, ["y"])]
    result = assert_matches_onnxruntime(make_model(nodes, {"x0": ["N", 3, 4]}, ["y"], {"c": c}))
    assert result.trainable_weight_count == result.source_weight_count == 0


def test_per_channel_scale_and_shift_after_a_conv_are_weights_kept_channels_last():
    """A Caffe-style Scale (Mul + Add of (C,1,1) constants) after a Conv: trainable, no transposes."""
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
             "scale": rng.uniform(0.5, 1.5, (4, 1, 1)).astype(np.float32),
             "shift": rng.uniform(-1, 1, (4,)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"]), helper.make_node("Mul", ["a", "scale"], ["b"]),
             helper.make_node("Unsqueeze", ["shift", "axes"], ["shift3"]),
             helper.make_node("Add", ["b", "shift3"], ["y"])]
    inits["axes"] = np.array([1, 2], np.int64)
    result = assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3, 6, 6]}, ["y"], inits))
    assert result.trainable_weight_count == result.source_weight_count == 108 + 4 + 4
    assert result.transposes == 2
    for name in ("scale", "shift"):
        np.testing.assert_array_equal(result.onnx_weights()[name], inits[name])


def test_one_element_factor_deep_in_the_network_is_a_constant():
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((3, 4)).astype(np.float32), "half": np.float32(0.5)}
    nodes = [helper.make_node("MatMul", ["x", "w"], ["a"]), helper.make_node("Mul", ["a", "half"], ["y"])]
    result = assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3]}, ["y"], inits))
    assert result.trainable_weight_count == result.source_weight_count == 12


def test_legacy_broadcast_before_opset_7():
    """Opset 6 ``broadcast=1, axis=1``: B lines up with axis 1 (onnxruntime no longer runs opset 6)."""
    from interop_keras.onnx_import import import_onnx

    rng = np.random.default_rng(0)
    b = rng.standard_normal(3).astype(np.float32)
    node = helper.make_node("Add", ["x", "b"], ["y"], broadcast=1, axis=1)
    model = make_model([node], {"x": ["N", 3, 4, 4]}, {"y": ["N", 3, 4, 4]}, {"b": b}, opset=6)
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(import_onnx(model).model(x)), x + b[:, None, None], rtol=1e-6)


UNARY = ["Abs", "Neg", "Reciprocal", "Sqrt", "Log", "Exp", "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Tan",
         "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Erf"]


def test_unary_math():
    """One graph of every unary op, each on inputs inside its domain."""
    nodes, outputs = [helper.make_node("Sigmoid", ["x"], ["unit"]), helper.make_node("Exp", ["unit"], ["above_one"]),
                      helper.make_node("Mul", ["unit", "k"], ["open_unit"])], []
    for op in UNARY:
        source = {"Sqrt": "unit", "Log": "unit", "Reciprocal": "above_one", "Acosh": "above_one",
                  "Asin": "open_unit", "Acos": "open_unit", "Atanh": "open_unit"}.get(op, "x")
        nodes.append(helper.make_node(op, [source], [f"y_{op}"]))
        outputs.append(f"y_{op}")
    model = make_model(nodes, {"x": ["N", 6]}, outputs, {"k": np.float32(0.9)})
    assert_matches_onnxruntime(model, rtol=2e-4, atol=2e-5)


def test_broadcast_along_a_static_batch_axis():
    """Keras' merge layers refuse different batch sizes; a size-1 batch broadcasts through interop's layer."""
    assert_matches_onnxruntime(make_model([helper.make_node("Sub", ["a", "b"], ["y"])],
                                          {"a": [3, 6, 2], "b": [1, 6, 2]}, ["y"]), batches=(3,))


@pytest.mark.parametrize("op", ["Sum", "Mean", "Max", "Min"])
def test_variadic_with_constants_and_broadcasting(op):
    rng = np.random.default_rng(0)
    inits = {"c": rng.standard_normal((1, 4)).astype(np.float32), "d": np.float32(0.5)}
    node = helper.make_node(op, ["a", "c", "b", "d"], ["y"])
    assert_matches_onnxruntime(make_model([node], {"a": ["N", 3, 4], "b": ["N", 1, 4]}, ["y"], inits))


def test_a_constant_with_more_axes_than_the_tensor():
    rng = np.random.default_rng(0)
    node = helper.make_node("Mul", ["x", "c"], ["y"])
    assert_matches_onnxruntime(make_model([node], {"x": [2, 4]}, ["y"], {"c": rng.standard_normal((3, 1, 4)).astype(np.float32)}),
                               batches=(2,))


def test_a_fixed_constant_that_broadcasts_the_tensor_up():
    """x (N, 3, 1) + c (3, 3): the output grows, so it is not a Rescaling (which keeps its input's shape)."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["g"]), helper.make_node("Mean", ["g", "c"], ["y"])]
    model = make_model(nodes, {"x": ["N", 3, 6]}, ["y"], {"c": rng.standard_normal((3, 3)).astype(np.float32)})
    assert_matches_onnxruntime(model)


def test_mean_of_tensors_that_broadcast():
    assert_matches_onnxruntime(make_model([helper.make_node("Mean", ["a", "b", "b"], ["y"])],
                                          {"a": ["N", 2, 1], "b": ["N", 1, 1]}, ["y"]))
