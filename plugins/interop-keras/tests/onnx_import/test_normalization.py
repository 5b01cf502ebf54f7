"""BatchNormalization, Instance/Layer/GroupNormalization and LRN against onnxruntime, and BN in training."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from .helpers import assert_matches_onnxruntime, make_model


def _bn_model(shape, momentum=0.9, epsilon=1e-5, opset=17):
    rng = np.random.default_rng(0)
    c = shape[0]
    inits = {"scale": rng.uniform(0.5, 1.5, c), "bias": rng.uniform(-1, 1, c), "mean": rng.uniform(-1, 1, c),
             "var": rng.uniform(0.5, 2, c)}
    node = helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y"], momentum=momentum,
                            epsilon=epsilon)
    return make_model([node], {"x": ["N", *shape]}, ["y"], {k: v.astype(np.float32) for k, v in inits.items()},
                      opset=opset)


@pytest.mark.parametrize("shape", [(4,), (4, 6), (4, 5, 5), (3, 2, 3, 4)])
def test_batch_normalization(shape):
    result = assert_matches_onnxruntime(_bn_model(shape))
    assert result.trainable_weight_count == result.source_weight_count == 2 * shape[0]
    assert len(result.model.non_trainable_weights) == 2  # the running mean and variance


def test_batch_normalization_after_a_conv_normalises_the_channels_last_axis():
    rng = np.random.default_rng(1)
    c = 5
    inits = {"w": rng.standard_normal((c, 3, 3, 3)).astype(np.float32)}
    inits.update({k: rng.uniform(0.5, 1.5, c).astype(np.float32) for k in ("s", "b", "m", "v")})
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"]),
             helper.make_node("BatchNormalization", ["a", "s", "b", "m", "v"], ["y"], epsilon=1e-3)]
    result = assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3, 7, 7]}, ["y"], inits, opset=9))
    bn = next(layer for layer in result.model.layers if type(layer).__name__ == "BatchNormalization")
    assert bn.axis in (-1, 3) or bn.axis == [3]


def test_batch_normalization_trains_like_keras():
    """ONNX momentum is Keras' momentum: in training the running statistics move by (1 - momentum)."""
    import keras

    from interop_keras.onnx_import import import_onnx

    model = _bn_model((3,), momentum=0.8, epsilon=1e-3)
    imported = import_onnx(model).model
    bn = next(layer for layer in imported.layers if isinstance(layer, keras.layers.BatchNormalization))
    assert bn.momentum == pytest.approx(0.8) and bn.epsilon == pytest.approx(1e-3)
    before_mean = np.array(bn.moving_mean.numpy())
    before_var = np.array(bn.moving_variance.numpy())
    x = np.random.default_rng(3).standard_normal((16, 3)).astype(np.float32) * 2 + 1
    out = np.asarray(imported(x, training=True))
    batch_mean, batch_var = x.mean(axis=0), x.var(axis=0)
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.8 * before_mean + 0.2 * batch_mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.8 * before_var + 0.2 * batch_var, rtol=1e-4, atol=1e-6)
    # in training the batch's own statistics normalise it
    gamma, beta = bn.gamma.numpy(), bn.beta.numpy()
    np.testing.assert_allclose(out, gamma * (x - batch_mean) / np.sqrt(batch_var + 1e-3) + beta, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 5), (3, 4, 5), (2, 3, 4, 5)])
def test_instance_normalization(shape):
    rng = np.random.default_rng(0)
    c = shape[0]
    inits = {"s": rng.uniform(0.5, 1.5, c).astype(np.float32), "b": rng.uniform(-1, 1, c).astype(np.float32)}
    node = helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"], epsilon=1e-4)
    result = assert_matches_onnxruntime(make_model([node], {"x": ["N", *shape]}, ["y"], inits))
    assert result.trainable_weight_count == 2 * c


@pytest.mark.parametrize("axis", [-1, -2, 1])
def test_layer_normalization(axis):
    rng = np.random.default_rng(0)
    shape = ["N", 3, 4, 5]
    normalized = [3, 4, 5][axis % 4 - 1:]
    inits = {"s": rng.uniform(0.5, 1.5, normalized).astype(np.float32),
             "b": rng.uniform(-1, 1, normalized).astype(np.float32)}
    node = helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=axis, epsilon=1e-5)
    result = assert_matches_onnxruntime(make_model([node], {"x": shape}, ["y"], inits))
    assert result.trainable_weight_count == 2 * int(np.prod(normalized))
    for name, value in result.onnx_weights().items():
        np.testing.assert_array_equal(value, inits[name])  # the mapping back restores the ONNX layout


def test_layer_normalization_on_a_channels_last_tensor():
    """LayerNormalization over C, H, W of a conv output: the weights are stored in the Keras layout."""
    rng = np.random.default_rng(5)
    inits = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
             "s": rng.uniform(0.5, 1.5, (4, 5, 5)).astype(np.float32),
             "b": rng.uniform(-1, 1, (4, 5, 5)).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"]),
             helper.make_node("LayerNormalization", ["a", "s", "b"], ["y"], axis=1)]
    result = assert_matches_onnxruntime(make_model(nodes, {"x": ["N", 3, 7, 7]}, ["y"], inits))
    for name in ("s", "b"):
        np.testing.assert_array_equal(result.onnx_weights()[name], inits[name])


def test_group_normalization():
    rng = np.random.default_rng(0)
    inits = {"s": rng.uniform(0.5, 1.5, 6).astype(np.float32), "b": rng.uniform(-1, 1, 6).astype(np.float32)}
    node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=3, epsilon=1e-5)
    assert_matches_onnxruntime(make_model([node], {"x": ["N", 6, 4, 4]}, {"y": ["N", 6, 4, 4]}, inits, opset=21))


@pytest.mark.parametrize("size", [3, 5])  # onnxruntime takes odd sizes only
def test_lrn(size):
    node = helper.make_node("LRN", ["x"], ["y"], size=size, alpha=1e-3, beta=0.75, bias=2.0)
    assert_matches_onnxruntime(make_model([node], {"x": ["N", 7, 4, 4]}, ["y"]))
