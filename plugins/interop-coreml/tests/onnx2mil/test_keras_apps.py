"""tf2onnx exports of Keras models: the reference MLP and Keras Applications (weights=None).

The Applications run at 32x32 with 10 classes to keep the suite fast; the graph
structure (ops, shapes arithmetic, names like ``Identity:0``) is the same as at
full size.
"""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import assert_close, interpret, ort_run, save

APPS = ("MobileNetV2", "ResNet50", "DenseNet121", "EfficientNetB0")


def _tf2onnx(keras_model, shape):
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, *shape), tf.float32, name="input"),)
    function = tf.function(lambda x: keras_model(x, training=False))
    model, _ = tf2onnx.convert.from_function(function, input_signature=spec, opset=17)
    return model


def _check(model, path, shape, batches=(1, 3)):
    save(model, path)
    input_name = model.graph.input[0].name
    for batch in batches:
        x = np.random.default_rng(batch).standard_normal((batch, *shape)).astype(np.float32)
        assert_close(interpret(path, {input_name: x}), ort_run(model, {input_name: x}))


def test_reference_mlp_from_tf2onnx(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    mlp = keras.Sequential([
        keras.Input((2,)),
        keras.layers.Normalization(mean=[3.76, 1.2], variance=[3.1, 0.58]),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(3),
    ])
    model = _tf2onnx(mlp, (2,))
    assert any(":" in o.name for o in model.graph.output), "tf2onnx names outputs like Identity:0"
    _check(model, tmp_path / "mlp.mlpackage", (2,))


@pytest.mark.parametrize("app", APPS)
def test_keras_application_from_tf2onnx(app, tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    network = getattr(keras.applications, app)(weights=None, input_shape=(32, 32, 3), classes=10)
    model = _tf2onnx(network, (32, 32, 3))
    _check(model, tmp_path / f"{app}.mlpackage", (32, 32, 3), batches=(1, 2))
