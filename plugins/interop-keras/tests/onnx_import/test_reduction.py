"""Reduce* against onnxruntime: global pooling where it fits, interop's Reduce elsewhere."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from .helpers import assert_matches_onnxruntime, make_model

OPS = ["ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
       "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_axes_as_input(op, keepdims):
    nodes = [helper.make_node("Abs", ["x"], ["a"]), helper.make_node(op, ["a", "axes"], ["y"], keepdims=keepdims)]
    model = make_model(nodes, {"x": ["N", 3, 4]}, ["y"], {"axes": np.array([-1], np.int64)}, opset=18)
    assert_matches_onnxruntime(model)


@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_mean_over_spatial_axes_of_a_conv_is_global_pooling(keepdims):
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"]),
             helper.make_node("ReduceMean", ["a"], ["y"], axes=[2, 3], keepdims=keepdims)]
    model = make_model(nodes, {"x": ["N", 3, 5, 5]}, ["y"], {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32)},
                       opset=13)
    result = assert_matches_onnxruntime(model)
    assert any("GlobalAveragePooling" in type(layer).__name__ for layer in result.model.layers)


def test_reduce_sum_before_opset_13_takes_an_attribute():
    node = helper.make_node("ReduceSum", ["x"], ["y"], axes=[1], keepdims=0)
    assert_matches_onnxruntime(make_model([node], {"x": ["N", 3, 4]}, ["y"], opset=11))


@pytest.mark.parametrize("op", ["ReduceLogSum", "ReduceSumSquare", "ReduceL2", "ReduceMean"])
def test_reduction_over_no_axis_keeps_its_elementwise_part(op):
    nodes = [helper.make_node("Abs", ["x"], ["a"]),
             helper.make_node(op, ["a", "none"], ["y"], noop_with_empty_axes=1)]
    model = make_model(nodes, {"x": ["N", 3, 4]}, ["y"], {"none": np.array([], np.int64)}, opset=18)
    assert_matches_onnxruntime(model)


def test_reduction_over_the_batch_axis():
    node = helper.make_node("ReduceMax", ["x", "axes"], ["y"], keepdims=0)
    assert_matches_onnxruntime(make_model([node], {"x": ["N", 3]}, ["y"], {"axes": np.array([0], np.int64)}, opset=18))
