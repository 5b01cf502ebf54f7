"""Resize and Upsample by whole factors against onnxruntime; the rest is reported."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from interop.plugin_api import UnsupportedModelError

from .helpers import assert_matches_onnxruntime, make_model


def _resize(scales, opset=13, shape=("N", 3, 4, 5), **attrs):
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], **attrs)
    return make_model([node], {"x": list(shape)}, ["y"], {"scales": np.array(scales, np.float32)}, opset=opset)


@pytest.mark.parametrize("attrs", [
    dict(mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"),  # torch nearest
    dict(mode="nearest"),  # half_pixel, round_prefer_floor
    dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel"),  # torch bilinear
    dict(mode="linear"),
], ids=["asymmetric-floor", "half-pixel", "pytorch-bilinear", "bilinear"])
@pytest.mark.parametrize("scales", [[1, 1, 2, 2], [1, 1, 3, 2]])
def test_resize_2d(attrs, scales):
    assert_matches_onnxruntime(_resize(scales, **attrs))


def test_resize_to_sizes_and_in_1d_and_3d():
    node = helper.make_node("Resize", ["x", "", "", "sizes"], ["y"], mode="nearest",
                            coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    model = make_model([node], {"x": [2, 3, 4, 5]}, ["y"], {"sizes": np.array([2, 3, 8, 15], np.int64)})
    assert_matches_onnxruntime(model, batches=(2,))
    assert_matches_onnxruntime(_resize([1, 1, 3], shape=("N", 2, 5), mode="nearest",
                                       coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
    assert_matches_onnxruntime(_resize([1, 1, 2, 2, 2], shape=("N", 2, 2, 3, 2), mode="nearest",
                                       coordinate_transformation_mode="asymmetric", nearest_mode="floor"))


def test_upsample_before_resize_existed():
    node = helper.make_node("Upsample", ["x", "scales"], ["y"], mode="nearest")
    model = make_model([node], {"x": ["N", 3, 4, 5]}, {"y": ["N", 3, 8, 10]},
                       {"scales": np.array([1, 1, 2, 2], np.float32)}, opset=9)
    assert_matches_onnxruntime(model)


@pytest.mark.parametrize("scales, attrs, reason", [
    ([1, 1, 1.5, 1.5], dict(mode="nearest"), "not whole upsampling factors"),
    ([1, 1, 2, 2], dict(mode="cubic"), "mode 'cubic'"),
    ([1, 1, 2, 2], dict(mode="linear", coordinate_transformation_mode="align_corners"), "align_corners"),
    ([1, 1, 3, 3], dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                        nearest_mode="round_prefer_ceil"), "other than repeating"),
])
def test_resizes_keras_cannot_express_are_reported(scales, attrs, reason):
    from interop_keras.onnx_import import import_onnx

    with pytest.raises(UnsupportedModelError, match=reason):
        import_onnx(_resize(scales, **attrs))
