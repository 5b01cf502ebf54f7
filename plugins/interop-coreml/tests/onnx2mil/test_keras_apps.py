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
    """Freeze the Keras model's variables and convert the graph with tf2onnx (as its CLI does)."""
    import tensorflow as tf
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    spec = tf.TensorSpec((None, *shape), tf.float32, name="input")
    concrete = tf.function(lambda x: keras_model(x, training=False)).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(concrete)
    model, _ = tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(), input_names=[t.name for t in frozen.inputs],
        output_names=[t.name for t in frozen.outputs], opset=17)
    return model


def _randomize_batchnorm(network) -> None:
    """Give BatchNormalization layers trained-looking statistics (weights=None leaves identities)."""
    import keras

    rng = np.random.default_rng(0)
    for layer in network.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shapes = [w.shape for w in layer.get_weights()]
            values = [rng.uniform(0.8, 1.2, shapes[0]), rng.uniform(-0.1, 0.1, shapes[1]),
                      rng.uniform(-0.1, 0.1, shapes[2]), rng.uniform(0.8, 1.2, shapes[3])]
            layer.set_weights([v.astype(np.float32) for v in values])


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


@pytest.mark.parametrize(
    "app", [pytest.param(app, marks=pytest.mark.slow) if app in ("ResNet50", "DenseNet121") else app for app in APPS]
)
def test_keras_application_from_tf2onnx(app, tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    # include_top=False with average pooling: the untrained classifier head would
    # output a uniform softmax, which would compare equal whatever the body computed.
    network = getattr(keras.applications, app)(weights=None, input_shape=(32, 32, 3), include_top=False, pooling="avg")
    _randomize_batchnorm(network)
    model = _tf2onnx(network, (32, 32, 3))
    _check(model, tmp_path / f"{app}.mlpackage", (32, 32, 3), batches=(1, 2))
