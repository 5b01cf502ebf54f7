"""The tutorial's MLP imported into Keras: a PyTorch-trained copy routed torch -> onnx -> keras, and a
Keras-trained model round-tripped keras -> onnx -> keras."""

from __future__ import annotations

import numpy as np
import pytest

import interop

from .test_models import one_step_lowers_the_loss


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlp")
    interop.train("torch", folder / "iris.pt2")
    interop.train("keras", folder / "iris.keras")
    return folder


def _native_only(model):
    names = {type(layer).__name__ for layer in model.layers}
    assert names <= {"InputLayer", "Rescaling", "Dense", "ReLU"}, names


def test_torch_copy_is_routed_through_onnx_and_matches_its_source(trained):
    from interop_keras.loading import load_keras_model

    result = interop.convert(trained / "iris.pt2", trained / "from_torch.keras")
    assert result.route == ["torch", "onnx", "keras"]
    report = interop.check(trained / "iris.pt2", [trained / "from_torch.keras"], dataset="iris")
    assert report.passed, report.to_dict()  # fp32 defaults: atol 1e-5, rtol 1e-4
    model = load_keras_model(trained / "from_torch.keras")
    _native_only(model)
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == 2 * 64 + 64 + 64 * 3 + 3
    assert [w.path for w in model.trainable_weights] == ["hidden/kernel", "hidden/bias", "logits/kernel", "logits/bias"]


def test_keras_model_round_trips_with_the_same_weights(trained):
    from interop_keras.loading import load_keras_model

    interop.convert(trained / "iris.keras", trained / "iris.onnx")
    interop.convert(trained / "iris.onnx", trained / "back.keras")
    report = interop.check(trained / "iris.keras", [trained / "back.keras"], dataset="iris")
    assert report.passed, report.to_dict()
    original, back = load_keras_model(trained / "iris.keras"), load_keras_model(trained / "back.keras")
    _native_only(back)
    for before, after in zip(original.trainable_weights, back.trainable_weights):
        np.testing.assert_array_equal(np.asarray(after), np.asarray(before))


def test_an_imported_mlp_trains(trained):
    from interop.datasets import load_iris
    from interop_keras.onnx_import import trainable_model

    interop.convert(trained / "iris.pt2", trained / "mlp.onnx")
    model = trainable_model(trained / "mlp.onnx")
    x, _ = load_iris()
    before, after = one_step_lowers_the_loss(model, x[:10].astype(np.float32), training=True)
    assert after < before
