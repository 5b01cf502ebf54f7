"""Conv and ConvTranspose against onnxruntime: ranks, groups, depthwise, strides, dilations, padding."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from .helpers import assert_matches_onnxruntime, make_model


def _conv_model(x_shape, w_shape, bias=True, op="Conv", **attrs):
    rng = np.random.default_rng(0)
    inits = {"W": rng.standard_normal(w_shape).astype(np.float32) * 0.3}
    inputs = ["x", "W"]
    if bias:
        channels = w_shape[0] if op == "Conv" else w_shape[1] * attrs.get("group", 1)
        inits["B"] = rng.standard_normal(channels).astype(np.float32)
        inputs.append("B")
    node = helper.make_node(op, inputs, ["y"], **attrs)
    return make_model([node], {"x": ["N", *x_shape]}, ["y"], inits)


@pytest.mark.parametrize("case", [
    dict(x=(3, 9, 9), w=(4, 3, 3, 3), attrs={}),
    dict(x=(3, 9, 9), w=(4, 3, 3, 3), attrs=dict(pads=[1, 1, 1, 1])),
    dict(x=(3, 10, 10), w=(4, 3, 3, 3), attrs=dict(pads=[1, 1, 1, 1], strides=[2, 2])),
    dict(x=(3, 9, 9), w=(4, 3, 3, 3), attrs=dict(pads=[0, 2, 1, 0], strides=[2, 1])),
    dict(x=(3, 11, 11), w=(4, 3, 3, 3), attrs=dict(dilations=[2, 2], pads=[2, 2, 2, 2])),
    dict(x=(3, 10, 10), w=(5, 3, 2, 2), attrs=dict(auto_pad="SAME_UPPER", strides=[2, 2])),
    dict(x=(3, 10, 10), w=(5, 3, 3, 3), attrs=dict(auto_pad="SAME_LOWER", strides=[2, 2])),
    dict(x=(4, 8, 8), w=(6, 2, 3, 3), attrs=dict(group=2, pads=[1, 1, 1, 1])),
    dict(x=(4, 8, 8), w=(8, 1, 3, 3), attrs=dict(group=4, pads=[1, 1, 1, 1], strides=[2, 2])),  # depthwise x2
    dict(x=(4, 8, 8), w=(4, 1, 3, 3), attrs=dict(group=4, strides=[1, 2])),  # depthwise, unequal strides
    dict(x=(3, 12), w=(4, 3, 3), attrs=dict(pads=[1, 1])),
    dict(x=(4, 12), w=(4, 1, 3), attrs=dict(group=4)),  # depthwise 1-D
    dict(x=(2, 6, 6, 6), w=(3, 2, 3, 3, 3), attrs=dict(pads=[1, 0, 1, 1, 0, 1])),
], ids=lambda c: f"{len(c['w']) - 2}d-" + "-".join(f"{k}{v}" for k, v in c["attrs"].items()))
def test_conv(case):
    model = _conv_model(case["x"], case["w"], **case["attrs"])
    result = assert_matches_onnxruntime(model)
    assert result.trainable_weight_count == result.source_weight_count


def test_conv_without_bias_and_dynamic_spatial_size():
    rng = np.random.default_rng(1)
    node = helper.make_node("Conv", ["x", "W"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2])
    model = make_model([node], {"x": ["N", 3, "H", "W"]}, ["y"], {"W": rng.standard_normal((4, 3, 3, 3)).astype(np.float32)})
    from interop_keras.onnx_import import import_onnx

    from .helpers import keras_run, ort_run

    keras_model = import_onnx(model).model
    for size in (7, 10):
        feeds = {"x": rng.standard_normal((2, 3, size, size)).astype(np.float32)}
        np.testing.assert_allclose(keras_run(keras_model, model, feeds)["y"], ort_run(model, feeds)["y"], rtol=1e-4,
                                   atol=1e-5)


@pytest.mark.parametrize("case", [
    dict(x=(4, 5, 5), w=(4, 3, 3, 3), attrs={}),
    dict(x=(4, 5, 5), w=(4, 3, 3, 3), attrs=dict(strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])),
    dict(x=(4, 5, 6), w=(4, 2, 2, 2), attrs=dict(strides=[2, 2])),
    dict(x=(4, 5, 5), w=(4, 3, 3, 3), attrs=dict(strides=[2, 2], output_shape=[10, 10])),
    dict(x=(4, 5, 5), w=(4, 3, 3, 3), attrs=dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    dict(x=(4, 5, 5), w=(4, 3, 3, 3), attrs=dict(pads=[1, 0, 1, 0])),
    dict(x=(4, 7), w=(4, 3, 3), attrs=dict(strides=[3], pads=[1, 1])),
], ids=lambda c: "-".join(f"{k}{v}" for k, v in c["attrs"].items()) or "plain")
def test_conv_transpose(case):
    model = _conv_model(case["x"], case["w"], op="ConvTranspose", **case["attrs"])
    result = assert_matches_onnxruntime(model)
    assert result.trainable_weight_count == result.source_weight_count


def test_conv_transposes_keras_cannot_express_are_reported_together():
    """Grouped and dilated ConvTranspose: one error naming the op, the count and both reasons."""
    from interop.plugin_api import UnsupportedModelError

    from interop_keras.onnx_import import import_onnx

    rng = np.random.default_rng(0)
    inits = {"w1": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
             "w2": rng.standard_normal((4, 4, 3, 3)).astype(np.float32)}
    nodes = [helper.make_node("ConvTranspose", ["x", "w1"], ["a"], group=2),
             helper.make_node("ConvTranspose", ["x", "w2"], ["b"], dilations=[2, 2])]
    model = make_model(nodes, {"x": ["N", 4, 5, 5]}, ["a", "b"], inits)
    with pytest.raises(UnsupportedModelError, match=r"ConvTranspose x2 \(.*group=2.*dilations") as caught:
        import_onnx(model)
    assert caught.value.exit_code == 3


def test_channels_last_layout_needs_one_transpose_for_a_conv_stack():
    """NCHW in, NCHW out: the inside stays channels-last; one transpose each way."""
    rng = np.random.default_rng(2)
    w1 = rng.standard_normal((8, 3, 3, 3)).astype(np.float32)
    w2 = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Conv", ["b", "w2"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Add", ["c", "b"], ["y"])]
    model = make_model(nodes, {"x": ["N", 3, 8, 8]}, ["y"], {"w1": w1, "w2": w2})
    result = assert_matches_onnxruntime(model)
    assert result.transposes == 2
