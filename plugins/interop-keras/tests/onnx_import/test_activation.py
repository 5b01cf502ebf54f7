"""Activations, Softmax/LogSoftmax, Clip, Dropout against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from .helpers import assert_matches_onnxruntime, make_model

CASES = [
    ("Relu", {}), ("LeakyRelu", {"alpha": 0.2}), ("Elu", {"alpha": 0.7}), ("Selu", {}), ("Sigmoid", {}),
    ("Tanh", {}), ("Softplus", {}), ("Softsign", {}), ("HardSigmoid", {}), ("HardSigmoid", {"alpha": 1 / 6}),
    ("HardSwish", {}), ("Mish", {}), ("ThresholdedRelu", {"alpha": 0.3}), ("Celu", {"alpha": 0.5}),
    ("Shrink", {"lambd": 0.4, "bias": 0.1}), ("Gelu", {}), ("Gelu", {"approximate": "tanh"}),
]


@pytest.mark.parametrize("op,attrs", CASES, ids=[f"{op}{attrs or ''}" for op, attrs in CASES])
def test_activation(op, attrs):
    opset = {"Gelu": 20, "Mish": 18}.get(op, 17)
    assert_matches_onnxruntime(make_model([helper.make_node(op, ["x"], ["y"], **attrs)], {"x": ["N", 3, 4]}, ["y"],
                                          opset=opset))


def test_prelu_with_a_per_channel_slope_after_a_conv():
    rng = np.random.default_rng(0)
    inits = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
             "slope": rng.uniform(0, 0.5, (4, 1, 1)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"]), helper.make_node("PRelu", ["a", "slope"], ["y"])]
    result = assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3, 6, 6]}, ["y"], inits))
    assert result.trainable_weight_count == result.source_weight_count == 4 * 27 + 4
    np.testing.assert_array_equal(result.onnx_weights()["slope"], inits["slope"])


@pytest.mark.parametrize("bounds", [(0.0, 6.0), (-1.0, 1.0), (None, 0.5), (0.0, None)])
def test_clip(bounds):
    low, high = bounds
    inputs = ["x", "lo" if low is not None else "", "hi" if high is not None else ""]
    inits = {k: np.float32(v) for k, v in (("lo", low), ("hi", high)) if v is not None}
    assert_matches_onnxruntime(make_model([helper.make_node("Clip", inputs, ["y"])], {"x": ["N", 5]}, ["y"], inits))


def test_clip_before_opset_11_takes_attributes():
    node = helper.make_node("Clip", ["x"], ["y"], min=-0.5, max=0.5)
    assert_matches_onnxruntime(make_model([node], {"x": ["N", 5]}, ["y"], opset=9))


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset,axis", [(13, -1), (13, 1), (11, 1), (9, 2)])
def test_softmax(op, opset, axis):
    node = helper.make_node(op, ["x"], ["y"], axis=axis)
    assert_matches_onnxruntime(make_model([node], {"x": ["N", 3, 4, 5]}, ["y"], opset=opset))


def test_softmax_over_channels_of_a_channels_last_tensor():
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"]), helper.make_node("Softmax", ["a"], ["y"], axis=1)]
    model = make_model(nodes, {"x": ["N", 3, 5, 5]}, ["y"], {"w": rng.standard_normal((4, 3, 1, 1)).astype(np.float32)})
    assert assert_matches_onnxruntime(model).transposes == 2


def test_dropout_becomes_a_keras_dropout_that_is_active_in_training():
    import keras

    node = helper.make_node("Dropout", ["x", "ratio"], ["y"])
    model = make_model([node], {"x": ["N", 1000]}, ["y"], {"ratio": np.float32(0.25)})
    result = assert_matches_onnxruntime(model)
    layer = next(layer for layer in result.model.layers if isinstance(layer, keras.layers.Dropout))
    assert layer.rate == pytest.approx(0.25)
    trained = np.asarray(result.model(np.ones((4, 1000), np.float32), training=True))
    assert 0.1 < float(np.mean(trained == 0)) < 0.4
    assert any("Dropout" in note for note in result.notes)


def test_a_graph_without_dropout_says_so_in_a_note():
    result = assert_matches_onnxruntime(make_model([helper.make_node("Relu", ["x"], ["y"])], {"x": ["N", 3]}, ["y"]))
    assert any("no Dropout" in note for note in result.notes)
    assert not any(type(layer).__name__ == "Dropout" for layer in result.model.layers)


def test_dropout_whose_mask_is_an_output_is_reported():
    from interop.plugin_api import UnsupportedModelError

    from interop_keras.onnx_import import import_onnx

    model = make_model([helper.make_node("Dropout", ["x"], ["y", "mask"])], {"x": ["N", 4]}, ["y", "mask"])
    with pytest.raises(UnsupportedModelError, match="mask output is used"):
        import_onnx(model)
