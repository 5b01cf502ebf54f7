"""MaxPool, AveragePool and global pooling against onnxruntime: Keras' own layers and interop's Pooling."""

from __future__ import annotations

import pytest
from onnx import helper

from .helpers import assert_matches_onnxruntime, make_model


def _layers(result):
    return {type(layer).__name__ for layer in result.model.layers}


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("case", [
    dict(shape=(3, 8, 8), attrs=dict(kernel_shape=[2, 2], strides=[2, 2]), native=True),
    dict(shape=(3, 8, 8), attrs=dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1]), native=True),
    dict(shape=(3, 8, 8), attrs=dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]), native=False),
    dict(shape=(3, 10, 10), attrs=dict(kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1), native=False),
    dict(shape=(3, 8, 8), attrs=dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1]), native=True),
    dict(shape=(3, 10, 10), attrs=dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
         native=False),
    dict(shape=(3, 10), attrs=dict(kernel_shape=[3], strides=[2], pads=[1, 1]), native=False),
    dict(shape=(2, 6, 6, 6), attrs=dict(kernel_shape=[2, 2, 2], strides=[2, 2, 2]), native=True),
], ids=lambda c: "-".join(f"{k}{v}" for k, v in c["attrs"].items()))
def test_pool(op, case):
    model = make_model([helper.make_node(op, ["x"], ["y"], **case["attrs"])], {"x": ["N", *case["shape"]]}, ["y"])
    result = assert_matches_onnxruntime(model)
    assert ("Pooling" not in _layers(result)) == case["native"]


@pytest.mark.parametrize("ceil_mode", [0, 1])
def test_average_pool_counting_the_padding(ceil_mode):
    node = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
                            count_include_pad=1, ceil_mode=ceil_mode)
    assert_matches_onnxruntime(make_model([node], {"x": ["N", 3, 8, 8]}, ["y"]))


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape", [(4, 7), (4, 5, 6), (2, 3, 4, 5)])
def test_global_pool(op, shape):
    result = assert_matches_onnxruntime(make_model([helper.make_node(op, ["x"], ["y"])], {"x": ["N", *shape]}, ["y"]))
    assert "Pooling" not in _layers(result)
